"""The parser of the ``localport`` command: its commands, their options and help."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from ._shared import (
    EXIT_CODES,
    EXIT_LOCK_DIR,
    EXIT_NO,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_START_FAILED,
    EXIT_SYSTEM,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    HOLD_COMMAND,
    CommandError,
    command_exit_codes,
)
from ._types import (
    VersionAction,
    host_type,
    name_type,
    port_type,
    seconds_type,
    signal_type,
    variable_type,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from _typeshed import SupportsWrite

#: Commands that work but are not offered: no usage, help or error message names them.
INTERNAL_COMMANDS = frozenset({HOLD_COMMAND})


class UsageError(CommandError):
    """Bad arguments: the line on stderr follows the usage of the command they were for."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message, EXIT_USAGE)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """Raises :class:`UsageError` (with its own usage) instead of exiting, and keeps internal
    commands out of the choices an error lists."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())

    #: The command parsers by name (on the top-level parser).
    commands: Mapping[str, argparse.ArgumentParser]

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse ignores a failed write; a reader that went away must end with 141.
        if message:
            (file or sys.stderr).write(message)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if action.dest == "command" and value not in (choices or ()):
            offered = ", ".join(name for name in choices or () if name not in INTERNAL_COMMANDS)
            message = f"argument COMMAND: invalid choice: {value!r} (choose from {offered})"
            raise argparse.ArgumentError(None, message)
        super()._check_value(action, value)


_JSON_HELP = "print JSON on stdout (on failure too: an error object)"
_WIDE_HELP = "show whole command lines in the COMMAND column"
_HOST_HELP = "the address %s: localhost, an IP address, 0.0.0.0, :: or * (default 127.0.0.1)"
#: The codes every command may end with, after its own.
_COMMON_CODES = (
    (EXIT_LOCK_DIR, "the lock directory is unsafe or unusable"),
    (EXIT_SYSTEM, "the system refused (a file, socket or process error)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="localport",
        description="Reserve free local ports, and see who holds a busy one.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=VersionAction)
    _add_color(parser, default="auto")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, summary: str, description: str, *codes: tuple[int | str, str]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=command_exit_codes(*codes, *_COMMON_CODES),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # After the command too (`localport who 8000 --color never`); unset, it leaves the
        # choice made before the command, or the default, in place.
        _add_color(sub, default=argparse.SUPPRESS)
        return sub

    reserve = command(
        "reserve",
        "reserve a free port and print it",
        "Reserve a free port (or PORT) and print it on stdout. Without --hold the reservation "
        "ends when this command does, which is only useful as a check: use --hold to keep the "
        "port for a server that a script starts next, e.g.\n"
        "  PORT=$(localport reserve --name api --hold 30)",
        (EXIT_OK, "reserved: the port is on stdout"),
        (EXIT_USAGE, "bad arguments, or a --host that is not an address of this machine"),
        (EXIT_UNAVAILABLE, "PORT is in use, no port of the range is free, or the holder failed"),
    )
    reserve.add_argument("port", nargs="?", type=port_type, help="this port instead of a free one")
    reserve.add_argument(
        "--name",
        type=name_type,
        help="sticky name, scoped to this project (as for run and up): the same port next "
        "time while free",
    )
    reserve.add_argument("--udp", action="store_true", help="reserve for UDP instead of TCP")
    reserve.add_argument(
        "--host", type=host_type, default="127.0.0.1", help=_HOST_HELP % "the server binds"
    )
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
        (EXIT_OK, "something holds the port"),
        (EXIT_NO, "nothing holds it"),
        (EXIT_USAGE, "bad arguments"),
    )
    who.add_argument("port", type=port_type, help="the port to ask about")
    who.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    who.add_argument("--json", action="store_true", help=_JSON_HELP)
    who.add_argument(
        "--time-wait", action="store_true", help="list TIME_WAIT leftovers one by one (counted)"
    )
    who.add_argument("--wide", action="store_true", help=_WIDE_HELP)

    listing = command(
        "list",
        "list reservations (and, with --all, every listening port)",
        "List localport's live reservations; --all adds every listening local port with its "
        "owner, and marks those reachable from the network.",
        (EXIT_OK, "listed"),
        (EXIT_USAGE, "bad arguments"),
    )
    listing.add_argument("--all", action="store_true", help="add every listening port")
    listing.add_argument("--json", action="store_true", help=_JSON_HELP)
    listing.add_argument("--wide", action="store_true", help=_WIDE_HELP)

    kill = command(
        "kill",
        "stop the process (or container) holding a port",
        "Stop the process that holds PORT: SIGTERM (or --signal), then SIGKILL after "
        "--timeout seconds. A container's port (podman, docker) is freed by stopping the "
        "container through its runtime, with --timeout as its grace period. Asks first on a "
        "terminal unless --yes; never touches another user's process or container (even as "
        "root) unless --any-user.",
        (EXIT_OK, "stopped, and the port is free (--dry-run: nothing was done)"),
        (EXIT_NO, "nothing holds the port, or it is still held afterwards"),
        (EXIT_USAGE, "bad arguments"),
        (EXIT_REFUSED, "another user's process, a holder it cannot name, or not confirmed"),
    )
    kill.add_argument("port", type=port_type, help="the port to free")
    kill.add_argument(
        "--signal",
        type=signal_type,
        default=signal.SIGTERM,
        metavar="SIGNAL",
        help="the signal to send first: a name (TERM, INT, HUP...) or a number (default TERM)",
    )
    kill.add_argument(
        "--timeout",
        type=seconds_type,
        default=5.0,
        metavar="SECONDS",
        help="how long the process (or container) has before SIGKILL (default 5)",
    )
    kill.add_argument("--yes", action="store_true", help="do not ask")
    kill.add_argument("--any-user", action="store_true", help="allow other users' processes")
    kill.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    kill.add_argument("--dry-run", action="store_true", help="say what would be done; do nothing")
    kill.add_argument("--json", action="store_true", help="print what was done as JSON")

    release = command(
        "release",
        "end a `reserve --hold`",
        "End the holder `reserve --hold` left on PORT.",
        (EXIT_OK, "released"),
        (EXIT_NO, "no localport reservation holds the port, or its holder did not let go"),
        (EXIT_USAGE, "bad arguments"),
        (EXIT_REFUSED, "the reservation is not a `reserve --hold` holder's"),
    )
    release.add_argument("port", type=port_type, help="the port `reserve --hold` printed")
    release.add_argument("--json", action="store_true", help=_JSON_HELP)

    _add_launchers(command)

    # The background holder of `reserve --hold`: callable, but named nowhere (no help=).
    hold = commands.add_parser(HOLD_COMMAND)
    hold.add_argument("--port", type=port_type)
    hold.add_argument("--name")
    hold.add_argument("--scope")
    hold.add_argument("--host", default="127.0.0.1")
    hold.add_argument("--proto", default="tcp")
    hold.add_argument("--seconds", type=seconds_type, required=True)
    hold.add_argument("--report-fd", type=int, required=True)
    parser.commands = commands.choices
    return parser


def _add_color(parser: argparse.ArgumentParser, *, default: str) -> None:
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default=default,
        metavar="WHEN",
        help="colour the output: auto (on a terminal, unless NO_COLOR or TERM=dumb; the "
        "default), always, never",
    )


def _seconds(parser: argparse.ArgumentParser, option: str, default: float, what: str) -> None:
    """An option that takes a number of seconds."""
    parser.add_argument(
        option,
        type=seconds_type,
        default=default,
        metavar="SECONDS",
        help=f"{what} (default {default:g})",
    )


def _add_launchers(command: Callable[..., argparse.ArgumentParser]) -> None:
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
        ("N", "once the server listens: the server's own exit code"),
        (EXIT_USAGE, "bad arguments, or a --host that is not an address of this machine"),
        (EXIT_UNAVAILABLE, "--port is in use, or no port of the range is free"),
        (EXIT_START_FAILED, "the server exited, listened elsewhere or did not listen in time"),
    )
    run.add_argument(
        "--name",
        type=name_type,
        help="sticky name, scoped to this project: the same port on the next run while free",
    )
    run.add_argument("--port", type=port_type, help="this port instead of a free one")
    run.add_argument(
        "--host", type=host_type, default="127.0.0.1", help=_HOST_HELP % "the server binds"
    )
    run.add_argument(
        "--env",
        action="append",
        default=[],
        type=variable_type,
        metavar="VAR",
        help="also set VAR to the port",
    )
    _seconds(run, "--ready-timeout", 30.0, "how long the server may take to listen")
    run.add_argument(
        "--json",
        action="store_true",
        help="once the server listens, print one line of JSON about it on stdout; the "
        "server's own output goes to stderr",
    )
    run.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="-- CMD ARGS",
        help="the server's command line, with placeholders",
    )

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
        ("N", "the exit code of the first service that exits by itself"),
        (EXIT_USAGE, "bad arguments, or a Procfile that cannot be used"),
        (EXIT_UNAVAILABLE, "no port of the range is free"),
        (EXIT_START_FAILED, "a server exited, listened elsewhere or did not listen in time"),
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
    up.add_argument(
        "--host", type=host_type, default="127.0.0.1", help=_HOST_HELP % "the servers bind"
    )
    _seconds(up, "--ready-timeout", 30.0, "how long the servers may take to listen")
    _seconds(up, "--timeout", 5.0, "when stopping, how long a service has after SIGTERM")
    up.add_argument(
        "--json",
        action="store_true",
        help="once every server listens, print one line of JSON about the services on "
        "stdout; their own output goes to stderr",
    )

    ports = command(
        "ports",
        "show the project's port assignments",
        "Show each server of the project's Procfile (or each name recorded for this project "
        "by run --name or up) with its port, URL, and whether it is listening, reserved or "
        "free now. --format env prints NAME_PORT= and NAME_URL= lines for a shell or a .env "
        "file; markdown, a table for a README.",
        (EXIT_OK, "shown"),
        (EXIT_USAGE, "bad arguments, or a Procfile that cannot be used"),
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
    ports.add_argument(
        "--json",
        action="store_const",
        const="json",
        dest="format",
        help="the same as --format json",
    )

    wait = command(
        "wait",
        "wait until a port is listened on (or, with --free, let go)",
        "Wait until a TCP server listens on PORT where clients of --host reach it (or, with "
        "--free, until nothing holds PORT).",
        (EXIT_OK, "it happened"),
        (EXIT_USAGE, "bad arguments"),
        (EXIT_TIMEOUT, "the time ran out"),
    )
    wait.add_argument("port", type=port_type, help="the port to wait for")
    wait.add_argument(
        "--host",
        type=host_type,
        default="127.0.0.1",
        help="the address clients connect to (default 127.0.0.1)",
    )
    _seconds(wait, "--timeout", 30.0, "how long to wait")
    wait.add_argument("--free", action="store_true", help="wait until the port is let go")
    wait.add_argument("--udp", action="store_true", help="with --free: a UDP port")
    wait.add_argument("--json", action="store_true", help=_JSON_HELP)


def command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The sub-parser of the command *name*, whose usage its errors show."""
    commands: Mapping[str, argparse.ArgumentParser] = getattr(parser, "commands", {})
    return commands.get(name, parser)
