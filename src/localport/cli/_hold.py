"""``localport reserve`` (with ``--hold``), its background holder, and ``localport release``.

``reserve --hold`` forks twice so that the holder runs in a session of its own, detached from
the shell that ran ``$(localport reserve --hold 30)``: the command substitution returns as
soon as the holder reports its port through a pipe, while the holder keeps the lock and the
guard until another process listens on the port, or the time is up.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from .. import _platform
from .._candidate import Request
from .._errors import AddressNotAvailableError, LocalportError, LockDirError
from .._listing import reservation_at
from .._project import project_directory
from .._registry import Registry
from .._reserve import reserve
from .._wait import is_listening
from ._process import facts_fields
from ._render import print_json, say
from ._shared import (
    EXIT_LOCK_DIR,
    EXIT_NO,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    HOLD_COMMAND,
    CommandError,
)

if TYPE_CHECKING:
    import argparse


def reserve_command(arguments: argparse.Namespace) -> int:
    proto: Literal["tcp", "udp"] = "udp" if arguments.udp else "tcp"
    # A name belongs to the project, as for run --name and up: the same port as theirs.
    scope = None if arguments.name is None else project_directory()
    if arguments.hold is not None:
        report = _start_holder(arguments, proto, scope)
    else:
        with reserve(
            arguments.port, name=arguments.name, host=arguments.host, proto=proto, scope=scope
        ) as r:
            report = {"port": r.port, "host": r.host, "proto": r.proto, "name": r.name}
            report.update(url=r.url(), holder_pid=None, hold_seconds=None)
    if arguments.json:
        print_json(report)
    else:
        print(report["port"])
    return EXIT_OK


def _start_holder(arguments: argparse.Namespace, proto: str, scope: str | None) -> dict[str, Any]:
    """Start the background holder and return what it reported (port, pid...)."""
    if not hasattr(os, "fork"):
        msg = "--hold needs a POSIX system (fork); on Windows, keep a Python process holding it"
        raise CommandError(msg, EXIT_USAGE)
    # Every argument is checked here, before the fork: the holder can only report a code.
    Request.check(
        port=arguments.port,
        name=arguments.name,
        host=arguments.host,
        proto=proto,
        port_range=None,
        fallback=False,
        guard=True,
        lock_dir=None,
        reuse_address=None,
        scope=scope,
    )
    read_end, write_end = os.pipe()
    command = [sys.executable, "-m", "localport", HOLD_COMMAND]
    command += ["--seconds", str(arguments.hold), "--host", arguments.host, "--proto", proto]
    command += ["--report-fd", str(write_end)]
    if arguments.port is not None:
        command += ["--port", str(arguments.port)]
    if arguments.name is not None:
        command += ["--name", arguments.name]
    if scope is not None:
        command += ["--scope", scope]
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
        raise CommandError("the background holder did not start", EXIT_UNAVAILABLE)
    report: dict[str, Any] = json.loads(line)
    if "error" in report:
        raise CommandError(str(report["error"]), int(report["code"]))
    return report


def hold_command(arguments: argparse.Namespace) -> int:
    """The background holder: keep the port until someone else listens, or time is up."""
    report_fd = arguments.report_fd
    try:
        reservation = reserve(
            arguments.port,
            name=arguments.name,
            host=arguments.host,
            proto=arguments.proto,
            scope=arguments.scope,
        )
    except (LocalportError, OSError, ValueError, TypeError) as error:
        if isinstance(error, LockDirError):
            code = EXIT_LOCK_DIR
        elif isinstance(error, (ValueError, TypeError, AddressNotAvailableError)):
            code = EXIT_USAGE
        else:
            code = EXIT_UNAVAILABLE
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
            if reservation.proto == "tcp" and is_listening(reservation.port, reservation.host):
                break  # the server it was held for has bound it
            stop.wait(0.05)
    return EXIT_OK


def release_command(arguments: argparse.Namespace) -> int:
    port = arguments.port
    info = reservation_at(Registry.open(None, write=False), port)
    if info is None:
        raise CommandError(f"no localport reservation holds port {port}", EXIT_NO, port=port)
    system = _platform.system
    # The record is a description anyone holding the lock file may have written: the kernel
    # must agree that this PID holds the lock before the PID gets a signal.
    try:
        file = os.stat(info.lock_path)
    except OSError:
        lockers: set[int] | None = set()
    else:
        lockers = system.lock_holders(file.st_dev, file.st_ino)
    if lockers is not None and info.pid not in lockers:
        held_by = ", ".join(map(str, sorted(lockers))) or "nobody"
        msg = (
            f"port {port}'s lock file names PID {info.pid}, but the kernel says its lock is "
            f"held by {held_by}: not signalling anyone"
        )
        raise CommandError(msg, EXIT_REFUSED, port=port)
    process = system.process_facts(info.pid)
    if (
        process is None
        or HOLD_COMMAND not in process.cmdline
        or not any("localport" in part for part in process.cmdline)
    ):
        command = " ".join(process.cmdline) if process else "?"
        msg = (
            f"port {port} is reserved by PID {info.pid} ({command}), not by a "
            "`localport reserve --hold` holder; stop that process instead"
        )
        raise CommandError(msg, EXIT_REFUSED, port=port, holder=facts_fields(info.pid))
    holder = facts_fields(info.pid)  # read before it is gone
    if not system.same_process(info.pid, process.started):  # gone or reused since we looked
        msg = f"PID {info.pid} changed while it was checked; run again"
        raise CommandError(msg, EXIT_NO, port=port)
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while reservation_at(Registry.open(None, write=False), port) is not None:
        if time.monotonic() > deadline:
            msg = f"the holder (PID {info.pid}) of port {port} did not let go"
            raise CommandError(msg, EXIT_NO, port=port, holder=holder)
        time.sleep(0.02)
    if arguments.json:
        print_json({"port": port, "released": True, "holder": holder})
    else:
        say(f"released port {port} (holder PID {info.pid})")
    return EXIT_OK
