"""The argument types of the command line: text converted, then checked with the API's own
checks, and refused with a message that names the option."""

from __future__ import annotations

import argparse
import signal
from typing import TYPE_CHECKING, Any, NoReturn

from .._arguments import (
    HOST_HELP,
    NAME_LIMIT,
    check_name,
    check_port,
    check_seconds,
    normalize_host,
)
from ._shared import EXIT_OK

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


def _argument_type(check: Callable[[Any], Any], convert: Callable[[str], Any], what: str) -> Any:
    """An argparse type: *convert* the text, then *check* it with the API's own checks."""

    def parse(text: str) -> Any:
        try:
            return check(convert(text))
        except (TypeError, ValueError):
            msg = f"expected {what}, not {text!r}"
            raise argparse.ArgumentTypeError(msg) from None

    return parse


def _int10(text: str) -> int:
    return int(text, 10)


port_type = _argument_type(check_port, _int10, "a port, a number from 1 to 65535")
seconds_type = _argument_type(
    lambda value: check_seconds(value, "SECONDS"), float, "a number of seconds > 0"
)


def host_type(text: str) -> str:
    """``--host``: checked as the API checks ``host``, named as the command line names it."""
    try:
        normalize_host(text)
    except ValueError:
        msg = f"expected {HOST_HELP}, not {text!r} (no name but localhost is resolved)"
        raise argparse.ArgumentTypeError(msg) from None
    return text


def name_type(text: str) -> str:
    try:
        check_name(text)
    except ValueError:
        msg = f"a name is 1 to {NAME_LIMIT} characters without NUL, not {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return text


def variable_type(text: str) -> str:
    if not text.isidentifier():
        msg = f"an environment variable name is letters, digits and _, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


SIGNAL_NAMES = ("TERM", "INT", "HUP", "KILL", "QUIT", "USR1", "USR2")


def signal_type(text: str) -> signal.Signals:
    name = text.upper().removeprefix("SIG")
    if name.isdigit():
        try:
            return signal.Signals(int(name))
        except ValueError:
            pass
    elif hasattr(signal, f"SIG{name}"):
        return signal.Signals(getattr(signal, f"SIG{name}"))
    msg = f"unknown signal {text!r}; use one of {', '.join(SIGNAL_NAMES)} or a number"
    raise argparse.ArgumentTypeError(msg)


class VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked.

    ``importlib.metadata`` costs about 100 ms to import: building the version string into the
    parser made every command pay it.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        from .._version import installed_version

        print(f"localport {installed_version()}")
        parser.exit(EXIT_OK)
