"""A process in the command line's JSON: one set of fields wherever a process appears.

A holder of ``who`` and ``list --all``, a reservation's process in ``list``, a process
``kill`` signals and a server ``run`` or ``up`` started all carry the fields of
:func:`process_fields`, so a script reads a process the same way everywhere.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

#: An interpreter whose program is its first argument: python, python3, python3.12, pypy3.
_PYTHON = re.compile(r"(python|pypy)[0-9.]*w?(\.exe)?", re.IGNORECASE)
#: Shells that run a command line given with -c.
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ash"})


def short_name(cmdline: Sequence[str], name: str | None = None) -> str | None:
    """A process's short readable name: ``flask``, ``python3 -m http.server``, ``node``.

    The program's file name without its directory; for a Python interpreter, the module it
    runs (``-m``) or its script's file name instead. *name* (the process name the system
    gives) stands in when the command line is unknown.
    """
    if not cmdline:
        return name or None
    program = _basename(cmdline[0])
    if program in _SHELLS and len(cmdline) > 2 and cmdline[1] == "-c":
        # `sh -c "CMD"`, as Procfile commands run: the name of CMD's program.
        import shlex

        try:
            inner = shlex.split(cmdline[2])
        except ValueError:
            inner = cmdline[2].split()
        while (inner and inner[0] in ("exec", "env")) or (inner and "=" in inner[0]):
            inner = inner[1:]
        return short_name(inner) or program
    if not _PYTHON.fullmatch(program):
        return program or name or None
    arguments = list(cmdline[1:])
    while arguments and arguments[0].startswith("-"):
        option = arguments.pop(0)
        if option == "-m" and arguments:
            return f"{program} -m {arguments[0]}"
        if option.startswith("-m") and len(option) > 2:
            return f"{program} -m {option[2:]}"
        if option == "-c" or option.startswith("-c"):
            return f"{program} -c"
        if option in ("-W", "-X", "--check-hash-based-pycs") and arguments:
            arguments.pop(0)
    if arguments:
        return _basename(arguments[0]) or program
    return program


def _basename(path: str) -> str:
    return os.path.basename(path.replace("\\", "/"))


def process_fields(
    pid: int | None,
    cmdline: Sequence[str],
    *,
    name: str | None = None,
    user: str | None = None,
    uid: int | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """The JSON fields of a process: the same keys in every command's output."""
    return {
        "pid": pid,
        "cmdline": list(cmdline),
        "command": short_name(cmdline, name),
        "user": user,
        "uid": uid,
        "started": started,
    }


def facts_fields(pid: int | None) -> dict[str, Any]:
    """:func:`process_fields` of a running process, read now (empty when it is gone)."""
    from .. import _platform

    facts = _platform.system.process_facts(pid) if pid is not None else None
    if facts is None:
        return process_fields(pid, [])
    return process_fields(
        pid,
        facts.cmdline,
        name=facts.name,
        user=facts.username,
        uid=facts.uid,
        started=facts.started,
    )
