"""``localport who`` and ``localport list``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from .._errors import LocalportError
from .._explain import explain
from .._holders import listening, who_holds
from .._registry import Registry
from ._colour import paint
from ._process import facts_fields
from ._render import (
    HOLDER_STYLES,
    command_cell,
    exposed,
    holder_json,
    holder_rows,
    print_json,
    printable,
    reservation_json,
    say,
    table,
)
from ._shared import EXIT_NO, EXIT_OK

if TYPE_CHECKING:
    import argparse

    from .._arguments import SocketProto
    from .._registry import ReservationInfo


def _warn_if_lock_dir_unusable() -> None:
    """``who`` answers from the kernel whatever the lock directory's state, but says when
    reservations cannot be shown (a relative ``LOCALPORT_DIR``, an unsafe directory)."""
    try:
        Registry.open(None, write=False)
    except LocalportError as error:
        say(f"warning: {error}; localport reservations are not shown", "warn")


def who_command(arguments: argparse.Namespace) -> int:
    port = arguments.port
    proto: SocketProto = "udp" if arguments.udp else "tcp"
    _warn_if_lock_dir_unusable()
    holders = who_holds(port, proto=proto)
    lost = _compromised(port)
    planted = _unusable_lock_file(port)
    explanation = f"port {port} is in use {explain(port, holders)}" if holders else None
    # A busy server port can have tens of thousands of TIME_WAIT leftovers: counted, and
    # listed one by one only when asked.
    time_wait = sum(1 for h in holders if h.status == "TIME_WAIT")
    shown = holders if arguments.time_wait else [h for h in holders if h.status != "TIME_WAIT"]
    if arguments.json:
        print_json(
            {
                "port": port,
                "proto": proto,
                "in_use": bool(holders),
                "explanation": explanation,
                "holders": [holder_json(h) for h in shown],
                "time_wait": time_wait,
                "compromised_reservation": None if lost is None else reservation_json(lost),
                "unusable_lock_file": planted,
            }
        )
        return EXIT_OK if holders or lost or planted else EXIT_NO
    if lost is not None:
        print(
            paint(
                f"port {port} is reserved by PID {lost.pid or '?'}, but its lock file was "
                f"deleted or replaced (a compromised reservation)\n{LOST_FILE_ADVICE}",
                "bad",
                sys.stdout,
            )
            + "\n"
        )
    if planted is not None:
        print(printable(planted))
    if not holders:
        print(f"nothing holds port {port} ({proto})")
        return EXIT_OK if lost or planted else EXIT_NO
    if shown:
        table(holder_rows(shown, wide=arguments.wide), sys.stdout, HOLDER_STYLES)
    if len(shown) < len(holders):
        print(f"{time_wait} TIME_WAIT leftover(s) of closed connections (--time-wait lists them)")
    print()
    print(printable(explanation or ""))
    loopback_only = {h.local_address[0] for h in holders if h.local_address} <= {"::1"}
    if loopback_only and any(h.status == "LISTEN" for h in holders):
        warning = (
            f"nothing listens on 127.0.0.1:{port}, but a server listens on [::1]:{port}; "
            "'localhost' may resolve to either"
        )
        print(paint(warning, "warn", sys.stdout))
    return EXIT_OK


#: What to do about a reservation that lost its lock file.
LOST_FILE_ADVICE = (
    "a COMPROMISED reservation lost its lock file (someone deleted or replaced it): other "
    "localport users may not see it; its holder should release it and reserve again"
)


def _unusable_lock_file(port: int) -> str | None:
    """Why the port's lock path keeps reserve() off the port, when something other than a
    lock file localport can use sits there (planted, or left by a damaged disk)."""
    import os
    import stat

    from .._registry import Registry

    try:
        path = Registry.open(None, write=False).lock_path(port)
        info = os.lstat(path)
    except (LocalportError, OSError):
        return None
    mode = info.st_mode
    kinds = [
        (stat.S_ISLNK(mode), "a symbolic link"),
        (stat.S_ISDIR(mode), "a directory"),
        (stat.S_ISFIFO(mode), "a FIFO"),
        (stat.S_ISSOCK(mode), "a socket"),
        (stat.S_ISREG(mode) and info.st_nlink > 1, "a file with another hard link"),
        (not stat.S_ISREG(mode), "not a regular file"),
    ]
    kind = next((text for matches, text in kinds if matches), None)
    if kind is None:
        return None
    return (
        f"port {port}'s lock file {path} is {kind} (uid {info.st_uid}): localport will not "
        "reserve this port until it is removed"
    )


def _compromised(port: int) -> ReservationInfo | None:
    """The live reservation of *port* that lost its lock file, if any (Linux only)."""
    from .._listing import compromised
    from .._registry import Registry

    try:
        return compromised(Registry.open(None, write=False), port).get(port)
    except LocalportError:
        return None  # an unusable lock directory holds nothing to report here


def list_command(arguments: argparse.Namespace) -> int:
    from .._reserve import reservations  # the reservation machinery, which `who` never needs

    live = reservations()
    report: dict[str, Any] = {"reservations": []}
    rows = [["PORT", "PROTO", "NAME", "PID", "AGE", "COMMAND"]]
    now = time.time()
    for info in live:
        process = facts_fields(info.pid)
        cmdline = process["cmdline"]
        report["reservations"].append({**process, **reservation_json(info)})
        rows.append(
            [
                f"{info.port} (COMPROMISED)" if info.compromised else str(info.port),
                info.proto,
                info.name or "-",
                str(info.pid),
                f"{now - info.created:.0f}s",
                command_cell(cmdline, process["command"], wide=arguments.wide),
            ]
        )
    everything = listening(proto="both") if arguments.all else []
    if arguments.all:
        report["listening"] = [
            {**holder_json(h), "reachable_from_network": exposed(h)} for h in everything
        ]
    if arguments.json:
        print_json(report)
        return EXIT_OK
    if live:
        table(rows, sys.stdout, {0: lambda cell: "bad" if "COMPROMISED" in cell else None})
        if any(info.compromised for info in live):
            print(f"\n{paint(LOST_FILE_ADVICE, 'bad', sys.stdout)}")
    else:
        print("no localport reservations")
    if arguments.all:
        print()
        if everything:
            rows = holder_rows(everything, exposure=True, wide=arguments.wide)
            table(rows, sys.stdout, HOLDER_STYLES)
            reachable = [h for h in everything if exposed(h)]
            if reachable:
                warning = f"{len(reachable)} listening socket(s) are reachable from the network"
                print(f"\n{paint(warning, 'warn', sys.stdout)}")
        else:
            print("nothing listens")
    return EXIT_OK
