"""Reading a Procfile and the ``.env`` beside it, as honcho and foreman read them.

A Procfile has one service a line, ``name: command``; ``#`` starts a comment line, blank
lines are skipped. A name is letters, digits, ``_`` and ``-``. Where honcho skips a line it
cannot read, this module refuses it, naming the file and line: a typo must not silently
drop a service. Every check runs before anything is reserved or started.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ._errors import PlaceholderError, ProcfileError
from ._placeholders import is_server, referenced_names, wants_fd

_LINE = re.compile(r"^([A-Za-z0-9_-]+)[ \t]*:[ \t]*(.*)$")
_ENV_LINE = re.compile(r"^(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*)$")
#: A Procfile bigger than this is not one (it is read whole, before anything starts).
SIZE_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One service line of a Procfile."""

    name: str
    command: str
    line: int
    #: Whether its command mentions its own port: it gets one, and is waited for.
    server: bool
    #: Whether it takes its listening socket as ``{fd}``.
    fd: bool
    #: The services its ``{port:NAME}`` and ``{url:NAME}`` name.
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class Procfile:
    """A parsed Procfile: its services in file order, and the variables of its ``.env``."""

    path: str
    entries: tuple[Entry, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> str:
        """The project directory: where the Procfile is (symbolic links resolved)."""
        return os.path.dirname(os.path.realpath(self.path))

    def entry(self, name: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.name == name), None)


def read_procfile(path: str) -> Procfile:
    """Read and check *path* and the ``.env`` beside it (if any).

    :raises ProcfileError: the file is missing, unreadable or malformed, names a service
        twice, has an empty command, or a placeholder names no server of the file.
    """
    text = _read(path, "Procfile")
    entries = parse_procfile(text, path)
    env_path = os.path.join(os.path.dirname(path) or ".", ".env")
    env = parse_env(_read(env_path, ".env"), env_path) if os.path.isfile(env_path) else {}
    return Procfile(path=path, entries=tuple(entries), env=env)


def _read(path: str, what: str) -> str:
    try:
        with open(path, "rb") as file:
            data = file.read(SIZE_LIMIT + 1)
    except FileNotFoundError:
        msg = f"{path}: no such file (a {what} lists one service a line, `name: command`)"
        raise ProcfileError(msg) from None
    except OSError as error:
        msg = f"{path}: cannot read the {what}: {error.strerror}"
        raise ProcfileError(msg) from None
    if len(data) > SIZE_LIMIT:
        msg = f"{path}: more than {SIZE_LIMIT // 1024} KiB: not a {what}"
        raise ProcfileError(msg)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        msg = f"{path}: not UTF-8 text (byte {error.start})"
        raise ProcfileError(msg) from None


def parse_procfile(text: str, path: str) -> list[Entry]:
    """The services of a Procfile's *text*; *path* is for messages.

    :raises ProcfileError: as :func:`read_procfile`.
    """
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            msg = (
                f"{path}:{number}: not a service line (expected `name: command`, a name of "
                f"letters, digits, _ and -): {_shown(line)}"
            )
            raise ProcfileError(msg)
        name, command = match.group(1), match.group(2).strip()
        if name in seen:
            msg = f"{path}:{number}: service {name!r} is already defined on line {seen[name]}"
            raise ProcfileError(msg)
        if not command:
            msg = f"{path}:{number}: service {name!r} has an empty command"
            raise ProcfileError(msg)
        try:
            references = tuple(referenced_names(command))
        except PlaceholderError as error:
            msg = f"{path}:{number}: service {name!r}: {error}"
            raise ProcfileError(msg) from None
        seen[name] = number
        entries.append(
            Entry(name, command, number, is_server(command), wants_fd(command), references)
        )
    if not entries:
        msg = f"{path}: no services (a Procfile lists one a line, `name: command`)"
        raise ProcfileError(msg)
    servers = {entry.name for entry in entries if entry.server}
    for entry in entries:
        for reference in entry.references:
            if reference not in servers:
                what = "is not a server (its command uses no port)" if reference in seen else ""
                msg = (
                    f"{path}:{entry.line}: service {entry.name!r} names {reference!r} in "
                    f"{{port:{reference}}} or {{url:{reference}}}, which "
                    f"{what or 'no line of the file defines'}"
                )
                raise ProcfileError(msg)
    return entries


def parse_env(text: str, path: str) -> dict[str, str]:
    """The variables of a ``.env`` file: ``KEY=VALUE`` lines (``export`` allowed), ``#``
    comments; a value in single quotes is taken as it is, one in double quotes understands
    ``\\n``, ``\\"`` and ``\\\\``.

    :raises ProcfileError: a line that is none of these, naming the file and line.
    """
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            msg = f"{path}:{number}: not a `NAME=value` line: {_shown(line)}"
            raise ProcfileError(msg)
        key, value = match.group(1), match.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\([n\"\\])", lambda m: {"n": "\n"}.get(m[1], m[1]), value[1:-1])
        variables[key] = value
    return variables


def _shown(line: str) -> str:
    """A line for an error message: bounded, control characters escaped."""
    text = line if len(line) <= 80 else line[:77] + "..."
    return repr(text)[1:-1]
