"""``localport kill``: stop what holds a port, and only that.

A process is signalled. A container's port forwarder (podman's ``conmon`` or ``rootlessport``,
``docker-proxy``) is not: killing it would leave the container running without its port, so
the container is stopped through its runtime, and the runtime ends the forwarder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from .. import _platform
from .._containers import recognise
from .._errors import WaitTimeoutError
from .._explain import explain
from .._holders import who_holds
from .._runtime import stop, stop_command
from .._wait import wait_until_free
from ._process import facts_fields
from ._render import container_json, container_text, holder_json, print_json, printable, say
from ._shared import EXIT_NO, EXIT_OK, EXIT_REFUSED, CommandError

if TYPE_CHECKING:
    import argparse

    from .._arguments import SocketProto
    from .._containers import Container, Forwarder
    from .._holders import Holder


def kill_command(arguments: argparse.Namespace) -> int:
    port = arguments.port
    proto: SocketProto = "udp" if arguments.udp else "tcp"
    holders = _targets(port, proto)
    containers = _containers(port, holders, arguments)
    pids = sorted({h.pid for h in holders if h.container is None and h.pid is not None})
    pids = [pid for pid in pids if pid != os.getpid()]
    if not pids and not containers:
        raise CommandError(f"port {port} is held by this very command", EXIT_REFUSED)
    system = _platform.system
    # Identity (PID and start time) is captured before any question: a PID reused while a
    # person answers is not the process they agreed to stop.
    started = {pid: system.process_start_time(pid) for pid in pids}
    commands = {pid: _owned_command(pid, arguments) for pid in pids}
    processes = {pid: facts_fields(pid) for pid in pids}
    grace = arguments.timeout
    signame = signal.Signals(arguments.signal).name
    if arguments.dry_run:
        return _dry_run(port, proto, containers, commands, processes=processes, arguments=arguments)
    if not arguments.yes:
        for _, container in containers:
            _confirm(f"stop {container_text(container)} holding port {port}?")
        for pid, command in commands.items():
            _confirm(f"stop PID {pid} ({command}) holding port {port}?")
    actions: list[dict[str, Any]] = []
    for pid in pids:
        if system.pid_alive(pid) and not system.same_process(pid, started[pid]):
            msg = f"PID {pid} was reused by another process since it was looked at; not signalled"
            raise CommandError(msg, EXIT_REFUSED)
    for forwarder, container in containers:
        how = stop(forwarder, container, grace)
        actions.append(_container_action(forwarder, container, grace) | {"how": how})
    for pid in pids:
        _send(pid, started[pid], arguments.signal)
    deadline = time.monotonic() + grace
    killed: set[int] = set()
    while any(_running(pid, started[pid]) for pid in pids):
        if time.monotonic() > deadline:
            for pid in pids:
                if _running(pid, started[pid]):
                    _send(pid, started[pid], system.kill_signal)
                    killed.add(pid)
                    say(
                        f"PID {pid} did not stop after {signame.removeprefix('SIG')} within "
                        f"{grace:g} s: sent KILL",
                        "warn",
                    )
            break
        time.sleep(0.05)
    for pid in pids:
        action = _process_action(processes[pid], signame, grace)
        actions.append(action | {"killed": pid in killed})
    try:
        # A stopped container's forwarder exits a moment after the runtime returns.
        wait_until_free(port, proto=proto, host="127.0.0.1", timeout=grace + 5 * bool(containers))
    except WaitTimeoutError:
        msg = f"port {port} is still held after {_done(actions)}"
        raise CommandError(msg, EXIT_NO, port=port, actions=actions) from None
    if arguments.json:
        print_json({"port": port, "proto": proto, "dry_run": False, "actions": actions})
    else:
        say(f"{_done(actions)}; port {port} is free")
    return EXIT_OK


def _targets(port: int, proto: SocketProto) -> list[Holder]:
    """The holders to stop: sockets on the port; a reservation's holder only where nothing
    else is there (a `localport run` holds the port for the server it started: stop that)."""
    holders = [h for h in who_holds(port, proto=proto) if h.status != "TIME_WAIT"]
    sockets = [h for h in holders if h.status != "RESERVED"]
    holders = sockets or holders
    if not holders:
        everything = who_holds(port, proto=proto)
        if everything:
            raise CommandError(
                f"port {port} is in use {explain(port, everything)}",
                EXIT_NO,
                port=port,
                holders=[holder_json(h) for h in everything],
            )
        raise CommandError(f"nothing holds port {port}", EXIT_NO, port=port, holders=[])
    unknown = [h for h in holders if h.pid is None]
    if unknown:
        raise CommandError(
            f"port {port} is in use {explain(port, unknown)}",
            EXIT_REFUSED,
            port=port,
            holders=[holder_json(h) for h in unknown],
        )
    return holders


def _containers(
    port: int, holders: list[Holder], arguments: argparse.Namespace
) -> list[tuple[Forwarder, Container]]:
    """The containers to stop, each once (a forwarder may hold IPv4 and IPv6 sockets), with
    the forwarder facts their runtime is asked with, checked against the owner rules."""
    found: dict[object, tuple[Forwarder, Container]] = {}
    me = os.getuid() if hasattr(os, "getuid") else None
    for holder in holders:
        container = holder.container
        if container is None or holder.pid is None:
            continue
        facts = _platform.system.process_facts(holder.pid)
        forwarder = recognise(facts) if facts is not None else None
        if forwarder is None:
            continue  # its forwarder is gone: the container stopped meanwhile
        if container.handle is None:
            msg = (
                f"port {port} is in use {explain(port, [holder])}; "
                "localport kill stops a container only when it can tell which one"
            )
            raise CommandError(msg, EXIT_REFUSED)
        if me is not None and holder.uid != me and not arguments.any_user:
            owner = holder.username or f"uid {holder.uid}"
            msg = (
                f"{container_text(container)} belongs to {owner}; localport kill stops only "
                "your own containers and processes (pass --any-user to override)"
            )
            raise CommandError(printable(msg), EXIT_REFUSED)
        found.setdefault(
            (container.runtime, container.id or container.handle), (forwarder, container)
        )
    return list(found.values())


def _owned_command(pid: int, arguments: argparse.Namespace) -> str:
    """*pid*'s command line, once the owner rules allow stopping it."""
    process = _platform.system.process_facts(pid)
    if process is None:
        return ""
    command = " ".join(process.cmdline) or process.name or ""
    me = os.getuid() if hasattr(os, "getuid") else None
    if me is not None and process.uid != me and not arguments.any_user:
        owner = process.username or f"uid {process.uid}"
        msg = (
            f"PID {pid} ({command}) belongs to {owner}; "
            "localport kill stops only your own processes (pass --any-user to override)"
        )
        raise CommandError(msg, EXIT_REFUSED)
    return command


def _container_action(forwarder: Forwarder, container: Container, grace: float) -> dict[str, Any]:
    return {
        "kind": "container",
        "container": container_json(container),
        "forwarder_pid": forwarder.pid,
        "command": stop_command(container, grace),
    }


def _process_action(process: dict[str, Any], signame: str, grace: float) -> dict[str, Any]:
    """A process to signal: the fields of every process, and the signal and its grace."""
    return {"kind": "process", **process, "signal": signame, "grace": grace}


def _done(actions: list[dict[str, Any]]) -> str:
    containers = [a["container"] for a in actions if a["kind"] == "container"]
    pids = [str(a["pid"]) for a in actions if a["kind"] == "process"]
    parts = [f"stopped {c['runtime']} container {c['name'] or c['id'][:12]}" for c in containers]
    if pids:
        parts.append(f"stopped PID {', '.join(pids)}")
    return "; ".join(parts)


def _dry_run(
    port: int,
    proto: SocketProto,
    containers: list[tuple[Forwarder, Container]],
    commands: dict[int, str],
    *,
    processes: dict[int, dict[str, Any]],
    arguments: argparse.Namespace,
) -> int:
    grace = arguments.timeout
    signame = signal.Signals(arguments.signal).name
    actions = [_container_action(f, c, grace) for f, c in containers]
    actions += [_process_action(process, signame, grace) for process in processes.values()]
    if arguments.json:
        print_json({"port": port, "proto": proto, "dry_run": True, "actions": actions})
        return EXIT_OK
    for forwarder, container in containers:
        print(
            printable(
                f"would stop {container_text(container)} with `{stop_command(container, grace)}` "
                f"(its port forwarder, PID {forwarder.pid}, is left to the runtime)"
            )
        )
    for pid, command in commands.items():
        print(
            printable(
                f"would send {signame} to PID {pid} ({command}), then SIGKILL if it still "
                f"runs after {grace:g} s"
            )
        )
    print(f"nothing was done (--dry-run); port {port} is still held")
    return EXIT_OK


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        msg = "not a terminal, so not asking: pass --yes to stop it"
        raise CommandError(msg, EXIT_REFUSED)
    # The question goes to stderr, so that stdout stays the JSON of --json.
    print(f"{printable(question)} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = input()
    except EOFError:  # Ctrl-D: no answer is no
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise CommandError("not stopped", EXIT_REFUSED)


def _running(pid: int, started: float | None) -> bool:
    """Whether *pid* is still the process looked at, and has not exited: a process that
    stopped but that its parent has not reaped yet (a zombie) has stopped."""
    if not _platform.system.same_process(pid, started):
        return False
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def _send(pid: int, started: float | None, signum: int) -> None:
    # Checked before each signal: the PID may have been reused since we looked.
    if _platform.system.same_process(pid, started):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
