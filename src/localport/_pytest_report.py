"""The pytest plugin's ``EADDRINUSE`` report: which port a failing test asked for, who holds it,
and advice that fits what the test already does.

Imported when the plugin configures, so it imports nothing of localport's core at module level:
the plugin loads in every pytest run of every project that installs localport.
"""

from __future__ import annotations

import errno
import re
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

#: How many socket.bind calls of the running test are remembered.
_BINDS_KEPT = 32
# asyncio: "error while attempting to bind on address ('127.0.0.1', 8000)"; uvicorn and others
# print "127.0.0.1:8000" or "port 8000".
_PORT_PATTERNS = (
    re.compile(r"address \('?[^',]*'?, (\d{1,5})"),
    re.compile(r"\bport[ =:]+(\d{1,5})\b", re.IGNORECASE),
    re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|localhost):(\d{1,5})\b"),
)


@dataclass(frozen=True)
class Bind:
    """One ``socket.bind`` call: the address asked for, and whether the socket set
    ``SO_REUSEADDR`` (``None`` when that could not be read)."""

    host: str
    port: int
    reuse_address: bool | None


class BindWatch:
    """Remembers the binds of the running test.

    A plain ``sock.bind(("127.0.0.1", 8000))`` that fails says "[Errno 98] Address already in
    use" without the port; the ``socket.bind`` audit event (Python 3.8+) sees the socket and the
    address. Audit hooks cannot be removed, so the hook is installed once and does nothing
    unless a test's setup, call or teardown is running (about half a microsecond per event).
    """

    def __init__(self) -> None:
        self.installed = False
        self.active = False
        self.binds: list[Bind] = []
        self.lock = threading.Lock()

    def install(self) -> None:
        if not self.installed:
            sys.addaudithook(self._hook)
            self.installed = True

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.bind" or not self.active:
            return
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
            reuse: bool | None = None
            sock = args[0]
            if isinstance(sock, socket.socket):
                try:
                    reuse = bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR))
                except OSError:
                    reuse = None
            with self.lock:
                self.binds.append(Bind(str(address[0]), address[1], reuse))
                del self.binds[:-_BINDS_KEPT]

    def start(self) -> None:
        with self.lock:
            self.binds.clear()
        self.active = True

    def stop(self) -> list[Bind]:
        self.active = False
        with self.lock:
            return list(self.binds)


def address_in_use(error: BaseException) -> BaseException | None:
    """The EADDRINUSE error in *error*'s chain (``raise ... from`` and implicit context)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.EADDRINUSE:
            return current
        try:
            text = str(current)
        except Exception:  # noqa: BLE001 - an exception whose __str__ fails says nothing
            text = ""
        if "address already in use" in text.lower():
            return current
        current = current.__cause__ or current.__context__
    return None


def failed_bind(error: BaseException, binds: list[Bind]) -> tuple[int, Bind | None] | None:
    """The port *error* is about, and the bind that asked for it where the test made one."""
    port = getattr(error, "port", None)
    if not isinstance(port, int):  # not localport's own PortInUseError
        port = None
        for pattern in _PORT_PATTERNS:
            match = pattern.search(str(error))
            if match and 0 < int(match.group(1)) < 65536:
                port = int(match.group(1))
                break
    # The last bind that asked for the port is the one that failed: the audit event fires
    # just before the system call.
    for bind in reversed(binds):
        if bind.port and (port is None or bind.port == port):
            return bind.port, bind
    return (port, None) if port is not None else None


def who_text(port: int, lock_dir: str | None, *, from_fixture: bool, bind: Bind | None) -> str:
    """The report section: who holds *port* now, and what to do about it."""
    try:
        from ._explain import explain
        from ._holders import who_holds
        from .cli._render import holder_line

        holders = who_holds(port, proto="both", lock_dir=lock_dir)
    except Exception as error:  # noqa: BLE001 - the report must never fail over diagnostics
        return f"could not find out who holds port {port}: {error}"
    if from_fixture:
        # The test already uses a localport fixture: the port was free and reserved for
        # 127.0.0.1 (or the host asked for) when the test got it.
        advice = (
            "reserve the port for the address your server binds "
            "(localport_port_factory(host=...), or host='*' for any address)"
        )
    else:
        advice = "use the localport_tcp_port fixture instead of a fixed port"
    if any(h.status != "TIME_WAIT" for h in holders):
        lines = [f"port {port} is in use {explain(port, holders, instead=advice)}"]
    else:
        lines = [_gone(port, holders=bool(holders), bind=bind, advice=advice)]
    lines.extend(holder_line(holder) for holder in holders)
    return "\n".join(lines)


def _gone(port: int, *, holders: bool, bind: Bind | None, advice: str) -> str:
    """The sentence for a port that nothing but TIME_WAIT leftovers (or nothing) holds now."""
    text = (
        f"port {port} was in use when the test bound it, but its holder has let go since "
        "(a server the test stopped, or a short-lived process)"
    )
    if holders and bind is not None and bind.reuse_address:
        text += (
            "; only TIME_WAIT leftovers remain, which the test's socket (it sets SO_REUSEADDR) "
            "binds past, so they were not the cause"
        )
    elif holders:
        text += (
            "; TIME_WAIT leftovers of closed connections remain, which fail a bind without "
            "SO_REUSEADDR: set it on the server's socket"
        )
    return f"{text}; or {advice}"
