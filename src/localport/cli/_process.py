"""A process in the command line's JSON: one set of fields wherever a process appears.

A holder of ``who`` and ``list --all``, a reservation's process in ``list``, a process
``kill`` signals and a server ``run`` or ``up`` started all carry the fields of
:func:`process_fields`, so a script reads a process the same way everywhere. Its ``command``
is the program as people name it (:func:`localport._command_name.command_name`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._command_name import command_name

if TYPE_CHECKING:
    from collections.abc import Sequence


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
        "command": command_name(cmdline) or name or None,
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
