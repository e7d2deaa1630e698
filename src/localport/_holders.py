"""``who_holds()``: which process holds a local port, in words a developer can act on."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ._errors import LocalportError
from ._probe import check_proto, normalize_host
from ._processes import ProcessFacts, facts, pids_of_inodes, socket_pids_everywhere
from ._ranges import check_port
from ._registry import Registry, ReservationInfo, check_lock_dir_argument
from ._sockdiag import DiagSocket

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


#: Order in which holders are listed: whoever serves the port first, leftovers last.
_STATUS_ORDER = {
    "LISTEN": 0,
    "BOUND": 1,
    "RESERVED": 2,
    "ESTABLISHED": 3,
    "CONNECTED": 3,
    "TIME_WAIT": 9,
}
_TIME_WAIT_SECONDS = 60  # Linux TCP_TIMEWAIT_LEN; other systems use 30-120 s


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
    proto: str = "tcp",
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
    protos = _protos(proto)
    wanted_host = None if host is None else normalize_host(host)
    reservation = _reservation(port, check_lock_dir_argument(lock_dir))
    sockets: list[DiagSocket] = []
    for one in protos:
        keep = None if wanted_host is None else _in_the_way_of(wanted_host, one)
        sockets.extend(_sockets(port, one, keep=keep))
    hints = [reservation.pid] if reservation is not None else []
    owner_uids = {s.uid for s in sockets if s.uid is not None}
    pids = pids_of_inodes(
        [s.inode for s in sockets if s.pid is None],
        hints=hints,
        uid=owner_uids.pop() if len(owner_uids) == 1 else None,
    )
    holders = _holders_of(sockets, pids, reservation, add_reservation=True)
    holders.sort(key=lambda h: (_STATUS_ORDER.get(h.status, 5), h.proto, h.local_address or ()))
    return holders


def listening(
    *, proto: str = "tcp", lock_dir: str | os.PathLike[str] | None = None
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
    protos = _protos(proto)
    directory = check_lock_dir_argument(lock_dir)
    sockets: list[DiagSocket] = []
    for one in protos:
        sockets.extend(_sockets(None, one, listening_only=True))
    pids = socket_pids_everywhere() if any(s.pid is None for s in sockets) else {}
    reservations: dict[int, ReservationInfo] = {}
    with contextlib.suppress(LocalportError, OSError):
        reservations = {info.port: info for info in Registry.open(directory).live()}
    holders: list[Holder] = []
    for item in sockets:
        reservation = reservations.get(item.local[1])
        holders.extend(_holders_of([item], pids, reservation, add_reservation=False))
    holders.sort(key=lambda h: (h.local_address[1] if h.local_address else 0, h.proto))
    return holders


def _protos(proto: object) -> tuple[str, ...]:
    checked = check_proto(proto)
    return ("tcp", "udp") if checked == "both" else (checked,)


def _reservation(port: int, lock_dir: str | None) -> ReservationInfo | None:
    # Diagnostics must never fail on an unusable lock directory: report sockets only.
    try:
        return Registry.open(lock_dir).reservation_at(port)
    except (LocalportError, OSError):
        return None


_Keep: TypeAlias = "Callable[[DiagSocket], bool] | None"


def _sockets(
    port: int | None, proto: str, *, listening_only: bool = False, keep: _Keep = None
) -> list[DiagSocket]:
    """The sockets on *port*: sock_diag on Linux, psutil elsewhere or when netlink fails.

    TCP is asked in phases: listeners, then bound sockets, then connections and TIME_WAIT,
    each only when the one before found nothing that *keep* accepts. A listening server is
    so named in well under a millisecond however many connections the machine has, and
    connections are reported only where they are what holds the port.
    """
    if sys.platform.startswith("linux"):
        try:
            return _sockdiag_sockets(port, proto, listening_only=listening_only, keep=keep)
        except OSError:
            pass  # no netlink here (a sandbox, a kernel without inet_diag): psutil reads /proc
    return _psutil_sockets(port, proto, listening_only=listening_only, keep=keep)


def _sockdiag_sockets(
    port: int | None, proto: str, *, listening_only: bool, keep: _Keep
) -> list[DiagSocket]:
    from ._sockdiag import TCP_PHASES, query

    if proto == "udp":
        return [s for s in query(port, proto) if keep is None or keep(s)]
    found: list[DiagSocket] = []
    for states in TCP_PHASES[:1] if listening_only else TCP_PHASES:
        found = [s for s in query(port, proto, states=states) if keep is None or keep(s)]
        if found:
            break
    return found


def _psutil_sockets(
    port: int | None, proto: str, *, listening_only: bool, keep: _Keep
) -> list[DiagSocket]:
    import psutil

    try:
        connections = psutil.net_connections(kind=proto)
    except psutil.AccessDenied:
        return []  # macOS without root: nothing can be said about other processes' sockets
    found = []
    for connection in connections:
        if not connection.laddr or (port is not None and connection.laddr.port != port):
            continue
        status = (
            connection.status if proto == "tcp" else ("CONNECTED" if connection.raddr else "BOUND")
        )
        if status == "NONE":
            status = "BOUND"
        if listening_only and proto == "tcp" and status != "LISTEN":
            continue
        remote = (connection.raddr.ip, connection.raddr.port) if connection.raddr else None
        item = DiagSocket(
            family=socket.AddressFamily(connection.family),
            proto=proto,
            state=status,
            local=(connection.laddr.ip, connection.laddr.port),
            remote=remote,
            uid=None,
            inode=0,
            pid=connection.pid,
        )
        if keep is None or keep(item):
            found.append(item)
    if proto == "tcp":
        # The same answer as the phased sock_diag path: connections and TIME_WAIT count only
        # where nothing listens on or is bound to the port.
        serving = [s for s in found if s.state in ("LISTEN", "BOUND")]
        return serving or found
    return found


def _in_the_way_of(host: str, proto: str) -> Callable[[DiagSocket], bool]:
    """A test for sockets that would make a plain ``bind()`` for *host* fail, or that answer
    clients of *host* (a ``[::1]`` listener answers "localhost" as well as 127.0.0.1 does)."""
    from ._probe import plan_for

    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    plan = plan_for(host, kind)
    endpoints = {(e.family, e.address, e.v6only) for e in (plan.cheap, *plan.probes)}

    def keep(item: DiagSocket) -> bool:
        family, address = _unmapped(item.family, item.local[0])
        return any(_conflicts((family, address, item.v6only), end) for end in endpoints)

    return keep


def _holders_of(
    sockets: Sequence[DiagSocket],
    pids: dict[int, int],
    reservation: ReservationInfo | None,
    *,
    add_reservation: bool,
) -> list[Holder]:
    """Holders for *sockets*; with *add_reservation*, a reservation no socket stands for
    (its guard is off, or sits in another network namespace) becomes a holder of its own."""
    cache: dict[int, ProcessFacts | None] = {}

    def process(pid: int | None) -> ProcessFacts | None:
        if pid is None:
            return None
        if pid not in cache:
            cache[pid] = facts(pid)
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
        holders.append(
            Holder(
                pid=pid,
                process_name=info.name if info else None,
                cmdline=info.cmdline if info else (),
                username=info.username if info else _name_of(uid),
                uid=uid,
                local_address=item.local,
                remote_address=item.remote,
                status=status,
                proto=item.proto,
                family=item.family,
                started=info.started if info else None,
                reservation=reservation if own or status == "RESERVED" else None,
                v6only=item.v6only if item.family == socket.AF_INET6 else None,
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


def _name_of(uid: int | None) -> str | None:
    if uid is None:
        return None
    from ._processes import username

    return username(uid)


# -- explaining ----------------------------------------------------------------------------------


def explain(
    port: int,
    holders: Sequence[Holder],
    *,
    host: str | None = None,
    instead: str = "call reserve() without a port",
) -> str:
    """What follows "port N is in use": who holds it and what to do, in one sentence.

    Special cases get their own sentence: TIME_WAIT leftovers only, another user's process
    whose PID cannot be read, a listener on IPv6 only, a localport reservation not yet bound.
    """
    if not holders:
        return (
            "(no holder visible from here: it may be in another network namespace or "
            "container, or was freed a moment ago)"
        )
    live = [h for h in holders if h.status != "TIME_WAIT"]
    if not live:
        return (
            f"only by TIME_WAIT leftovers of closed connections; it is free again within "
            f"{_TIME_WAIT_SECONDS} s, and a server that sets SO_REUSEADDR can bind it now"
        )
    first = live[0]
    if first.status == "RESERVED" and first.reservation is not None:
        return _explain_reservation(first, instead)
    text = f"by {_who(first)}"
    where = _where(first, host)
    if where:
        text += f", {where}"
    if first.started is not None and first.pid is not None:
        text += time.strftime(" since %H:%M", time.localtime(first.started))
    text += _advice(first, instead)
    others = len({h.pid for h in live if h.pid != first.pid})
    if others:
        text += (
            " (1 other process holds it too)"
            if others == 1
            else (f" ({others} other processes hold it too)")
        )
    return text


def _who(holder: Holder) -> str:
    if holder.pid == os.getpid():
        return "this process"
    if holder.pid is None:
        uid = "an unknown user" if holder.uid is None else f"uid {holder.uid}"
        user = f" ({holder.username})" if holder.username else ""
        return f"a process of {uid}{user}, pid unknown: run as root to see which process"
    details = [part for part in (_short(holder.command),) if part]
    if holder.username:
        details.append(f"user {holder.username}")
    if holder.reservation is not None and holder.reservation.name:
        details.append(f"localport name {holder.reservation.name!r}")
    inside = f" ({', '.join(details)})" if details else ""
    return f"PID {holder.pid}{inside}"


def _where(holder: Holder, host: str | None) -> str:
    if holder.local_address is None:
        return ""
    address = holder.address_text
    verb = {
        "LISTEN": "listening on",
        "BOUND": "bound (not listening) to",
        "ESTABLISHED": "connected on",
        "CONNECTED": "connected on",
    }.get(holder.status, f"{holder.status} on")
    text = f"{verb} {address}"
    if holder.status == "ESTABLISHED" and holder.remote_address is not None:
        remote_host, remote_port = holder.remote_address
        remote = f"[{remote_host}]" if ":" in remote_host else remote_host
        text = f"using it for a connection with {remote}:{remote_port}"
    elif (
        holder.family == socket.AF_INET6
        and holder.v6only
        and holder.local_address[0]
        in (
            "::1",
            "::",
        )
    ):
        ipv4_consumer = host is None or ":" not in host
        if ipv4_consumer:
            text += (
                " (IPv6 only; 'localhost' may resolve to it, so a server on 127.0.0.1 "
                "would get only part of its clients)"
            )
    return text


def _advice(holder: Holder, instead: str) -> str:
    if holder.status == "ESTABLISHED":
        return f"; it frees when that connection closes, or {instead}"
    if holder.pid == os.getpid():
        return f"; close that socket first, or {instead}"
    if holder.pid is None:
        return f"; {instead} to get a free one"
    return f"; stop it with `kill {holder.pid}` or {instead}"


def _explain_reservation(holder: Holder, instead: str) -> str:
    assert holder.reservation is not None
    info = holder.reservation
    named = f"name {info.name!r}, " if info.name else ""
    who = f"{named}this process" if info.pid == os.getpid() else f"{named}PID {info.pid}"
    if holder.command and info.pid != os.getpid():
        who += f", {_short(holder.command)}"
    if info.lease_until is not None:
        until = time.strftime("%H:%M:%S", time.localtime(info.lease_until))
        return f"(leased by localport until {until}: {who}); {instead}"
    return (
        f"(reserved by localport: {who}) but nothing listens on it yet; release that "
        f"reservation or {instead}"
    )


def _short(command: str, limit: int = 80) -> str:
    """The command on one line (a ``python -c`` script has newlines), cut to *limit*."""
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 3] + "..."


# -- is it bound? --------------------------------------------------------------------------------


def bound_in_the_way(port: int, host: str, protos: Sequence[str]) -> bool:
    """Whether any socket on *port* would make a plain ``bind()`` for *host* fail (Linux).

    Asked of sock_diag, so nothing is bound to find out: a momentary probe bind could make a
    concurrent ``reserve()`` of this port fail. Every state counts (``TIME_WAIT`` too, as it
    does for a plain bind).

    :raises OSError: where sock_diag cannot answer fully (no netlink, or a kernel that does
        not list bound-but-not-listening TCP sockets); the caller probes instead.
    """
    from ._sockdiag import lists_bound_sockets, query

    if "tcp" in protos and not lists_bound_sockets():
        msg = "this kernel's sock_diag does not list bound TCP sockets"
        raise OSError(msg)
    for proto in protos:
        keep = _in_the_way_of(host, proto)
        if any(keep(found) for found in query(port, proto)):
            return True
    return False


def _unmapped(family: socket.AddressFamily, address: str) -> tuple[socket.AddressFamily, str]:
    """``::ffff:127.0.0.1`` (an IPv4 peer of a dual-stack socket) is an IPv4 address."""
    if family == socket.AF_INET6 and address.startswith("::ffff:") and "." in address:
        return socket.AF_INET, address[7:]
    return family, address


_Place: TypeAlias = "tuple[socket.AddressFamily, str, bool | None]"


def _conflicts(existing: _Place, wanted_place: _Place) -> bool:
    """Whether a socket at *existing* collides with a bind at *wanted_place* (Linux's rules).

    Each is ``(family, address, v6only)``.
    """
    family, address, socket_v6only = existing
    wanted_family, wanted, wanted_v6only = wanted_place
    wildcard = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
    if family == wanted_family:
        return address in (wanted, wildcard[family]) or wanted == wildcard[family]
    if family == socket.AF_INET6 and address == "::":
        return socket_v6only is not True  # a dual-stack [::] takes every IPv4 address too
    return wanted_family == socket.AF_INET6 and wanted == "::" and not wanted_v6only


def listening_sockets(port: int, host: str) -> list[DiagSocket]:
    """TCP sockets listening on *port* that a client of a server on *host* would reach.

    Not the collision rule of :func:`bound_in_the_way`: a listener on ``[::1]`` collides with
    nothing on 127.0.0.1, and a client of 127.0.0.1 does not reach it either. Linux only
    (sock_diag's listening table: tens of microseconds, no traffic to the server).

    :raises OSError: where sock_diag cannot answer.
    """
    from ._sockdiag import TCP_PHASES, query

    targets = _client_targets(host)
    return [
        item
        for item in query(port, "tcp", states=TCP_PHASES[0])
        if any(_answers(item, family, address) for family, address in targets)
    ]


def _client_targets(host: str) -> list[tuple[socket.AddressFamily, str]]:
    """Where clients of a server bound to *host* connect from this machine."""
    if host in ("127.0.0.1", "0.0.0.0"):
        return [(socket.AF_INET, "127.0.0.1")]
    if host in ("::1", "::"):
        return [(socket.AF_INET6, "::1")]
    if host == "localhost":
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    return [(socket.AF_INET6 if ":" in host else socket.AF_INET, host)]


def _answers(item: DiagSocket, family: socket.AddressFamily, address: str) -> bool:
    """Whether a listener *item* accepts connections made to *address*."""
    wildcard = "::" if item.family == socket.AF_INET6 else "0.0.0.0"
    if item.family == family:
        return item.local[0] in (address, wildcard)
    # A dual-stack [::] listener takes IPv4 connections too.
    return family == socket.AF_INET and item.local[0] == "::" and item.v6only is False


def pids_of(sockets: Sequence[DiagSocket]) -> set[int]:
    """The PIDs holding *sockets*, as far as this process may look."""
    found = {item.pid for item in sockets if item.pid is not None}
    inodes = [item.inode for item in sockets if item.pid is None and item.inode]
    found.update(pids_of_inodes(inodes).values())
    return found
