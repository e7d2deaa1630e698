"""What every command shares: the exit codes, the command line's advice, and the error that
carries an exit code."""

from __future__ import annotations

from typing import Any

from .._errors import Advice

EXIT_OK = 0
EXIT_NO = 1  # who: nothing holds it; release/kill: nothing to act on
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  # the port is in use, or no port is free
EXIT_REFUSED = 4  # another user's process, or not confirmed
EXIT_START_FAILED = 5  # run: the command exited or never listened
EXIT_LOCK_DIR = 6
EXIT_SYSTEM = 7  # the system refused: a file, socket or process error
EXIT_TIMEOUT = 8  # wait: the time ran out
EXIT_INTERNAL = 70  # a bug in localport (EX_SOFTWARE): one line, never a traceback
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a reader that went away

#: What each code means, as `localport --help` lists them.
MEANINGS = {
    EXIT_OK: "success (who: something holds the port)",
    EXIT_NO: "nothing to report or act on (who: nothing holds it; release, kill: no holder)",
    EXIT_USAGE: "bad arguments (also a --host that is not an address of this machine)",
    EXIT_UNAVAILABLE: "the port is in use, or no port is free in the range",
    EXIT_REFUSED: "refused: another user's process, or not confirmed",
    EXIT_START_FAILED: "run, up: a server exited, listened elsewhere or did not listen in time",
    EXIT_LOCK_DIR: "the lock directory is unsafe or unusable",
    EXIT_SYSTEM: "the system refused (a file, socket or process error, named on stderr)",
    EXIT_TIMEOUT: "wait: the time ran out",
    EXIT_INTERNAL: "a bug in localport (the line on stderr names it: please report it)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C) before finishing",
    EXIT_BROKEN_PIPE: "the reader of the output went away (e.g. `| head -1`)",
}

EXIT_CODES = (
    "exit codes:\n"
    + "".join(f"  {code:<4} {meaning}\n" for code, meaning in MEANINGS.items())
    + "  run exits with the command's own exit code once it has started; up with the code of "
    "the\n  first service that exits by itself (130, 143 when stopped by Ctrl-C, SIGTERM)."
)


def command_exit_codes(*lines: tuple[int | str, str]) -> str:
    """A command's own exit codes, for the end of its --help, with a pointer to the rest."""
    listed = "".join(f"  {code!s:<4} {meaning}\n" for code, meaning in lines)
    return (
        f"exit codes:\n{listed}"
        "  130  interrupted (Ctrl-C); 141  the reader of the output went away\n"
        "  (`localport --help` lists every code)"
    )


#: The advice the command line gives: commands and options, where the Python API names
#: functions and arguments (see localport._errors.Advice).
CLI_ADVICE = Advice(
    another_port="use another port (`localport reserve` picks a free one)",
    widen_range=(
        "widen LOCALPORT_RANGE, or release some reservations (`localport list` shows them)"
    ),
    reuse_address="set LOCALPORT_REUSEADDR=1 to take them",
    host_argument="--host",
    hosts_allowed=(
        "allowed: localhost, 127.0.0.1, ::1, 0.0.0.0, :: or an address of one of its interfaces"
    ),
)

HOLD_COMMAND = "_hold"


#: The ``type`` of a command's own failure in ``--json``'s error object, by exit code: the
#: name of the API's exception for the same failure where there is one.
ERROR_TYPES = {
    EXIT_NO: "NothingToDo",
    EXIT_USAGE: "UsageError",
    EXIT_UNAVAILABLE: "PortInUseError",
    EXIT_REFUSED: "Refused",
    EXIT_START_FAILED: "ServerStartError",
    EXIT_LOCK_DIR: "LockDirError",
    EXIT_SYSTEM: "OSError",
    EXIT_TIMEOUT: "WaitTimeoutError",
}


class CommandError(Exception):
    """A one-line error for stderr, with its exit code, and what ``--json`` adds to it."""

    def __init__(self, message: str, code: int, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details

    @property
    def kind(self) -> str:
        """The ``type`` of its JSON error object."""
        return ERROR_TYPES.get(self.code, "CommandError")
