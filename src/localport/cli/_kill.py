"""``localport kill``: stop the process that holds a port, and only that process."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import TYPE_CHECKING

from .. import _platform
from .._errors import WaitTimeoutError
from .._explain import explain
from .._holders import who_holds
from .._wait import wait_until_free
from ._render import USE_ANOTHER_PORT, printable, say
from ._shared import EXIT_NO, EXIT_OK, EXIT_REFUSED, CommandError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from .._arguments import SocketProto


def kill_command(arguments: argparse.Namespace) -> int:
    system = _platform.system
    port = arguments.port
    proto: SocketProto = "udp" if arguments.udp else "tcp"
    holders = [h for h in who_holds(port, proto=proto) if h.status != "TIME_WAIT"]
    # The processes with sockets on the port; a reservation's holder only where nothing else
    # is there (a `localport run` holds the port for the server it started: stop the server).
    sockets = [h for h in holders if h.status != "RESERVED"]
    holders = sockets or holders
    if not holders:
        everything = who_holds(port, proto=proto)
        if everything:
            raise CommandError(
                f"port {port} is in use {explain(port, everything, instead=USE_ANOTHER_PORT)}",
                EXIT_NO,
            )
        raise CommandError(f"nothing holds port {port}", EXIT_NO)
    unknown = [h for h in holders if h.pid is None]
    if unknown:
        raise CommandError(
            f"port {port} is in use {explain(port, unknown, instead=USE_ANOTHER_PORT)}",
            EXIT_REFUSED,
        )
    pids = sorted({h.pid for h in holders if h.pid is not None and h.pid != os.getpid()})
    if not pids:
        raise CommandError(f"port {port} is held by this very command", EXIT_REFUSED)
    me = os.getuid() if hasattr(os, "getuid") else None
    # Identity (PID and start time) is captured before any question: a PID reused while a
    # person answers is not the process they agreed to stop.
    started = {pid: system.process_start_time(pid) for pid in pids}
    for pid in pids:
        process = system.process_facts(pid)
        if process is None:
            continue
        if me is not None and process.uid != me and not arguments.any_user:
            owner = process.username or f"uid {process.uid}"
            msg = (
                f"PID {pid} ({' '.join(process.cmdline) or process.name}) belongs to {owner}; "
                "localport kill stops only your own processes (pass --any-user to override)"
            )
            raise CommandError(msg, EXIT_REFUSED)
        if not arguments.yes:
            _confirm(port, pid, process.cmdline)
    for pid in pids:
        if system.pid_alive(pid) and not system.same_process(pid, started[pid]):
            msg = f"PID {pid} was reused by another process since it was looked at; not signalled"
            raise CommandError(msg, EXIT_REFUSED)
        _send(pid, started[pid], arguments.signal)
    deadline = time.monotonic() + arguments.timeout
    while any(system.same_process(pid, started[pid]) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                _send(pid, started[pid], system.kill_signal)
            break
        time.sleep(0.05)
    try:
        wait_until_free(port, proto=proto, host="127.0.0.1", timeout=arguments.timeout)
    except WaitTimeoutError:
        raise CommandError(
            f"port {port} is still held after stopping PID(s) {pids}", EXIT_NO
        ) from None
    say(f"stopped PID {', '.join(map(str, pids))}; port {port} is free")
    return EXIT_OK


def _confirm(port: int, pid: int, cmdline: Sequence[str]) -> None:
    if not sys.stdin.isatty():
        msg = "not a terminal, so not asking: pass --yes to stop it"
        raise CommandError(msg, EXIT_REFUSED)
    command = printable(" ".join(cmdline))
    try:
        answer = input(f"stop PID {pid} ({command}) holding port {port}? [y/N] ")
    except EOFError:  # Ctrl-D: no answer is no
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("not stopped", EXIT_REFUSED)


def _send(pid: int, started: float | None, signum: int) -> None:
    # Checked before each signal: the PID may have been reused since we looked.
    if _platform.system.same_process(pid, started):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
