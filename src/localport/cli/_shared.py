"""What every command shares: the exit codes, and the error that carries one."""

from __future__ import annotations

EXIT_OK = 0
EXIT_NO = 1  # who: nothing holds it; release/kill: nothing to act on
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  # the port is in use, or no port is free
EXIT_REFUSED = 4  # another user's process, or not confirmed
EXIT_START_FAILED = 5  # run: the command exited or never listened
EXIT_LOCK_DIR = 6
EXIT_SYSTEM = 7  # the system refused: a file, socket or process error
EXIT_TIMEOUT = 8  # wait: the time ran out
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a reader that went away

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success (who: something holds the port)
  {EXIT_NO}    nothing to report or act on (who: nothing holds it; release, kill: no holder)
  {EXIT_USAGE}    bad arguments (also a --host that is not an address of this machine)
  {EXIT_UNAVAILABLE}    the port is in use, or no port is free in the range
  {EXIT_REFUSED}    refused: another user's process, or not confirmed
  {EXIT_START_FAILED}    run, up: a server exited, listened elsewhere or did not listen in time
  {EXIT_LOCK_DIR}    the lock directory is unsafe or unusable
  {EXIT_SYSTEM}    the system refused (a file, socket or process error, named on stderr)
  {EXIT_TIMEOUT}    wait: the time ran out
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C) before finishing
  {EXIT_BROKEN_PIPE}  the reader of the output went away (e.g. `| head -1`)
  run exits with the command's own exit code once it has started; up with the code of the
  first service that exits by itself (130, 143 when stopped by Ctrl-C, SIGTERM)."""

HOLD_COMMAND = "_hold"


class CommandError(Exception):
    """A one-line error for stderr, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
