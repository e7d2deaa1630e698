""":func:`main`: runs a command, and turns every way it can end into one line and a code."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from .._errors import advice
from ._colour import choose as choose_colour
from ._failure import error_json, failure, reader_went_away
from ._parser import UsageError, build_parser, command_parser
from ._render import print_json, say
from ._shared import CLI_ADVICE, EXIT_INTERRUPTED, HOLD_COMMAND

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Each command's module (in this package) and function; imported only when it runs.
_HANDLERS = {
    "reserve": ("_hold", "reserve_command"),
    HOLD_COMMAND: ("_hold", "hold_command"),
    "release": ("_hold", "release_command"),
    "who": ("_show", "who_command"),
    "list": ("_show", "list_command"),
    "kill": ("_kill", "kill_command"),
    "run": ("_run", "run_command"),
    "up": ("_up", "up_command"),
    "ports": ("_ports", "ports_command"),
    "wait": ("_wait", "wait_command"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``localport`` command; returns its exit code.

    Every failure is one line on stderr and an exit code from ``localport --help``, never a
    traceback; with ``--json``, an error object on stdout too. A reader of stdout that goes
    away ends the command quietly with 141, even when only the last flush notices.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    token = advice.set(CLI_ADVICE)  # messages give the command line's advice, not Python's
    try:
        code = _run(arguments)
        sys.stdout.flush()
    except BrokenPipeError:
        return reader_went_away()
    finally:
        advice.reset(token)
    return code


def _run(arguments: list[str]) -> int:
    try:
        return _command(arguments)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except Exception as error:  # noqa: BLE001 - every failure is one line and a code
        code, message, details = failure(error)
        if isinstance(error, UsageError):
            sys.stderr.write(error.usage)
            say(f"error: {message}")
        else:
            say(message)
        if _wants_json(arguments):
            print_json(error_json(error, code, message, details))
        return code


def _command(arguments: list[str]) -> int:
    parser = build_parser()
    try:
        namespace, extra = parser.parse_known_args(arguments)
    except SystemExit as done:  # --help, --version: printed; a code is left
        return done.code if isinstance(done.code, int) else 0
    if extra:
        command_parser(parser, namespace.command).error(
            f"unrecognized arguments: {' '.join(extra)}"
        )
    choose_colour(namespace.color)
    module, function = _HANDLERS[namespace.command]
    handler: Any = getattr(importlib.import_module(f"{__package__}.{module}"), function)
    code: int = handler(namespace)
    return code


def _wants_json(arguments: list[str]) -> bool:
    """Whether ``--json`` (or ``ports --format json``) was asked for, before any ``--``."""
    options = arguments[: arguments.index("--")] if "--" in arguments else arguments
    if "--json" in options:
        return True
    return any(
        text in ("--format=json",) or (text == "--format" and following == "json")
        for text, following in zip(options, [*options[1:], ""], strict=True)
    )
