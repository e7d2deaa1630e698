"""``localport ports``: the project's port assignments, as a table, env lines, JSON or Markdown."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._addresses import url_host
from .._holders import listening_sockets, pids_of
from .._placeholders import environment_names
from .._procfile import read_procfile
from .._project import PROCFILE, project_directory
from .._ranges import configured_range
from .._registry import Registry
from .._reserve import reservations
from ._colour import state_style
from ._render import print_json, printable, table

if TYPE_CHECKING:
    import argparse

    from .._registry import ReservationInfo


@dataclass(frozen=True)
class Assignment:
    """One server's port in the project, and what is on it now."""

    name: str
    port: int
    host: str
    #: Whether a port was recorded for the name (else: the port `up` would try first).
    recorded: bool
    #: listening, reserved, taken (by something else), free or not started.
    state: str
    pid: int | None

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "port": self.port,
            "url": self.url,
            "state": self.state,
            "pid": self.pid,
            "recorded": self.recorded,
        }


def ports_command(arguments: argparse.Namespace) -> int:
    procfile_path = arguments.file
    if procfile_path is None:
        candidate = os.path.join(project_directory(), PROCFILE)
        procfile_path = candidate if os.path.isfile(candidate) else None
    if procfile_path is not None:
        procfile = read_procfile(procfile_path)
        scope = procfile.directory
        names = [entry.name for entry in procfile.entries if entry.server]
    else:
        scope, names = project_directory(), None
    registry = Registry.open(None, write=False)
    assignments = _assignments(registry, scope, names)
    _print(assignments, arguments.format, scope, procfile_path)
    return 0


def _assignments(registry: Registry, scope: str, names: list[str] | None) -> list[Assignment]:
    """Each server's port: the recorded one, else the first `up` would try (its hash)."""
    from .._picker import sticky_port
    from .._registry import sticky_key

    recorded = {record.name: record for record in registry.recorded_names(scope)}
    live = {info.port: info for info in reservations()}
    port_range = configured_range(None)
    found = []
    for name in names if names is not None else sorted(recorded):
        record = recorded.get(name)
        if record is not None:
            port, host = record.port, record.host
        else:
            port, host = sticky_port(sticky_key(name, scope), port_range), "127.0.0.1"
        state, pid = _state(
            name, scope, port, host, info=live.get(port), recorded=record is not None
        )
        found.append(Assignment(name, port, host, record is not None, state, pid))
    return found


def _state(
    name: str, scope: str, port: int, host: str, *, info: ReservationInfo | None, recorded: bool
) -> tuple[str, int | None]:
    found = listening_sockets(port, host)
    listeners = pids_of(found) if found else set()
    ours = info is not None and info.name == name and info.scope == scope
    if ours and info is not None:
        return ("listening", min(listeners)) if listeners else ("reserved", info.pid)
    if listeners or found or info is not None:
        pid = min(listeners) if listeners else (info.pid if info is not None else None)
        return "taken", pid
    return ("free" if recorded else "not started"), None


def _print(assignments: list[Assignment], form: str, scope: str, procfile: str | None) -> None:
    out = sys.stdout
    if form == "json":
        print_json(
            {
                "scope": scope,
                "procfile": procfile,
                "services": [assignment.as_json() for assignment in assignments],
            }
        )
    elif form == "env":
        for assignment in assignments:
            port_variable, url_variable = environment_names(assignment.name)
            out.write(f"{port_variable}={assignment.port}\n{url_variable}={assignment.url}\n")
    elif form == "markdown":
        out.write("| Service | Port | URL | State |\n| --- | --- | --- | --- |\n")
        for a in assignments:
            out.write(f"| {_cell(a.name)} | {a.port} | <{a.url}> | {_described(a)} |\n")
    else:
        rows = [["NAME", "PORT", "URL", "STATE"]]
        rows += [[printable(a.name), str(a.port), a.url, _described(a)] for a in assignments]
        table(rows, out, {3: state_style})
        if not assignments:
            print(f"no ports recorded for {printable(scope)}", file=sys.stderr)


def _described(assignment: Assignment) -> str:
    if assignment.pid is None:
        return assignment.state
    return f"{assignment.state} (pid {assignment.pid})"


def _cell(text: str) -> str:
    return printable(text).replace("|", "\\|")
