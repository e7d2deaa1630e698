"""``who_holds()``: which process holds a local port, and ``listening()``: every listener.

The facts come from :mod:`localport._platform` (sock_diag and ``/proc`` on Linux, psutil
elsewhere); :mod:`localport._explain` turns them into sentences.
"""

from __future__ import annotations

import contextlib

# At run time: the API reference evaluates os.PathLike in the signatures.
import os  # noqa: TC003
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _platform
from ._addresses import in_the_way_of, reaches

# Proto (and SocketProto) at run time, not only for type checkers: the API reference
# resolves them in signatures.
from ._arguments import (
    Proto,
    SocketProto,
    check_lock_dir,
    check_port,
    check_proto,
    normalize_host,
    protos_of,
)
from ._containers import Container, Lookup  # Container at run time too: Holder's field
from ._errors import LocalportError
from ._listing import live, reservation_at
from ._registry import Registry, ReservationInfo

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._platform import ProcessFacts, SocketRecord


#: Order in which holders are listed: whoever serves the port first, leftovers last.
_STATUS_ORDER = {
    "LISTEN": 0,
    "BOUND": 1,
    "RESERVED": 2,
    "ESTABLISHED": 3,
    "CONNECTED": 3,
    "TIME_WAIT": 9,
}


@dataclass(frozen=True)
class Holder:
    """One socket (or one localport reservation) that holds a local port.

    :ivar pid: the process holding it; ``None`` when it cannot be known (another user's
        process and we are not root, or a ``TIME_WAIT`` leftover that no process owns).
    :ivar process_name: the process's short name (``node``, ``python3``), if known.
    :ivar cmdline: its command line, empty if unknown.
    :ivar username: the socket owner's login name, if known.
    :ivar uid: the socket owner's uid, if known (``None`` on Windows).
    :ivar local_address: ``(address, port)`` the socket is bound to; ``None`` for a
        reservation no socket of which is visible (its guard is off, it is a lease, or it sits
        in another network namespace).
    :ivar remote_address: the peer of a connected socket, else ``None``.
    :ivar status: ``LISTEN``, ``BOUND`` (bound, not listening), ``ESTABLISHED``,
        ``TIME_WAIT`` and the other TCP states; ``BOUND`` or ``CONNECTED`` for UDP;
        ``RESERVED`` for a localport reservation (its guard socket, or no socket at all).
    :ivar proto: ``"tcp"`` or ``"udp"``.
    :ivar family: ``socket.AF_INET`` or ``socket.AF_INET6``; ``None`` for a reservation
        without a socket.
    :ivar v6only: for an IPv6 socket, whether it is IPv6-only (``False``: a dual-stack
        ``[::]`` that takes IPv4 too); ``None`` when not an IPv6 socket or not known.
    :ivar started: when the process started (seconds since the epoch), if known.
    :ivar reservation: the localport reservation of this port, when there is one.
    :ivar container: when the process is a container runtime's port forwarder (podman's
        ``conmon`` or ``rootlessport``, ``docker-proxy``), the container that publishes the
        port; ``None`` for any other process.
    """

    pid: int | None
    process_name: str | None
    cmdline: tuple[str, ...]
    username: str | None
    uid: int | None
    local_address: tuple[str, int] | None
    remote_address: tuple[str, int] | None
    status: str
    proto: str
    family: socket.AddressFamily | None
    started: float | None
    reservation: ReservationInfo | None
    v6only: bool | None = None
    container: Container | None = None

    @property
    def command(self) -> str:
        """The command line as one string (the process name when the line is unreadable)."""
        if self.cmdline:
            return " ".join(self.cmdline)
        return self.process_name or ""

    @property
    def address_text(self) -> str:
        """The local address as people write it: ``127.0.0.1``, ``[::1]``."""
        if self.local_address is None:
            return ""
        address = self.local_address[0]
        return f"[{address}]" if ":" in address else address


# -- gathering ---------------------------------------------------------------------------------


def who_holds(
    port: int,
    *,
    proto: Proto = "tcp",
    host: str | None = None,
    lock_dir: str | os.PathLike[str] | None = None,
) -> list[Holder]:
    """Who holds local *port*: listeners, bound sockets, connections and reservations.

    :param port: the port, 1-65535.
    :param proto: ``"tcp"``, ``"udp"`` or ``"both"``.
    :param host: only holders that matter to a server on this address (for ``127.0.0.1``:
        sockets on 127.0.0.1, the wildcards, and ``[::1]``, which ``localhost`` may reach);
        ``None`` for every holder.
    :param lock_dir: the lock directory whose reservations to report (default as in
        :func:`localport.reserve`).
    :returns: the holders, whoever serves the port first and ``TIME_WAIT`` leftovers last;
        empty when nothing holds the port. Connections and ``TIME_WAIT`` leftovers are
        listed only when no TCP socket listens on or is bound to the port: they are what
        holds a port then, and finding them costs a walk of the kernel's whole connection
        table.

    On Linux the sockets come from the kernel's sock_diag interface, filtered by port in the
    kernel, and their processes from ``/proc``; elsewhere from psutil. Sockets of other users'
    processes are reported with their uid and ``pid=None`` unless this process may look.
    """
    port = check_port(port)
    protos = protos_of(check_proto(proto))
    wanted_host = None if host is None else normalize_host(host)
    reservation = _reservation(port, check_lock_dir(lock_dir))
    system = _platform.system
    sockets: list[SocketRecord] = []
    for one in protos:
        keep = None if wanted_host is None else in_the_way_of(wanted_host, one)
        sockets.extend(system.sockets(port, one, keep=keep))
    hints = [reservation.pid] if reservation is not None else []
    owner_uids = {s.uid for s in sockets if s.uid is not None}
    pids = system.pids_of_inodes(
        [s.inode for s in sockets if s.pid is None],
        hints=hints,
        uid=owner_uids.pop() if len(owner_uids) == 1 else None,
    )
    holders = _holders_of(sockets, pids, reservation, Lookup(), add_reservation=True)
    holders.sort(key=lambda h: (_STATUS_ORDER.get(h.status, 5), h.proto, h.local_address or ()))
    return holders


def listening(
    *, proto: Proto = "tcp", lock_dir: str | os.PathLike[str] | None = None
) -> list[Holder]:
    """Every listening TCP socket (for UDP: every bound socket) on this machine, by port.

    The data behind "what is running on my machine". A holder whose address is neither a
    loopback address nor ``localhost`` listens where other machines can reach it.

    :param proto: ``"tcp"``, ``"udp"`` or ``"both"``. UDP has no listening state: every
        bound UDP socket is listed, connected ones included.
    :param lock_dir: the lock directory whose reservations to attach (default as in
        :func:`localport.reserve`).
    :returns: one :class:`Holder` per socket, sorted by port.
    """
    protos = protos_of(check_proto(proto))
    directory = check_lock_dir(lock_dir)
    system = _platform.system
    sockets: list[SocketRecord] = []
    for one in protos:
        sockets.extend(system.sockets(None, one, listening_only=True, keep=None))
    pids = system.socket_pids_everywhere() if any(s.pid is None for s in sockets) else {}
    reservations: dict[int, ReservationInfo] = {}
    with contextlib.suppress(LocalportError, OSError):
        reservations = {info.port: info for info in live(Registry.open(directory, write=False))}
    holders: list[Holder] = []
    containers = Lookup()  # one budget for every container behind every port
    for item in sockets:
        reservation = reservations.get(item.local[1])
        holders.extend(_holders_of([item], pids, reservation, containers, add_reservation=False))
    holders.sort(key=lambda h: (h.local_address[1] if h.local_address else 0, h.proto))
    return holders


def _reservation(port: int, lock_dir: str | None) -> ReservationInfo | None:
    # Diagnostics must never fail on an unusable lock directory: report sockets only.
    try:
        return reservation_at(Registry.open(lock_dir, write=False), port)
    except (LocalportError, OSError):
        return None


def _holders_of(
    sockets: Sequence[SocketRecord],
    pids: dict[int, int],
    reservation: ReservationInfo | None,
    containers: Lookup,
    *,
    add_reservation: bool,
) -> list[Holder]:
    """Holders for *sockets*; with *add_reservation*, a reservation no socket stands for
    (its guard is off, or sits in another network namespace) becomes a holder of its own."""
    system = _platform.system
    cache: dict[int, ProcessFacts | None] = {}

    def process(pid: int | None) -> ProcessFacts | None:
        if pid is None:
            return None
        if pid not in cache:
            cache[pid] = system.process_facts(pid)
        return cache[pid]

    holders = []
    for item in sockets:
        pid = item.pid if item.pid is not None else pids.get(item.inode)
        info = process(pid)
        status = item.state
        if status == "CLOSE" and item.remote is None:
            status = "BOUND"
        own = reservation is not None and pid == reservation.pid
        if own and status == "BOUND" and reservation is not None and reservation.guarded:
            # localport's own guard socket: report it as the reservation it belongs to.
            status = "RESERVED"
        uid = item.uid if item.uid is not None else (info.uid if info else None)
        username = info.username if info else (None if uid is None else system.username(uid))
        holders.append(
            Holder(
                pid=pid,
                process_name=info.name if info else None,
                cmdline=info.cmdline if info else (),
                username=username,
                uid=uid,
                local_address=item.local,
                remote_address=item.remote,
                status=status,
                proto=item.proto,
                family=item.family,
                started=info.started if info else None,
                reservation=reservation if own or status == "RESERVED" else None,
                v6only=item.v6only if item.family == socket.AF_INET6 else None,
                container=containers.container(info, item.local[1], item.proto),
            )
        )
    if (
        add_reservation
        and reservation is not None
        and not any(h.reservation is not None for h in holders)
    ):
        holders.append(_reservation_holder(reservation, process(reservation.pid)))
    return holders


def _reservation_holder(reservation: ReservationInfo, info: ProcessFacts | None) -> Holder:
    return Holder(
        pid=reservation.pid,
        process_name=info.name if info else None,
        cmdline=info.cmdline if info else (),
        username=info.username if info else None,
        uid=info.uid if info else None,
        local_address=None,
        remote_address=None,
        status="RESERVED",
        proto=reservation.proto,
        family=None,
        started=info.started if info else reservation.process_started,
        reservation=reservation,
    )


# -- questions the core asks without binding ---------------------------------------------------


def bound_in_the_way(port: int, host: str, protos: Sequence[SocketProto]) -> bool | None:
    """Whether any socket on *port* would make a plain ``bind()`` for *host* fail, asked of
    the kernel: a momentary probe bind could make a concurrent ``reserve()`` of this port
    fail. Every state counts (``TIME_WAIT`` too, as it does for a plain bind).

    :returns: ``None`` where the system cannot list every bound socket; the caller probes.
    """
    system = _platform.system
    for proto in protos:
        found = system.bound_sockets(port, proto)
        if found is None:
            return None
        keep = in_the_way_of(host, proto)
        if any(keep(item) for item in found):
            return True
    return False


def listening_sockets(port: int, host: str) -> list[SocketRecord] | None:
    """TCP sockets listening on *port* that a client of a server on *host* would reach.

    Not the collision rule of :func:`bound_in_the_way`: a listener on ``[::1]`` collides with
    nothing on 127.0.0.1, and a client of 127.0.0.1 does not reach it either. ``None`` where
    the system cannot say without connecting.
    """
    found = _platform.system.listeners(port)
    if found is None:
        return None
    return [item for item in found if reaches(item, host)]


def pids_of(sockets: Sequence[SocketRecord]) -> set[int]:
    """The PIDs holding *sockets*, as far as this process may look."""
    found = {item.pid for item in sockets if item.pid is not None}
    inodes = [item.inode for item in sockets if item.pid is None and item.inode]
    found.update(_platform.system.pids_of_inodes(inodes).values())
    return found
