"""How the command line shows things: holders and reservations as tables, JSON and lines.

The pytest plugin's EADDRINUSE report uses :func:`holder_line` too, so a holder reads the same
in a terminal and in a test report.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO, TYPE_CHECKING, Any

from .._command_name import command_name
from ._colour import paint, state_style
from ._process import process_fields

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from .._containers import Container
    from .._holders import Holder
    from .._registry import ReservationInfo

#: Control characters, but tab and newline: text from other processes (command lines, names
#: in lock files, paths) must not move the cursor or retitle the terminal of whoever reads it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """*text* with control characters shown as ``\\xNN`` escapes, for a terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def say(message: str, tone: str | None = None) -> None:
    """Diagnostics on stderr: one line, as a rule; *tone* colours it on a terminal
    (``good`` for a ready line, ``warn`` for a warning: see :mod:`._colour`)."""
    print(paint(f"localport: {printable(message)}", tone, sys.stderr), file=sys.stderr)


def print_json(value: object) -> None:
    import json

    print(json.dumps(value, indent=2, sort_keys=True))


def holder_json(holder: Holder) -> dict[str, Any]:
    family = {2: "IPv4", 10: "IPv6"}.get(int(holder.family), "IPv6") if holder.family else None
    process = process_fields(
        holder.pid,
        holder.cmdline,
        name=holder.process_name,
        user=holder.username,
        uid=holder.uid,
        started=holder.started,
    )
    return {
        **process,
        "process_name": holder.process_name,
        "username": holder.username,
        "local_address": list(holder.local_address) if holder.local_address else None,
        "remote_address": list(holder.remote_address) if holder.remote_address else None,
        "status": holder.status,
        "proto": holder.proto,
        "family": family,
        "v6only": holder.v6only,
        "reservation": reservation_json(holder.reservation) if holder.reservation else None,
        "container": container_json(holder.container) if holder.container else None,
    }


def container_json(container: Container) -> dict[str, Any]:
    return {
        "runtime": container.runtime,
        "id": container.id,
        "name": container.name,
        "image": container.image,
        "project": container.project,
        "service": container.service,
        "inner_address": container.inner_address,
        "answered": container.answered,
    }


def container_text(container: Container) -> str:
    """A container in a few words, for a table cell or a report line."""
    text = f"{container.runtime} container {container.handle or '?'}"
    details = [f"service {container.service}"] if container.service else []
    details += [f"image {container.image}"] if container.image else []
    return f"{text} ({', '.join(details)})" if details else text


def reservation_json(info: ReservationInfo) -> dict[str, Any]:
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
        "compromised": info.compromised,
    }


def short_command(cmdline: Sequence[str], process_name: str | None = None) -> str:
    """A process's program as people name it (see :mod:`localport._command_name`), its
    process name when the command line is unreadable, else ``""``."""
    return command_name(cmdline) or process_name or ""


def table(
    rows: list[list[str]],
    out: IO[str],
    styles: Mapping[int, Callable[[str], str | None]] | None = None,
) -> None:
    """Left-aligned columns two spaces apart; the first row is the header.

    *styles* colours the cells of some columns (not the header) on a terminal: column index
    to a function from the cell's text to a style of :func:`._colour.paint`.
    """
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        cells = []
        for index, (cell, width) in enumerate(zip(row, widths, strict=True)):
            style = styles.get(index) if styles and number else None
            shown = paint(cell, style(cell), out) if style is not None else cell
            cells.append(shown + " " * (width - len(cell)))
        print("  ".join(cells).rstrip(), file=out)


def since(started: float | None) -> str:
    if started is None:
        return "-"
    if time.time() - started < 86400:
        return time.strftime("%H:%M:%S", time.localtime(started))
    return time.strftime("%Y-%m-%d", time.localtime(started))


def one_line(command: str, limit: int) -> str:
    """A command line on one line, cut to *limit* characters."""
    return " ".join(command.split())[:limit]


#: The styles of :func:`holder_rows`' columns: STATE, and REACHABLE.
HOLDER_STYLES: Mapping[int, Callable[[str], str | None]] = {4: state_style, 8: state_style}


def reservation_text(reservation: ReservationInfo, cmdline: Sequence[str]) -> str:
    """A reservation named for a table cell: ``reserved as 'api'``, else by whom."""
    if reservation.name:
        return f"reserved as {reservation.name!r}"
    by = command_name(cmdline).partition(": ")[0] or "PID"
    return f"reserved by {by} (pid {reservation.pid})"


def holder_rows(
    holders: Sequence[Holder], *, exposure: bool = False, wide: bool = False
) -> list[list[str]]:
    """Rows for :func:`table` (with :data:`HOLDER_STYLES`); *wide*: whole command lines."""
    header = ["PID", "USER", "PROTO", "ADDRESS", "STATE", "SINCE", "NAME", "COMMAND"]
    rows = [[*header, "REACHABLE"] if exposure else header]
    for holder in holders:
        address = "-"
        if holder.status == "RESERVED" and holder.reservation is not None:
            # Its guard socket's address would read as a server's: name the reservation.
            address = reservation_text(holder.reservation, holder.cmdline)
        elif holder.local_address is not None:
            address = f"{holder.address_text}:{holder.local_address[1]}"
        user = holder.username or ("-" if holder.uid is None else str(holder.uid))
        name = holder.reservation.name if holder.reservation and holder.reservation.name else "-"
        row = [
            "?" if holder.pid is None else str(holder.pid),
            user,
            holder.proto,
            address,
            holder.status,
            since(holder.started),
            name,
            # A container's description replaces its forwarder's long command line.
            one_line(container_text(holder.container), 100)
            if holder.container
            else command_cell(holder.cmdline, holder.process_name, wide=wide),
        ]
        if exposure:
            row.append("network" if exposed(holder) else "local")
        rows.append(row)
    return rows


def command_cell(cmdline: Sequence[str], process_name: str | None, *, wide: bool) -> str:
    """A table's COMMAND cell: the program's short name, or (*wide*) the whole line."""
    if wide and cmdline:
        return one_line(" ".join(cmdline), 100_000)
    return short_command(cmdline, process_name) or "-"


def exposed(holder: Holder) -> bool:
    """Whether a listener answers other machines (it is not bound to a loopback address)."""
    if holder.local_address is None:
        return False
    import ipaddress

    try:
        return not ipaddress.ip_address(holder.local_address[0]).is_loopback
    except ValueError:
        return True


def holder_line(holder: Holder) -> str:
    """One holder on one line, for a test report."""
    pid = "?" if holder.pid is None else str(holder.pid)
    user = holder.username or ("?" if holder.uid is None else f"uid {holder.uid}")
    address = holder.address_text or "-"
    named = holder.reservation.name if holder.reservation else None
    name = f"  localport name {named!r}" if named else ""
    if holder.container is not None:
        name += f"  ({container_text(holder.container)})"
    return (
        f"  {holder.proto:<4} {holder.status:<11} {address:<16} pid {pid:<8} {user:<10} "
        f"{one_line(holder.command, 100)}{name}"
    )
