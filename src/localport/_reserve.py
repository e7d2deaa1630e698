"""``reserve()``: pick a port, hold it across processes, and hand it to a server."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import hashlib
import itertools
import math
import os
import random
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from ._errors import LocalportError, LockDirError, NoFreePortError, PortInUseError
from ._probe import (
    Endpoint,
    Plan,
    ProbeResult,
    bind_address,
    bind_guard,
    check_proto,
    guard_endpoint_of,
    normalize_host,
    plan_for,
    probe,
    same_place,
    url_host,
)
from ._ranges import candidates, check_port, configured_range, kernel_ephemeral_range
from ._registry import (
    LockedPort,
    Registry,
    ReservationInfo,
    check_lock_dir_argument,
    lease_live,
    own_start_time,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from types import TracebackType

    from typing_extensions import Self

Proto = Literal["tcp", "udp", "both"]
_SOCK_TYPES: dict[str, tuple[socket.SocketKind, ...]] = {
    "tcp": (socket.SOCK_STREAM,),
    "udp": (socket.SOCK_DGRAM,),
    "both": (socket.SOCK_STREAM, socket.SOCK_DGRAM),
}
# The class below has a method named socket(); annotations inside it use this alias.
SocketType = socket.socket
SocketKind = socket.SocketKind
_SOCK_NAMES = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}
_NAME_LIMIT = 200
#: Seconds between further looks at an explicit port that a probe found busy (see attempt()):
#: long enough to outlast a reader preempted while its probe socket is bound, on a loaded
#: machine; paid in full (about 85 ms) only when the port really is busy.
_EXPLICIT_RETRY_PAUSES = (0.001, 0.004, 0.016, 0.064)
# One source of randomness for start positions; SystemRandom needs no reseeding after fork.
_random = random.SystemRandom()


# -- validation (no I/O) -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    port: int | None
    name: str | None
    host: str
    proto: str
    port_range: tuple[int, int]
    fallback: bool
    guard: bool
    lock_dir: str | None

    @property
    def plans(self) -> tuple[tuple[socket.SocketKind, Plan], ...]:
        return tuple((kind, plan_for(self.host, kind)) for kind in _SOCK_TYPES[self.proto])


def _is_text(value: object) -> bool:
    """isinstance(value, str), for checks of arguments typed str that untyped callers break."""
    return isinstance(value, str)


def _check_bool(value: object, argument: str) -> bool:
    if not isinstance(value, bool):
        msg = f"{argument} must be True or False, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    return value


def _check_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"name must be a str or None, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not value or len(value) > _NAME_LIMIT or "\x00" in value:
        msg = f"name must be 1 to {_NAME_LIMIT} characters without NUL, got {value!r}"
        raise ValueError(msg)
    return value


def _request(
    *,
    port: object,
    name: object,
    host: object,
    proto: object,
    port_range: object,
    fallback: object,
    guard: object,
    lock_dir: object,
) -> _Request:
    return _Request(
        port=None if port is None else check_port(port),
        name=_check_name(name),
        host=normalize_host(host),
        proto=check_proto(proto),
        port_range=configured_range(port_range),
        fallback=_check_bool(fallback, "fallback"),
        guard=_check_bool(guard, "guard"),
        lock_dir=check_lock_dir_argument(lock_dir),
    )


# -- the live set ------------------------------------------------------------------------------
#
# Dropping the last reference to a filelock lock releases it. Users will write
# ``port = reserve().port``, so every live reservation is referenced from here until release()
# or interpreter exit.

_live: set[Reservation] = set()
_live_mutex = threading.Lock()


def _release_all_at_exit() -> None:
    with _live_mutex:
        pending = list(_live)
    for reservation in pending:
        with contextlib.suppress(Exception):
            reservation.release()


def _forget_parent_reservations() -> None:
    """In a forked child: the parent's reservations are the parent's, not ours to release."""
    global _live_mutex  # noqa: PLW0603 - a lock held by another thread at fork time is unusable
    _live_mutex = threading.Lock()
    for reservation in list(_live):
        reservation._forget_after_fork()  # noqa: SLF001 - the module owns its reservations
    _live.clear()


atexit.register(_release_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_reservations)


# -- Reservation -------------------------------------------------------------------------------


class Reservation:
    """A port held for this process until :meth:`release` (or exit).

    While it lives, no other process using the same lock directory gets this port, and (with
    the guard on) the kernel will not hand it out as the source port of an outgoing connection.
    Bind your server inside the ``with`` block, or take the ready socket from :meth:`socket` /
    :meth:`listen`. Garbage collection does not release it: ``port = reserve().port`` keeps the
    port reserved until the process exits.
    """

    __slots__ = (
        "__weakref__",
        "_created",
        "_guards",
        "_host",
        "_locked",
        "_mutex",
        "_name",
        "_owner_pid",
        "_port",
        "_proto",
        "_record",
        "_released",
    )

    def __init__(
        self,
        *,
        port: int,
        host: str,
        proto: str,
        name: str | None,
        locked: LockedPort,
        guards: tuple[socket.socket, ...],
        record: dict[str, Any],
    ) -> None:
        self._port = port
        self._host = host
        self._proto = proto
        self._name = name
        self._locked: LockedPort | None = locked
        self._guards = guards
        self._record = record
        self._created = float(record["created"])
        self._owner_pid = os.getpid()
        self._released = False
        self._mutex = threading.Lock()

    @property
    def port(self) -> int:
        """The reserved port."""
        return self._port

    @property
    def host(self) -> str:
        """The address the server is meant to bind (as given, normalized)."""
        return self._host

    @property
    def proto(self) -> str:
        """``"tcp"``, ``"udp"`` or ``"both"``."""
        return self._proto

    @property
    def name(self) -> str | None:
        """The sticky name, or ``None``."""
        return self._name

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, ready for ``bind()``."""
        return self._host, self._port

    @property
    def created(self) -> float:
        """When the reservation was made, in seconds since the epoch."""
        return self._created

    @property
    def lock_path(self) -> str | None:
        """The lock file that holds the reservation (``None`` once released)."""
        locked = self._locked
        return locked.path if locked is not None else None

    @property
    def released(self) -> bool:
        """Whether :meth:`release` has run."""
        return self._released

    @property
    def guarded(self) -> bool:
        """Whether a guard socket keeps outgoing connections off the port, for every protocol.

        False with ``guard=False``, where no guard address exists (no IPv6 for some hosts),
        and for UDP on a wildcard host, where every guard would collide with the server.
        """
        return bool(self._record.get("guarded")) and not self._released

    def url(self, scheme: str = "http") -> str:
        """A URL that reaches a server on this reservation from this machine.

        A wildcard host maps to the loopback address of its family (``0.0.0.0`` to
        ``127.0.0.1``, ``::`` to ``[::1]``).
        """
        if not _is_text(scheme):
            msg = f"scheme must be a str such as 'http', got {type(scheme).__name__} {scheme!r}"
            raise TypeError(msg)
        if not scheme:
            msg = "scheme must be a non-empty str such as 'http', got ''"
            raise ValueError(msg)
        return f"{scheme}://{url_host(self._host)}:{self._port}"

    def socket(self, proto: str | None = None) -> socket.socket:
        """A new socket bound to the reserved address: the zero-gap handoff.

        The socket has ``SO_REUSEADDR`` (as servers set it), is IPv6-only for an IPv6 host other
        than ``::`` (which is dual-stack), and belongs to the caller, who closes it. Pass its
        ``fileno()`` to a server that takes a descriptor (uvicorn ``--fd``, gunicorn ``fd://``),
        with ``subprocess.Popen(..., pass_fds=[fd])``.

        :param proto: ``"tcp"`` or ``"udp"``; needed only for a reservation of ``"both"``.
        :raises LocalportError: if the reservation was released.
        """
        kind = self._socket_kind(proto)
        if self._released:
            msg = f"the reservation of port {self._port} was released; reserve again"
            raise LocalportError(msg)
        family, address = bind_address(self._host)
        sock = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(address != "::"))
            if os.name != "nt":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, self._port))
        except BaseException:
            sock.close()
            raise
        return sock

    def listen(self, backlog: int = 128) -> SocketType:
        """A TCP socket bound to the reserved address and already listening.

        :param backlog: the ``listen()`` backlog, a positive int.
        """
        if isinstance(backlog, bool) or not isinstance(backlog, int):
            msg = f"backlog must be a positive int, got {type(backlog).__name__} {backlog!r}"
            raise TypeError(msg)
        if backlog < 1:
            msg = f"backlog must be a positive int, got {backlog!r}"
            raise ValueError(msg)
        if self._proto == "udp":
            msg = "listen() needs a TCP reservation; this one is proto='udp' (use socket())"
            raise ValueError(msg)
        sock = self.socket("tcp")
        try:
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def _socket_kind(self, proto: str | None) -> SocketKind:
        if proto is None:
            if self._proto == "both":
                msg = "proto must be 'tcp' or 'udp' for a reservation of both protocols"
                raise ValueError(msg)
            return _SOCK_TYPES[self._proto][0]
        if not _is_text(proto):
            msg = f"proto must be 'tcp' or 'udp', got {type(proto).__name__} {proto!r}"
            raise TypeError(msg)
        if proto not in ("tcp", "udp"):
            msg = f"proto must be 'tcp' or 'udp', got {proto!r}"
            raise ValueError(msg)
        if self._proto not in (proto, "both"):
            msg = f"this reservation is proto={self._proto!r}, not {proto!r}"
            raise ValueError(msg)
        return _SOCK_TYPES[proto][0]

    def release(self, *, lease: float = 0.0) -> None:
        """Give the port back. Safe to call more than once, from any thread.

        :param lease: keep other localport users off the port for this many seconds after
            release, for handing the number to a process that will bind it a little later.
            The guard socket is closed either way, so that process can bind.

        In a forked child this does nothing: the reservation belongs to the parent.
        """
        if isinstance(lease, bool) or not isinstance(lease, (int, float)):
            msg = f"lease must be a number of seconds >= 0, got {type(lease).__name__} {lease!r}"
            raise TypeError(msg)
        if not (math.isfinite(lease) and lease >= 0):
            msg = f"lease must be a number of seconds >= 0, got {lease!r}"
            raise ValueError(msg)
        with self._mutex:
            if self._released or os.getpid() != self._owner_pid:
                return
            self._released = True
            locked, self._locked = self._locked, None
            guards, self._guards = self._guards, ()
        for guard in guards:
            guard.close()
        if locked is not None:
            now = time.time()
            record = dict(self._record, released=now, lease_until=now + lease if lease else None)
            with contextlib.suppress(OSError):
                Registry.write_metadata(locked.fd, record)
            locked.lock.release()
        with _live_mutex:
            _live.discard(self)

    def _forget_after_fork(self) -> None:
        # Closing the child's copies of the guard sockets leaves the parent's bound.
        for guard in self._guards:
            guard.close()
        self._guards = ()
        self._locked = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        name = f" name={self._name!r}" if self._name is not None else ""
        state = "released" if self._released else "held"
        return (
            f"<Reservation port={self._port} proto={self._proto!r} host={self._host!r}{name}"
            f" {state}>"
        )


class ReservationGroup:
    """Several reservations made together by :func:`reserve_many`, released together."""

    __slots__ = ("_reservations",)

    def __init__(self, reservations: Sequence[Reservation]) -> None:
        self._reservations = tuple(reservations)

    @property
    def ports(self) -> tuple[int, ...]:
        """The reserved ports, in order."""
        return tuple(r.port for r in self._reservations)

    @property
    def released(self) -> bool:
        """Whether every reservation of the group has been released."""
        return all(r.released for r in self._reservations)

    def release(self) -> None:
        """Release every reservation of the group (idempotent)."""
        for reservation in self._reservations:
            reservation.release()

    def __len__(self) -> int:
        return len(self._reservations)

    def __iter__(self) -> Iterator[Reservation]:
        return iter(self._reservations)

    @overload
    def __getitem__(self, index: int) -> Reservation: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Reservation, ...]: ...
    def __getitem__(self, index: int | slice) -> Reservation | tuple[Reservation, ...]:
        return self._reservations[index]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<ReservationGroup ports={list(self.ports)}>"


# -- the protocol ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Refusal:
    """Why a candidate was not taken."""

    reserved: bool
    endpoint: Endpoint | None = None
    kind: socket.SocketKind | None = None

    def describe(self, registry: Registry, port: int) -> str:
        if self.reserved:
            record = registry.read_metadata(port) or {}
            if record.get("released") is not None:
                # The record describes an earlier holder: either its lease is still running,
                # or a new holder has the lock and has not written its own record yet.
                if lease_live(record, time.time()):
                    until = time.strftime("%H:%M:%S", time.localtime(record["lease_until"]))
                    return f"(leased by localport until {until})"
                return "(reserved by localport: a reservation is being made)"
            pid, name = record.get("pid"), record.get("name")
            who = f"PID {pid}" if isinstance(pid, int) else "another process"
            if pid == os.getpid():
                who = "this process"
            named = f", name {name!r}" if isinstance(name, str) else ""
            return f"(reserved by localport: {who}{named})"
        if self.endpoint is not None and self.kind is not None:
            return f"on {self.endpoint.describe()} ({_SOCK_NAMES[self.kind]})"
        return ""


_RESERVED = _Refusal(reserved=True)
#: Locked by another process that has not described itself yet: a reservation being made,
#: which may still fail and let go.
_LOCKED = _Refusal(reserved=True)
#: Pauses before another look at the ports a walk refused for a reason that may pass.
_WALK_RETRY_PAUSES = (0.002, 0.01)


class _Picker:
    """One reserve() or reserve_many() call against one lock directory."""

    def __init__(self, request: _Request, registry: Registry) -> None:
        self.request = request
        self.registry = registry
        self.plans = request.plans
        self.busy = 0
        #: A name's own ports: probed so that TIME_WAIT leftovers of the previous run do not
        #: count as busy (see attempt()).
        self.sticky: set[int] = set()

    def attempt(self, port: int, *, explicit: bool) -> Reservation | _Refusal:
        """Try to reserve *port*: the protocol of DESIGN.md, step 3."""
        registry = self.registry
        # A restarted dev server finds its old port in TIME_WAIT, which a plain bind probe
        # reports busy, so a sticky name would move on every restart. For a name's own ports,
        # probe the consumer's address with SO_REUSEADDR: that still fails on any listener and
        # any socket bound without it, and the servers that want sticky ports set it anyway.
        lenient = port in self.sticky
        if not explicit:
            # A reserved port must never see even a momentary bind on its consumer's address:
            # that makes the owner's own bind() fail. So, before the consumer's address:
            # the metadata hint skips live reservations of this lock directory, and a plain
            # bind where the guard would sit fails on any guarded reservation of the same
            # address family, whatever lock directory it came from.
            if registry.hinted_taken(port, time.time()):
                return _RESERVED
            for kind, plan in self.plans:
                cheap = _lenient(plan.cheap) if lenient else plan.cheap
                for endpoint in (*plan.guards[:1], cheap):
                    if probe(endpoint, kind, port) is ProbeResult.BUSY:
                        return _Refusal(reserved=False, endpoint=endpoint, kind=kind)
        try:
            locked = registry.try_lock(port)
        except OSError as error:
            # A planted symlink (ELOOP) or another user's unreadable file in a shared
            # directory spoils this one port; anything else spoils the directory.
            if explicit or error.errno not in (errno.ELOOP, errno.EACCES, errno.EPERM):
                reason = f"its lock file {registry.lock_path(port)} cannot be used ({error})"
                raise LockDirError(registry.path, reason) from error
            return _RESERVED
        if locked is None:
            return _LOCKED
        guards: list[socket.socket] = []
        try:
            outcome = self._verify(port, locked, guards, lenient=lenient)
            # An explicit port is worth a second look. A reader such as is_free() in another
            # process may have found it unreserved just before we locked it and be probing it
            # right now; once we hold the lock every new reader sees it and keeps off, so the
            # collision lasts microseconds. A port that is really busy stays busy.
            for pause in _EXPLICIT_RETRY_PAUSES if explicit else ():
                if not isinstance(outcome, _Refusal) or outcome.reserved:
                    break
                time.sleep(pause)
                outcome = self._verify(port, locked, guards, lenient=lenient)
        except BaseException:
            for guard in guards:
                guard.close()
            locked.lock.release()
            raise
        if isinstance(outcome, _Refusal):
            locked.lock.release()
        return outcome

    def _verify(
        self, port: int, locked: LockedPort, guards: list[socket.socket], *, lenient: bool
    ) -> Reservation | _Refusal:
        request = self.request
        now = time.time()
        previous = Registry.read_metadata_fd(locked.fd)
        if previous is not None and lease_live(previous, now):
            self._undo(guards)
            return _RESERVED
        for kind, plan in self.plans:
            guard_at: Endpoint | None = None
            if request.guard:
                # Guard first, then the authoritative probe: probing first leaves a gap in
                # which an outgoing connect() can take the port (seen in testing).
                result, guard = bind_guard(plan, kind, port)
                if result is ProbeResult.BUSY:
                    self._undo(guards)
                    return _Refusal(reserved=False, endpoint=plan.guards[0], kind=kind)
                if guard is not None:
                    guards.append(guard)
                    guard_at = guard_endpoint_of(guard)
            for index, endpoint in enumerate(plan.probes):
                if guard_at is not None and same_place(endpoint, guard_at):
                    continue  # the guard's own bind already tested this address
                result = probe(_lenient(endpoint) if lenient else endpoint, kind, port)
                if result is ProbeResult.BUSY:
                    self._undo(guards)
                    return _Refusal(reserved=False, endpoint=endpoint, kind=kind)
                if result is ProbeResult.ABSENT and index == 0:
                    self._undo(guards)
                    raise OSError(
                        errno.EADDRNOTAVAIL,
                        f"cannot reserve a port for host {request.host!r}: "
                        "it is not an address of this machine",
                    )
        record: dict[str, Any] = {
            "v": 1,
            "pid": os.getpid(),
            "process_started": own_start_time(),
            "port": port,
            "proto": request.proto,
            "host": request.host,
            "name": request.name,
            "created": now,
            # Guarded only when every protocol is: a wildcard UDP consumer gets no guard.
            "guarded": len(guards) == len(self.plans),
            "released": None,
            "lease_until": None,
        }
        Registry.write_metadata(locked.fd, record)
        reservation = Reservation(
            port=port,
            host=request.host,
            proto=request.proto,
            name=request.name,
            locked=locked,
            guards=tuple(guards),
            record=record,
        )
        with _live_mutex:
            _live.add(reservation)
        return reservation

    @staticmethod
    def _undo(guards: list[socket.socket]) -> None:
        """Close the guards of a refused candidate; attempt() lets go of the lock."""
        for guard in guards:
            guard.close()
        guards.clear()

    def _port_in_use(self, port: int, refusal: _Refusal) -> PortInUseError:
        """The error for a busy explicit port, naming who holds it where that can be learned."""
        holders: list[Any] = []
        detail = refusal.describe(self.registry, port)
        try:
            from ._holders import explain, who_holds

            holders = who_holds(
                port, proto=self.request.proto, host=self.request.host, lock_dir=self.registry.path
            )
            if holders:
                detail = explain(port, holders, host=self.request.host)
        except Exception:  # noqa: BLE001 - diagnostics must never hide the error itself
            holders = []
        return PortInUseError(port, holders, detail=detail)

    def walk(self, exclude: int | None = None) -> Iterator[int]:
        """Candidate ports: a name's sticky ports first, then the range (see _ranges)."""
        request = self.request
        low, high = request.port_range
        tried: set[int] = set()
        if request.name is not None:
            recorded = self.registry.recorded_port(request.name)
            for port in (recorded, sticky_port(request.name, request.port_range)):
                if port is not None and low <= port <= high and port not in tried:
                    tried.add(port)
                    self.sticky.add(port)
                    yield port
        if exclude is not None:
            tried.add(exclude)
        for port in candidates(request.port_range, kernel_ephemeral_range(), _random):
            if port not in tried:
                yield port

    def one(self) -> Reservation:
        request = self.request
        if request.port is not None:
            outcome = self.attempt(request.port, explicit=True)
            if isinstance(outcome, Reservation):
                self._remember(outcome.port)
                return outcome
            if not request.fallback:
                raise self._port_in_use(request.port, outcome)
        # A port can be refused for a reason that passes in microseconds: another process
        # holds its lock midway through a reservation that may yet fail, or a neighbour's
        # momentary probe met ours. On a nearly full range, walking each port only once would
        # then end in NoFreePortError while ports are free, so those get another look or two.
        again: list[int] = []
        for port in self.walk(exclude=request.port):
            outcome = self.attempt(port, explicit=False)
            if isinstance(outcome, Reservation):
                self._remember(outcome.port)
                return outcome
            self.busy += 1
            if outcome is not _RESERVED:
                again.append(port)
        for pause in _WALK_RETRY_PAUSES:
            if not again:
                break
            time.sleep(pause)
            ports, again = again, []
            for port in ports:
                outcome = self.attempt(port, explicit=False)
                if isinstance(outcome, Reservation):
                    self.busy -= 1
                    self._remember(outcome.port)
                    return outcome
                if outcome is not _RESERVED:
                    again.append(port)
        raise NoFreePortError(request.port_range, self.busy)

    def block(self, count: int) -> list[Reservation]:
        """*count* adjacent ports, lowest first."""
        request = self.request
        low, high = request.port_range
        starts: list[int] = []
        if request.name is not None:
            recorded = self.registry.recorded_port(request.name)
            hashed = sticky_port(request.name, (low, high - count + 1))
            starts = [port for port in (recorded, hashed) if port is not None]
            for start in starts:
                self.sticky.update(range(start, start + count))
        walk = candidates((low, high - count + 1), kernel_ephemeral_range(), _random)
        seen: set[int] = set()
        for start in itertools.chain(starts, walk):
            if start in seen or not low <= start <= high - count + 1:
                continue
            seen.add(start)
            taken: list[Reservation] = []
            for port in range(start, start + count):
                outcome = self.attempt(port, explicit=False)
                if not isinstance(outcome, Reservation):
                    self.busy += 1
                    break
                taken.append(outcome)
            if len(taken) == count:
                self._remember(start)
                return taken
            for reservation in taken:
                reservation.release()
        raise NoFreePortError(request.port_range, self.busy, count=count)

    def _remember(self, port: int) -> None:
        name = self.request.name
        if name is not None and self.registry.recorded_port(name) != port:
            self.registry.record_port(name, port)


def _lenient(endpoint: Endpoint) -> Endpoint:
    return dataclasses.replace(endpoint, reuse=True)


def sticky_port(name: str, port_range: tuple[int, int]) -> int:
    """The port a name hashes to: the same on every run and every machine."""
    low, high = port_range
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


# -- public functions --------------------------------------------------------------------------


def reserve(
    port: int | None = None,
    *,
    name: str | None = None,
    host: str = "127.0.0.1",
    proto: Proto = "tcp",
    port_range: tuple[int, int] | str | None = None,
    fallback: bool = False,
    guard: bool = True,
    lock_dir: str | os.PathLike[str] | None = None,
) -> Reservation:
    """Reserve a free local port for this process.

    :param port: this exact port (1-65535, inside the range or not); ``None`` picks one.
    :param name: a sticky name: the same name gets the same port on the next run while it is
        free, so a dev server's URL stays put across restarts.
    :param host: the address your server will bind: ``"127.0.0.1"``, ``"::1"``,
        ``"0.0.0.0"``, ``"::"``, ``"localhost"`` or another local IP address. Every address a
        client of that server may reach is checked (a ``[::1]`` listener blocks a
        ``127.0.0.1`` reservation, since ``localhost`` may resolve to either).
    :param proto: ``"tcp"``, ``"udp"`` or ``"both"``.
    :param port_range: ``(low, high)`` inclusive, or ``"low-high"``, to pick from; default
        the ``LOCALPORT_RANGE`` environment variable, else 49152-65535.
    :param fallback: with *port*: take another free port instead of raising when it is busy.
    :param guard: keep a guard socket on the port so outgoing connections cannot take it; turn
        off only for a server that cannot bind beside it (see the docs on guards).
    :param lock_dir: the lock directory shared with cooperating processes; default
        ``LOCALPORT_DIR``, else a private per-user directory.
    :returns: a :class:`Reservation`, held until released or the process exits.
    :raises PortInUseError: *port* is taken (and *fallback* is false).
    :raises NoFreePortError: every port of the range is taken.
    :raises LockDirError: the lock directory is unsafe or unusable.
    :raises TypeError, ValueError: bad arguments, before anything is touched.
    """
    request = _request(
        port=port,
        name=name,
        host=host,
        proto=proto,
        port_range=port_range,
        fallback=fallback,
        guard=guard,
        lock_dir=lock_dir,
    )
    return _Picker(request, Registry.open(request.lock_dir)).one()


def reserve_many(
    count: int,
    *,
    consecutive: bool = False,
    name: str | None = None,
    host: str = "127.0.0.1",
    proto: Proto = "tcp",
    port_range: tuple[int, int] | str | None = None,
    guard: bool = True,
    lock_dir: str | os.PathLike[str] | None = None,
) -> ReservationGroup:
    """Reserve *count* ports at once; all or none.

    :param count: how many ports, at least 1.
    :param consecutive: make them adjacent (a cluster, or a port and port+1).
    :param name: a sticky name for the group: members are named ``name[0]``, ``name[1]``...
        and, when consecutive, the group keeps its first port across runs while free.

    The other options are those of :func:`reserve`.

    :raises ValueError: *count* is more than the range holds (or another bad argument).
    :raises NoFreePortError: not enough free ports (adjacent ones, when *consecutive*).
    """
    if isinstance(count, bool) or not isinstance(count, int):
        msg = f"count must be an int >= 1, got {type(count).__name__} {count!r}"
        raise TypeError(msg)
    if count < 1:
        msg = f"count must be >= 1, got {count}"
        raise ValueError(msg)
    _check_bool(consecutive, "consecutive")
    request = _request(
        port=None,
        name=name,
        host=host,
        proto=proto,
        port_range=port_range,
        fallback=False,
        guard=guard,
        lock_dir=lock_dir,
    )
    low, high = request.port_range
    if count > high - low + 1:
        msg = f"count {count} is more than the {high - low + 1} ports of port_range {low}-{high}"
        raise ValueError(msg)
    registry = Registry.open(request.lock_dir)
    if consecutive:
        return ReservationGroup(_Picker(request, registry).block(count))
    taken: list[Reservation] = []
    try:
        for index in range(count):
            member_name = None if request.name is None else f"{request.name}[{index}]"
            member = dataclasses.replace(request, name=member_name)
            taken.append(_Picker(member, registry).one())
    except BaseException:
        for reservation in taken:
            reservation.release()
        raise
    return ReservationGroup(taken)


def reservations(lock_dir: str | os.PathLike[str] | None = None) -> list[ReservationInfo]:
    """The live reservations in a lock directory, sorted by port.

    Read without taking any lock (on Linux from ``/proc/locks``), so listing never disturbs a
    concurrent :func:`reserve`.
    """
    return Registry.open(check_lock_dir_argument(lock_dir)).live()


def is_free(
    port: int,
    *,
    host: str = "127.0.0.1",
    proto: Proto = "tcp",
    lock_dir: str | os.PathLike[str] | None = None,
) -> bool:
    """Whether *port* could be reserved right now: no live reservation, nothing bound.

    A port a live reservation holds is reported taken without binding anything on it, and
    on Linux nothing is bound at all (the kernel is asked through sock_diag), so asking never
    breaks anyone's ``bind()`` or ``reserve()``. The answer can be stale a moment later:
    :func:`reserve` is the only way to *keep* a port.
    """
    request = _request(
        port=check_port(port),
        name=None,
        host=host,
        proto=proto,
        port_range=None,
        fallback=False,
        guard=False,
        lock_dir=lock_dir,
    )
    registry = Registry.open(request.lock_dir)
    if registry.is_reserved(check_port(port), time.time()):
        return False
    if sys.platform.startswith("linux"):
        # Ask the kernel instead of binding: a probe bind, however short, could make a
        # concurrent reserve() of this port fail.
        from ._holders import bound_in_the_way

        protos = ("tcp", "udp") if request.proto == "both" else (request.proto,)
        try:
            return not bound_in_the_way(port, request.host, protos)
        except OSError:
            pass  # no netlink here: probe as everywhere else
    for kind, plan in request.plans:
        for endpoint in (plan.cheap, *plan.probes):
            if probe(endpoint, kind, port) is ProbeResult.BUSY:
                return False
    return True


__all__ = [
    "Reservation",
    "ReservationGroup",
    "ReservationInfo",
    "is_free",
    "reservations",
    "reserve",
    "reserve_many",
]
