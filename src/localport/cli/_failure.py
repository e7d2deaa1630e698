"""How a failure reaches the user: one line on stderr and an exit code, and with ``--json`` an
error object on stdout too. Every exception a command lets through is mapped here."""

from __future__ import annotations

import os
import sys
from typing import Any

from .._errors import (
    AddressNotAvailableError,
    LocalportError,
    LockDirError,
    NoFreePortError,
    PortInUseError,
    ServerStartError,
    WaitTimeoutError,
)
from ._render import holder_json
from ._shared import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_LOCK_DIR,
    EXIT_START_FAILED,
    EXIT_SYSTEM,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CommandError,
)


def failure(error: BaseException) -> tuple[int, str, dict[str, Any]]:
    """*error*'s exit code, its one line for stderr, and what its JSON object adds."""
    code, details = _classify(error)
    if isinstance(error, ServerStartError):
        message = error.summary  # its last output was on the terminal already
    else:
        message = str(error) or type(error).__name__
    if code == EXIT_INTERNAL:
        name = type(error).__name__
        message = f"internal error, a bug in localport (please report it): {name}: {message}"
    return code, " ".join(message.split("\n")), details


def _classify(error: BaseException) -> tuple[int, dict[str, Any]]:
    if isinstance(error, CommandError):
        return error.code, dict(error.details)
    if isinstance(error, PortInUseError):
        return EXIT_UNAVAILABLE, {
            "port": error.port,
            "holders": [holder_json(holder) for holder in error.holders],
        }
    if isinstance(error, NoFreePortError):
        low, high = error.port_range
        return EXIT_UNAVAILABLE, {"port_range": [low, high], "busy": error.busy}
    if isinstance(error, LockDirError):
        return EXIT_LOCK_DIR, {"lock_dir": error.lock_dir}
    if isinstance(error, AddressNotAvailableError):
        return EXIT_USAGE, {"host": error.host}
    if isinstance(error, WaitTimeoutError):
        return EXIT_TIMEOUT, {"port": error.port, "timeout": error.timeout}
    if isinstance(error, ServerStartError):
        return EXIT_START_FAILED, {
            "port": error.port or None,
            "service": error.service,
            "returncode": error.returncode,
            "output": list(error.output),
        }
    if isinstance(error, (ValueError, TypeError)):
        return EXIT_USAGE, {}
    if isinstance(error, (LocalportError, OSError)):
        return EXIT_SYSTEM, {}
    return EXIT_INTERNAL, {}


def error_json(error: BaseException, code: int, message: str, details: dict[str, Any]) -> Any:
    """The object ``--json`` prints on stdout for a failure."""
    kind = error.kind if isinstance(error, CommandError) else type(error).__name__
    return {"error": {"code": code, "type": kind, "message": message, **details}}


def reader_went_away() -> int:
    """stdout's reader closed the pipe: stop quietly, as ``cat`` does.

    Whatever is still buffered would fail again when the interpreter flushes stdout at exit,
    printing "Exception ignored" there; pointing stdout's descriptor at /dev/null drops it.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no stdout descriptor at all: nothing left to flush
        pass
    return EXIT_BROKEN_PIPE
