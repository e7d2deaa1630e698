"""The ``localport`` command: reserve, who, list, kill, release and run.

stdout carries the answer (a port, a table, JSON with ``--json``); stderr the diagnostics.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Literal, NoReturn

from ._errors import LocalportError, LockDirError, NoFreePortError, PortInUseError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._holders import Holder
    from ._registry import ReservationInfo

EXIT_OK = 0
EXIT_NO = 1  # who: nothing holds it; release/kill: nothing to act on
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  # the port is in use, or no port is free
EXIT_REFUSED = 4  # another user's process, or not confirmed
EXIT_START_FAILED = 5  # run: the command exited or never listened
EXIT_LOCK_DIR = 6
EXIT_INTERRUPTED = 130

EXIT_CODES = f"""exit codes:
  {EXIT_OK}    success (who: something holds the port)
  {EXIT_NO}    nothing to report or act on (who: nothing holds it; release, kill: no holder)
  {EXIT_USAGE}    bad arguments
  {EXIT_UNAVAILABLE}    the port is in use, or no port is free in the range
  {EXIT_REFUSED}    refused: another user's process, or not confirmed
  {EXIT_START_FAILED}    run: the command exited or did not listen in time
  {EXIT_LOCK_DIR}    the lock directory is unsafe or unusable
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C) before finishing
  run exits with the command's own exit code once it has started."""

_HOLD_MARKER = "_hold"
#: The advice the command line gives where the Python API says "call reserve() without a port".
_ELSEWHERE = "use another port (`localport reserve` picks a free one)"
_SIGNALS = ("TERM", "INT", "HUP", "KILL", "QUIT", "USR1", "USR2")


class _CommandError(Exception):
    """A one-line error for stderr, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"localport: error: {message}\n")


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        msg = f"a port is a number from 1 to 65535, not {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 1 <= value <= 65535:
        msg = f"a port is a number from 1 to 65535, not {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"expected a number of seconds, not {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not value > 0:
        msg = f"expected a number of seconds > 0, not {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _variable(text: str) -> str:
    if not text.isidentifier():
        msg = f"an environment variable name is letters, digits and _, not {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return text


def _signal(text: str) -> signal.Signals:
    name = text.upper().removeprefix("SIG")
    if name.isdigit():
        try:
            return signal.Signals(int(name))
        except ValueError:
            pass
    elif hasattr(signal, f"SIG{name}"):
        return signal.Signals(getattr(signal, f"SIG{name}"))
    msg = f"unknown signal {text!r}; use one of {', '.join(_SIGNALS)} or a number"
    raise argparse.ArgumentTypeError(msg)


def _parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("localport")
    except PackageNotFoundError:
        installed = "unknown"
    parser = _Parser(
        prog="localport",
        description="Reserve free local ports, and see who holds a busy one.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"localport {installed}")
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
    reserve.add_argument("port", nargs="?", type=_port, help="this port instead of a free one")
    reserve.add_argument("--name", help="sticky name: the same port next time while free")
    reserve.add_argument("--udp", action="store_true", help="reserve for UDP instead of TCP")
    reserve.add_argument("--host", default="127.0.0.1", help="the address the server binds")
    reserve.add_argument(
        "--hold",
        type=_seconds,
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
    who.add_argument("port", type=_port)
    who.add_argument("--udp", action="store_true", help="UDP instead of TCP")
    who.add_argument("--json", action="store_true")

    listing = command(
        "list",
        "list reservations (and, with --all, every listening port)",
        "List localport's live reservations; --all adds every listening local port with its "
        "owner, and marks those reachable from the network.",
    )
    listing.add_argument("--all", action="store_true", help="add every listening port")
    listing.add_argument("--json", action="store_true")

    kill = command(
        "kill",
        "stop the process holding a port",
        "Stop the process that holds PORT: SIGTERM (or --signal), then SIGKILL after "
        "--timeout seconds. Asks first on a terminal unless --yes; never touches another "
        "user's process (even as root) unless --any-user.",
    )
    kill.add_argument("port", type=_port)
    kill.add_argument("--signal", type=_signal, default=signal.SIGTERM, metavar="SIGNAL")
    kill.add_argument("--timeout", type=_seconds, default=5.0, metavar="SECONDS")
    kill.add_argument("--yes", action="store_true", help="do not ask")
    kill.add_argument("--any-user", action="store_true", help="allow other users' processes")
    kill.add_argument("--udp", action="store_true", help="UDP instead of TCP")

    release = command(
        "release", "end a `reserve --hold`", "End the holder `reserve --hold` left on PORT."
    )
    release.add_argument("port", type=_port)

    run = command(
        "run",
        "start a dev server on a reserved port",
        "Reserve a port, start CMD with {port}, {host} and {url} replaced and PORT set, wait "
        "until it listens, print its URL, and pass Ctrl-C and SIGTERM on to it, e.g.\n"
        "  localport run -- python -m http.server {port} --bind 127.0.0.1",
    )
    run.add_argument("--name", help="sticky name: the same port on the next run while free")
    run.add_argument("--port", type=_port, help="this port instead of a free one")
    run.add_argument("--host", default="127.0.0.1", help="the address the server binds")
    run.add_argument(
        "--env",
        action="append",
        default=[],
        type=_variable,
        metavar="VAR",
        help="also set VAR to the port",
    )
    run.add_argument("--ready-timeout", type=_seconds, default=30.0, metavar="SECONDS")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD ARGS")

    hold = commands.add_parser(_HOLD_MARKER)  # the background holder of `reserve --hold`
    hold.add_argument("--port", type=_port)
    hold.add_argument("--name")
    hold.add_argument("--host", default="127.0.0.1")
    hold.add_argument("--proto", default="tcp")
    hold.add_argument("--seconds", type=_seconds, required=True)
    hold.add_argument("--report-fd", type=int, required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``localport`` command; returns its exit code."""
    arguments = _parser().parse_args(argv)
    handlers = {
        "reserve": _reserve,
        "who": _who,
        "list": _list,
        "kill": _kill,
        "release": _release,
        "run": _run,
        _HOLD_MARKER: _hold,
    }
    try:
        return handlers[arguments.command](arguments)
    except _CommandError as failure:
        _say(str(failure))
        return failure.code
    except (PortInUseError, NoFreePortError) as error:
        _say(str(error))
        return EXIT_UNAVAILABLE
    except LockDirError as error:
        _say(str(error))
        return EXIT_LOCK_DIR
    except (ValueError, TypeError) as error:
        _say(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _say(message: str) -> None:
    print(f"localport: {message}", file=sys.stderr)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


# -- reserve / _hold / release -------------------------------------------------------------------


def _reserve(arguments: argparse.Namespace) -> int:
    from ._reserve import reserve

    proto: Literal["tcp", "udp"] = "udp" if arguments.udp else "tcp"
    if arguments.hold is not None:
        report = _start_holder(arguments, proto)
    else:
        with reserve(arguments.port, name=arguments.name, host=arguments.host, proto=proto) as r:
            report = {"port": r.port, "host": r.host, "proto": r.proto, "name": r.name}
            report.update(url=r.url(), holder_pid=None, hold_seconds=None)
    if arguments.json:
        _print_json(report)
    else:
        print(report["port"])
    return EXIT_OK


def _start_holder(arguments: argparse.Namespace, proto: str) -> dict[str, Any]:
    """Start the background holder and return what it reported (port, pid...)."""
    if not hasattr(os, "fork"):
        msg = "--hold needs a POSIX system (fork); on Windows, keep a Python process holding it"
        raise _CommandError(msg, EXIT_USAGE)
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "localport", _HOLD_MARKER]
    command += ["--seconds", str(arguments.hold), "--host", arguments.host, "--proto", proto]
    command += ["--report-fd", str(write_end)]
    if arguments.port is not None:
        command += ["--port", str(arguments.port)]
    if arguments.name is not None:
        command += ["--name", arguments.name]
    pid = os.fork()
    if pid == 0:  # the child: start the holder in a session of its own, then leave
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() == 0:
                devnull = os.open(os.devnull, os.O_RDWR)
                for stream in (0, 1, 2):
                    os.dup2(devnull, stream)
                os.set_inheritable(write_end, True)  # pipes are close-on-exec by default
                os.execv(sys.executable, command)  # noqa: S606 - our own interpreter
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as report_stream:
        line = report_stream.readline()
    if not line:
        raise _CommandError("the background holder did not start", EXIT_UNAVAILABLE)
    report: dict[str, Any] = json.loads(line)
    if "error" in report:
        raise _CommandError(str(report["error"]), int(report["code"]))
    return report


def _hold(arguments: argparse.Namespace) -> int:
    """The background holder: keep the port until someone else listens, or time is up."""
    from ._reserve import reserve
    from ._wait import accepts_connections, listeners

    report_fd = arguments.report_fd
    try:
        reservation = reserve(
            arguments.port, name=arguments.name, host=arguments.host, proto=arguments.proto
        )
    except (LocalportError, OSError, ValueError) as error:
        code = EXIT_LOCK_DIR if isinstance(error, LockDirError) else EXIT_UNAVAILABLE
        os.write(report_fd, json.dumps({"error": str(error), "code": code}).encode() + b"\n")
        return code
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    report = {
        "port": reservation.port,
        "host": reservation.host,
        "proto": reservation.proto,
        "name": reservation.name,
        "url": reservation.url(),
        "holder_pid": os.getpid(),
        "hold_seconds": arguments.seconds,
    }
    os.write(report_fd, json.dumps(report).encode() + b"\n")
    os.close(report_fd)
    deadline = time.monotonic() + arguments.seconds
    with reservation:
        while not stop.is_set() and time.monotonic() < deadline:
            if reservation.proto == "tcp":
                found = listeners(reservation.port, reservation.host)
                if (
                    found
                    if found is not None
                    else accepts_connections(reservation.port, reservation.host)
                ):
                    break  # the server it was held for has bound it
            stop.wait(0.05)
    return EXIT_OK


def _release(arguments: argparse.Namespace) -> int:
    from ._processes import facts
    from ._registry import Registry

    port = arguments.port
    info = Registry.open(None).reservation_at(port)
    if info is None:
        raise _CommandError(f"no localport reservation holds port {port}", EXIT_NO)
    process = facts(info.pid)
    if (
        process is None
        or _HOLD_MARKER not in process.cmdline
        or not any("localport" in part for part in process.cmdline)
    ):
        command = " ".join(process.cmdline) if process else "?"
        msg = (
            f"port {port} is reserved by PID {info.pid} ({command}), not by a "
            "`localport reserve --hold` holder; stop that process instead"
        )
        raise _CommandError(msg, EXIT_REFUSED)
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while Registry.open(None).reservation_at(port) is not None:
        if time.monotonic() > deadline:
            raise _CommandError(
                f"the holder (PID {info.pid}) of port {port} did not let go", EXIT_NO
            )
        time.sleep(0.02)
    _say(f"released port {port} (holder PID {info.pid})")
    return EXIT_OK


# -- who / list ----------------------------------------------------------------------------------


def _holder_json(holder: Holder) -> dict[str, Any]:
    family = {2: "IPv4", 10: "IPv6"}.get(int(holder.family), "IPv6") if holder.family else None
    return {
        "pid": holder.pid,
        "process_name": holder.process_name,
        "cmdline": list(holder.cmdline),
        "username": holder.username,
        "uid": holder.uid,
        "local_address": list(holder.local_address) if holder.local_address else None,
        "remote_address": list(holder.remote_address) if holder.remote_address else None,
        "status": holder.status,
        "proto": holder.proto,
        "family": family,
        "v6only": holder.v6only,
        "started": holder.started,
        "reservation": _reservation_json(holder.reservation) if holder.reservation else None,
    }


def _reservation_json(info: ReservationInfo) -> dict[str, Any]:
    return {
        "port": info.port,
        "proto": info.proto,
        "host": info.host,
        "name": info.name,
        "pid": info.pid,
        "process_started": info.process_started,
        "created": info.created,
        "lease_until": info.lease_until,
        "guarded": info.guarded,
    }


def _table(rows: list[list[str]], out: IO[str]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


def _since(started: float | None) -> str:
    if started is None:
        return "-"
    if time.time() - started < 86400:
        return time.strftime("%H:%M:%S", time.localtime(started))
    return time.strftime("%Y-%m-%d", time.localtime(started))


def _holder_rows(holders: Sequence[Holder], *, exposure: bool = False) -> list[list[str]]:
    header = ["PID", "USER", "PROTO", "ADDRESS", "STATE", "SINCE", "NAME", "COMMAND"]
    rows = [[*header, "REACHABLE"] if exposure else header]
    for holder in holders:
        address = "-"
        if holder.local_address is not None:
            address = f"{holder.address_text}:{holder.local_address[1]}"
        user = holder.username or ("-" if holder.uid is None else str(holder.uid))
        name = holder.reservation.name if holder.reservation and holder.reservation.name else "-"
        row = [
            "?" if holder.pid is None else str(holder.pid),
            user,
            holder.proto,
            address,
            holder.status,
            _since(holder.started),
            name,
            " ".join(holder.command.split())[:60] or "-",
        ]
        if exposure:
            row.append("network" if _exposed(holder) else "local")
        rows.append(row)
    return rows


def _exposed(holder: Holder) -> bool:
    """Whether a listener answers other machines (it is not bound to a loopback address)."""
    if holder.local_address is None:
        return False
    import ipaddress

    try:
        return not ipaddress.ip_address(holder.local_address[0]).is_loopback
    except ValueError:
        return True


def _who(arguments: argparse.Namespace) -> int:
    from ._holders import explain, who_holds

    port, proto = arguments.port, "udp" if arguments.udp else "tcp"
    holders = who_holds(port, proto=proto)
    explanation = (
        f"port {port} is in use {explain(port, holders, instead=_ELSEWHERE)}" if holders else None
    )
    if arguments.json:
        _print_json(
            {
                "port": port,
                "proto": proto,
                "in_use": bool(holders),
                "explanation": explanation,
                "holders": [_holder_json(h) for h in holders],
            }
        )
        return EXIT_OK if holders else EXIT_NO
    if not holders:
        print(f"nothing holds port {port} ({proto})")
        return EXIT_NO
    _table(_holder_rows(holders), sys.stdout)
    print(file=sys.stdout)
    print(explanation, file=sys.stdout)
    loopback_only = {h.local_address[0] for h in holders if h.local_address} <= {"::1"}
    if loopback_only and any(h.status == "LISTEN" for h in holders):
        print(
            f"nothing listens on 127.0.0.1:{port}, but a server listens on [::1]:{port}; "
            "'localhost' may resolve to either",
            file=sys.stdout,
        )
    return EXIT_OK


def _list(arguments: argparse.Namespace) -> int:
    from ._processes import facts
    from ._reserve import reservations

    live = reservations()
    report: dict[str, Any] = {"reservations": []}
    rows = [["PORT", "PROTO", "NAME", "PID", "AGE", "COMMAND"]]
    now = time.time()
    for info in live:
        process = facts(info.pid)
        command = " ".join(process.cmdline) if process else ""
        report["reservations"].append({**_reservation_json(info), "command": command})
        name = info.name or "-"
        rows.append(
            [
                str(info.port),
                info.proto,
                name,
                str(info.pid),
                f"{now - info.created:.0f}s",
                command[:60],
            ]
        )
    if arguments.all:
        from ._holders import listening

        everything = listening(proto="both")
        report["listening"] = [
            {**_holder_json(h), "reachable_from_network": _exposed(h)} for h in everything
        ]
    if arguments.json:
        _print_json(report)
        return EXIT_OK
    if live:
        _table(rows, sys.stdout)
    else:
        print("no localport reservations")
    if arguments.all:
        print()
        if everything:
            _table(_holder_rows(everything, exposure=True), sys.stdout)
            exposed = [h for h in everything if _exposed(h)]
            if exposed:
                print(f"\n{len(exposed)} listening socket(s) are reachable from the network")
        else:
            print("nothing listens")
    return EXIT_OK


# -- kill ----------------------------------------------------------------------------------------


def _kill(arguments: argparse.Namespace) -> int:
    from ._holders import explain, who_holds
    from ._processes import facts
    from ._registry import process_start_time
    from ._wait import WaitTimeoutError, wait_until_free

    port, proto = arguments.port, "udp" if arguments.udp else "tcp"
    holders = [h for h in who_holds(port, proto=proto) if h.status != "TIME_WAIT"]
    # The processes with sockets on the port; a reservation's holder only where nothing else
    # is there (a `localport run` holds the port for the server it started: stop the server).
    sockets = [h for h in holders if h.status != "RESERVED"]
    holders = sockets or holders
    if not holders:
        everything = who_holds(port, proto=proto)
        if everything:
            raise _CommandError(
                f"port {port} is in use {explain(port, everything, instead=_ELSEWHERE)}", EXIT_NO
            )
        raise _CommandError(f"nothing holds port {port}", EXIT_NO)
    unknown = [h for h in holders if h.pid is None]
    if unknown:
        raise _CommandError(
            f"port {port} is in use {explain(port, unknown, instead=_ELSEWHERE)}", EXIT_REFUSED
        )
    pids = sorted({h.pid for h in holders if h.pid is not None and h.pid != os.getpid()})
    if not pids:
        raise _CommandError(f"port {port} is held by this very command", EXIT_REFUSED)
    me = os.getuid() if hasattr(os, "getuid") else None
    for pid in pids:
        process = facts(pid)
        if process is None:
            continue
        if me is not None and process.uid != me and not arguments.any_user:
            owner = process.username or f"uid {process.uid}"
            msg = (
                f"PID {pid} ({' '.join(process.cmdline) or process.name}) belongs to {owner}; "
                "localport kill stops only your own processes (pass --any-user to override)"
            )
            raise _CommandError(msg, EXIT_REFUSED)
        if not arguments.yes:
            _confirm(port, pid, process.cmdline)
    started = {pid: process_start_time(pid) for pid in pids}
    for pid in pids:
        _send(pid, started[pid], arguments.signal)
    deadline = time.monotonic() + arguments.timeout
    while any(_same_process(pid, started[pid]) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                _send(pid, started[pid], getattr(signal, "SIGKILL", signal.SIGTERM))
            break
        time.sleep(0.05)
    try:
        wait_until_free(port, proto=proto, host="127.0.0.1", timeout=arguments.timeout)
    except WaitTimeoutError:
        raise _CommandError(
            f"port {port} is still held after stopping PID(s) {pids}", EXIT_NO
        ) from None
    _say(f"stopped PID {', '.join(map(str, pids))}; port {port} is free")
    return EXIT_OK


def _confirm(port: int, pid: int, cmdline: Sequence[str]) -> None:
    if not sys.stdin.isatty():
        msg = "not a terminal, so not asking: pass --yes to stop it"
        raise _CommandError(msg, EXIT_REFUSED)
    answer = input(f"stop PID {pid} ({' '.join(cmdline)}) holding port {port}? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise _CommandError("not stopped", EXIT_REFUSED)


def _same_process(pid: int, started: float | None) -> bool:
    """Whether *pid* still names the process we looked at (not a new one with its number)."""
    from ._registry import pid_alive, process_start_time

    if not pid_alive(pid):
        return False
    now = process_start_time(pid)
    return started is None or now is None or abs(now - started) < 1.0


def _send(pid: int, started: float | None, signum: int) -> None:
    # Checked before each signal: the PID may have been reused since we looked.
    if _same_process(pid, started):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


# -- run -----------------------------------------------------------------------------------------


def _run(arguments: argparse.Namespace) -> int:
    from ._launch import Server, ServerStartError, launch

    command = list(arguments.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise _CommandError(
            "run needs a command after --, e.g. localport run -- flask run --port {port}",
            EXIT_USAGE,
        )
    # Signals are handled from before the server starts: one that arrives while it starts
    # stops it (it runs in a session of its own, so the terminal's signals do not reach it).
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    target: list[Server] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not target:
            raise _Interrupted(signum)
        with contextlib.suppress(OSError):
            os.killpg(target[0].pid, signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    try:
        spinner = _Spinner(sys.stderr) if sys.stderr.isatty() else None
        try:
            with spinner or contextlib.nullcontext():
                server = launch(
                    command,
                    name=arguments.name,
                    port=arguments.port,
                    host=arguments.host,
                    env_var=["PORT", *arguments.env],
                    ready_timeout=arguments.ready_timeout,
                    echo=sys.stdout,
                )
        except ServerStartError as error:
            _say(str(error))
            return EXIT_START_FAILED
        except _Interrupted as interrupted:  # launch() stopped the server on its way out
            return 128 + interrupted.signum
        target.append(server)
        _say(f"ready: {server.url} (pid {server.pid})")
        try:
            code = server.wait()
        finally:
            server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


class _Interrupted(BaseException):
    """A signal that arrived while the server was starting."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Spinner:
    """A spinner with the elapsed time on a terminal, while the server starts."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def __enter__(self) -> _Spinner:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._out.write("\r\033[K")
        self._out.flush()

    def _spin(self) -> None:
        frames = "|/-\\"
        index = 0
        while not self._stop.wait(0.1):
            elapsed = time.monotonic() - self._started
            self._out.write(
                f"\r{frames[index % 4]} waiting for the server to listen ({elapsed:.1f} s)"
            )
            self._out.flush()
            index += 1
