"""``localport who`` and ``localport list``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from .. import _platform
from .._explain import explain
from .._holders import listening, who_holds
from ._render import (
    USE_ANOTHER_PORT,
    exposed,
    holder_json,
    holder_rows,
    print_json,
    printable,
    reservation_json,
    table,
)
from ._shared import EXIT_NO, EXIT_OK

if TYPE_CHECKING:
    import argparse

    from .._arguments import SocketProto


def who_command(arguments: argparse.Namespace) -> int:
    port = arguments.port
    proto: SocketProto = "udp" if arguments.udp else "tcp"
    holders = who_holds(port, proto=proto)
    explanation = (
        f"port {port} is in use {explain(port, holders, instead=USE_ANOTHER_PORT)}"
        if holders
        else None
    )
    if arguments.json:
        print_json(
            {
                "port": port,
                "proto": proto,
                "in_use": bool(holders),
                "explanation": explanation,
                "holders": [holder_json(h) for h in holders],
            }
        )
        return EXIT_OK if holders else EXIT_NO
    if not holders:
        print(f"nothing holds port {port} ({proto})")
        return EXIT_NO
    table(holder_rows(holders), sys.stdout)
    print()
    print(printable(explanation or ""))
    loopback_only = {h.local_address[0] for h in holders if h.local_address} <= {"::1"}
    if loopback_only and any(h.status == "LISTEN" for h in holders):
        print(
            f"nothing listens on 127.0.0.1:{port}, but a server listens on [::1]:{port}; "
            "'localhost' may resolve to either"
        )
    return EXIT_OK


def list_command(arguments: argparse.Namespace) -> int:
    from .._reserve import reservations  # the reservation machinery, which `who` never needs

    live = reservations()
    report: dict[str, Any] = {"reservations": []}
    rows = [["PORT", "PROTO", "NAME", "PID", "AGE", "COMMAND"]]
    now = time.time()
    for info in live:
        process = _platform.system.process_facts(info.pid)
        command = " ".join(process.cmdline) if process else ""
        report["reservations"].append({**reservation_json(info), "command": command})
        rows.append(
            [
                str(info.port),
                info.proto,
                info.name or "-",
                str(info.pid),
                f"{now - info.created:.0f}s",
                command[:60],
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
        table(rows, sys.stdout)
    else:
        print("no localport reservations")
    if arguments.all:
        print()
        if everything:
            table(holder_rows(everything, exposure=True), sys.stdout)
            reachable = [h for h in everything if exposed(h)]
            if reachable:
                print(f"\n{len(reachable)} listening socket(s) are reachable from the network")
        else:
            print("nothing listens")
    return EXIT_OK
