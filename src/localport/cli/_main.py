"""The parser, the exit codes, and :func:`main`, which turns every failure into one line."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from .._arguments import check_port, check_seconds
from .._errors import (
    AddressNotAvailableError,
    LocalportError,
    LockDirError,
    NoFreePortError,
    PortInUseError,
    ServerStartError,
)
from ._colour import choose as choose_colour
from ._render import say
from ._shared import (
    EXIT_BROKEN_PIPE,
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_LOCK_DIR,
    EXIT_OK,
    EXIT_START_FAILED,
    EXIT_SYSTEM,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    HOLD_COMMAND,
    CommandError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"localport: error: {message}\n")


class _VersionAction(argparse.Action):
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="localport",
        description="Reserve free local ports, and see who holds a busy one.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        metavar="WHEN",
        help="colour the output: auto (on a terminal, unless NO_COLOR or TERM=dumb; the "
        "default), always, never",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    reserve = command(
        "reserve",
        "reserve a free port and print it",
        "Reserve a free port (or PORT) and print it on stdout. Without --hold the reservation "
        "ends when this command does, which is only useful as a check: use --hold to keep the "
        "port for a server that a script starts next, e.g.\n"
        "  PORT=$(localport reserve --name api --hold 30)",
    )
    reserve.add_argument("port", nargs="?", type=port_type, help="this port instead of a free one")
    reserve.add_argument(
        "--name",
        help="sticky name, scoped to this project (as for run and up): the same port next "
        "time while free",
    )
    reserve.add_argument("--udp", action="store_true", help="reserve for UDP instead of TCP")
    reserve.add_argument("--host", default="127.0.0.1", help="the address the server binds")
    reserve.add_argument(
        "--hold",
        type=seconds_type,
        metavar="SECONDS",
        help="leave a background holder that keeps the port until another process listens "
        "on it, or SECONDS pass (end it early with `localport release PORT`)",
    )
    reserve.add_argument("--json", action="store_true", help="print JSON instead of the port")

    who = command(
        "who",
        "show who holds a port",
        "Show which process holds PORT: PID, user, command, address, state, since when.",
    )
    who.add_argument("port", type=port_type)
    who.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    who.add_argument("--json", action="store_true")
    who.add_argument(
        "--time-wait", action="store_true", help="list TIME_WAIT leftovers one by one (counted)"
    )
    who.add_argument("--wide", action="store_true", help="show whole command lines")

    listing = command(
        "list",
        "list reservations (and, with --all, every listening port)",
        "List localport's live reservations; --all adds every listening local port with its "
        "owner, and marks those reachable from the network.",
    )
    listing.add_argument("--all", action="store_true", help="add every listening port")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--wide", action="store_true", help="show whole command lines")

    kill = command(
        "kill",
        "stop the process (or container) holding a port",
        "Stop the process that holds PORT: SIGTERM (or --signal), then SIGKILL after "
        "--timeout seconds. A container's port (podman, docker) is freed by stopping the "
        "container through its runtime, with --timeout as its grace period. Asks first on a "
        "terminal unless --yes; never touches another user's process or container (even as "
        "root) unless --any-user.",
    )
    kill.add_argument("port", type=port_type)
    kill.add_argument("--signal", type=signal_type, default=signal.SIGTERM, metavar="SIGNAL")
    kill.add_argument("--timeout", type=seconds_type, default=5.0, metavar="SECONDS")
    kill.add_argument("--yes", action="store_true", help="do not ask")
    kill.add_argument("--any-user", action="store_true", help="allow other users' processes")
    kill.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    kill.add_argument("--dry-run", action="store_true", help="say what would be done; do nothing")
    kill.add_argument("--json", action="store_true", help="print what was done as JSON")

    release = command(
        "release", "end a `reserve --hold`", "End the holder `reserve --hold` left on PORT."
    )
    release.add_argument("port", type=port_type)

    _add_launchers(command)

    hold = commands.add_parser(HOLD_COMMAND)  # the background holder of `reserve --hold`
    hold.add_argument("--port", type=port_type)
    hold.add_argument("--name")
    hold.add_argument("--scope")
    hold.add_argument("--host", default="127.0.0.1")
    hold.add_argument("--proto", default="tcp")
    hold.add_argument("--seconds", type=seconds_type, required=True)
    hold.add_argument("--report-fd", type=int, required=True)
    return parser


def _seconds(parser: argparse.ArgumentParser, option: str, default: float, what: str) -> None:
    """An option that takes a number of seconds."""
    parser.add_argument(
        option,
        type=seconds_type,
        default=default,
        metavar="SECONDS",
        help=f"{what} (default {default:g})",
    )


def _add_launchers(command: Callable[[str, str, str], argparse.ArgumentParser]) -> None:
    """The commands that start servers (run, up) and the ones beside them (ports, wait)."""
    run = command(
        "run",
        "start a dev server on a reserved port",
        "Reserve a port, start CMD with its placeholders replaced and PORT set, wait until it "
        "listens, print its URL, and pass Ctrl-C and SIGTERM on to it, e.g.\n"
        "  localport run -- python -m http.server {port} --bind 127.0.0.1\n"
        "  localport run --name api -- uvicorn app:app --fd {fd}\n"
        "  localport run --name web -- npm run dev -- --port {port} --api {url:api}\n\n"
        "placeholders:\n"
        "  {port} {host} {url}   the server's own port, address and URL\n"
        "  {fd}                  a socket already listening on the port, inherited\n"
        "  {port:NAME} {url:NAME}  the port and URL of the server run --name NAME started\n"
        "                        in this project (the directory with the Procfile, else the\n"
        "                        git checkout, else the current directory)",
    )
    run.add_argument(
        "--name",
        help="sticky name, scoped to this project: the same port on the next run while free",
    )
    run.add_argument("--port", type=port_type, help="this port instead of a free one")
    run.add_argument("--host", default="127.0.0.1", help="the address the server binds")
    run.add_argument(
        "--env",
        action="append",
        default=[],
        type=variable_type,
        metavar="VAR",
        help="also set VAR to the port",
    )
    _seconds(run, "--ready-timeout", 30.0, "how long the server may take to listen")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS")

    up = command(
        "up",
        "start the services of a Procfile, on stable ports",
        "Start every service of a Procfile (or the SERVICEs named). A service whose command "
        "mentions {port}, {url}, {fd}, $PORT or ${PORT} is a server: it gets a port of its "
        "own, stable across restarts and different in each checkout of the project, and is "
        "waited for until it listens. Every command may use {port}, {url}, {host}, {fd}, and "
        "{port:NAME}, {url:NAME} of another server; every service gets NAME_PORT and "
        "NAME_URL for each server. Output lines are prefixed with the service's name. Ctrl-C "
        "or SIGTERM stops everything; so does any service exiting (up exits with its code).",
    )
    up.add_argument(
        "services", nargs="*", metavar="SERVICE", help="start only these (default: all)"
    )
    up.add_argument(
        "-f",
        "--file",
        default="Procfile",
        metavar="PROCFILE",
        help="the Procfile (default ./Procfile); a .env beside it is loaded",
    )
    up.add_argument("--host", default="127.0.0.1", help="the address the servers bind")
    _seconds(up, "--ready-timeout", 30.0, "how long the servers may take to listen")
    _seconds(up, "--timeout", 5.0, "when stopping, how long a service has after SIGTERM")

    ports = command(
        "ports",
        "show the project's port assignments",
        "Show each server of the project's Procfile (or each name recorded for this project "
        "by run --name or up) with its port, URL, and whether it is listening, reserved or "
        "free now. --format env prints NAME_PORT= and NAME_URL= lines for a shell or a .env "
        "file; markdown, a table for a README.",
    )
    ports.add_argument(
        "-f", "--file", metavar="PROCFILE", help="the Procfile (default: the project's)"
    )
    ports.add_argument(
        "--format",
        choices=("table", "env", "json", "markdown"),
        default="table",
        help="output format (default table)",
    )

    wait = command(
        "wait",
        "wait until a port is listened on (or, with --free, let go)",
        "Wait until a TCP server listens on PORT where clients of --host reach it (or, with "
        "--free, until nothing holds PORT). Exits 0 when it happened, 8 when the time ran out.",
    )
    wait.add_argument("port", type=port_type)
    wait.add_argument("--host", default="127.0.0.1", help="the address clients connect to")
    _seconds(wait, "--timeout", 30.0, "how long to wait")
    wait.add_argument("--free", action="store_true", help="wait until the port is let go")
    wait.add_argument("--udp", action="store_true", help="with --free: a UDP port")


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

    Every failure is one line on stderr and an exit code from ``localport --help``: never a
    traceback.
    """
    arguments = build_parser().parse_args(argv)
    choose_colour(arguments.color)
    module, function = _HANDLERS[arguments.command]
    handler = getattr(importlib.import_module(f"{__package__}.{module}"), function)
    try:
        code: int = handler(arguments)
        sys.stdout.flush()
    except CommandError as failure:
        say(str(failure))
        return failure.code
    except BrokenPipeError:
        return _reader_went_away()
    except (PortInUseError, NoFreePortError) as error:
        say(str(error))
        return EXIT_UNAVAILABLE
    except LockDirError as error:
        say(str(error))
        return EXIT_LOCK_DIR
    except AddressNotAvailableError as error:
        say(str(error))
        return EXIT_USAGE
    except ServerStartError as error:
        # One line: the server's last output, which the message carries too, was on stdout.
        say(error.summary)
        return EXIT_START_FAILED
    except (ValueError, TypeError) as error:
        say(str(error))
        return EXIT_USAGE
    except (LocalportError, OSError) as error:
        say(str(error) or type(error).__name__)
        return EXIT_SYSTEM
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


def _reader_went_away() -> int:
    """stdout's reader closed the pipe: stop quietly, as ``cat`` does.

    Whatever is still buffered would fail again when the interpreter flushes stdout at exit,
    printing a traceback there; pointing stdout at /dev/null drops it.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE
