"""``localport up``: the services of a Procfile, on stable ports, knowing each other's."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

from .._errors import ServerStartError
from .._procfile import read_procfile
from .._services import launch_services
from ._colour import SERVICE_COLOURS, sgr, wanted
from ._process import facts_fields
from ._render import say, table
from ._shared import EXIT_USAGE, CommandError

if TYPE_CHECKING:
    import argparse

    from .._procfile import Procfile
    from .._service import Services

_HANDLED = ("SIGINT", "SIGTERM", "SIGHUP")


def up_command(arguments: argparse.Namespace) -> int:
    procfile = read_procfile(arguments.file)
    commands = _selected(procfile, arguments.services)
    environment = {**os.environ, **procfile.env}
    # With --json, stdout carries only the JSON line: the services' output goes to stderr.
    out = sys.stderr if arguments.json else sys.stdout
    prefix = _Prefixer(out, list(commands), colour=wanted(out))
    # As in `run`: until everything listens, a signal is only noted, and launch_services()
    # gives up at its next look (stop_if), stopping what it started.
    pending: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        pending.append(signum)

    handled = [getattr(signal, name) for name in _HANDLED if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    try:
        try:
            services = launch_services(
                commands,
                scope=procfile.directory,
                host=arguments.host,
                ready_timeout=arguments.ready_timeout,
                cwd=procfile.directory,
                env=environment,
                output=prefix.write,
                stop_if=lambda: bool(pending),
            )
        except ServerStartError as error:
            if pending:
                name = signal.Signals(pending[0]).name
                say(f"{name}: stopped every service before all of them listened")
                return 128 + pending[0]
            code = error.returncode
            if error.service is not None and not error.port and code is not None:
                # A worker that exits while the servers start ends everything as it would
                # later (as honcho does): up exits with its code, not as a failed start.
                say(f"{error.service} exited with code {code}: stopping the other services")
                return 128 - code if code < 0 else code
            raise
        try:
            _announce(services)
            if arguments.json:
                _print_ready(services)
        except BaseException:  # a reader that went away: stop what was started
            _stop(services, arguments.timeout)
            raise
        return _supervise(services, pending, arguments.timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _selected(procfile: Procfile, names: list[str]) -> dict[str, str]:
    """The commands to start: every service, or the named ones, in file order."""
    known = [entry.name for entry in procfile.entries]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CommandError(
            f"{procfile.path} has no service {unknown[0]!r} (it has {', '.join(known)})",
            EXIT_USAGE,
        )
    wanted = set(names) or set(known)
    return {e.name: e.command for e in procfile.entries if e.name in wanted}


def _announce(services: Services) -> None:
    """The ready lines, then a table of every service, on stderr."""
    rows = [["NAME", "PORT", "URL", "PID"]]
    for name, service in services.items():
        if service.url is not None:
            say(f"ready: {name} {service.url} (pid {service.pid})", "good")
        port = "-" if service.port is None else str(service.port)
        rows.append([name, port, service.url or "-", str(service.pid)])
    table(rows, sys.stderr)
    sys.stderr.flush()


def _print_ready(services: Services) -> None:
    """``up --json``: one line about every service, once every server listens, on stdout."""
    import json

    report = [
        {"name": name, "port": s.port, "url": s.url, **facts_fields(s.pid)}
        for name, s in services.items()
    ]
    print(json.dumps({"services": report}, sort_keys=True), flush=True)


def _supervise(services: Services, pending: list[int], grace: float) -> int:
    """Wait for a signal or for a service to exit; then stop the rest and say why."""
    while not pending:
        exited = services.exited()
        if exited is not None:
            code = exited.poll()
            assert code is not None
            say(f"{exited.name} exited with code {code}: stopping the other services", "warn")
            _stop(services, grace)
            return 128 - code if code < 0 else code
        time.sleep(0.05)
    say(f"{signal.Signals(pending[0]).name}: stopping every service")
    _stop(services, grace)
    return 128 + pending[0]


def _stop(services: Services, grace: float) -> None:
    services.stop(grace)
    for name, service in services.items():
        if service.killed:
            say(f"{name} did not stop within {grace:g} s of SIGTERM: sent SIGKILL", "warn")


class _Prefixer:
    """Writes each service's lines as ``name | line``, names padded, one colour per service.

    Called from every service's reading thread: a lock keeps lines whole.
    """

    def __init__(self, out: IO[str], names: list[str], *, colour: bool) -> None:
        self._out = out
        self._lock = threading.Lock()
        width = max(len(name) for name in names)
        self._prefixes = {}
        for index, name in enumerate(names):
            label = f"{name.ljust(width)} |"
            if colour:
                label = sgr(label, SERVICE_COLOURS[index % len(SERVICE_COLOURS)])
            self._prefixes[name] = label

    def write(self, name: str, line: str) -> None:
        with self._lock:
            self._out.write(f"{self._prefixes[name]} {line}\n")
            self._out.flush()
