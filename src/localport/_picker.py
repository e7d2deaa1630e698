"""Picking a port: the order of candidates, the per-candidate protocol, and when to look again.

For each candidate :meth:`Picker.attempt` runs these steps, cheapest first:

1. A metadata hint: a live reservation of this lock directory is skipped without touching it.
2. A plain bind where the guard would sit, then at the consumer's own address: a port another
   program holds costs a few microseconds to reject. The guard spot comes first because a
   momentary bind on a *reserved* port's consumer address would make its owner's own
   ``bind()`` fail; a guarded reservation, from any lock directory, is refused at the guard spot.
3. The port's file lock, without waiting.
4. A lease left by an earlier holder is honoured.
5. The guard socket is bound, *then* every address a client may reach is probed: probing
   first leaves a gap in which an outgoing ``connect()`` can take the port (seen in testing).
6. The metadata (pid, process start time, name, protocol, host, times) is written through the
   locked descriptor.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import hashlib
import itertools
import os
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import _platform
from ._addresses import PROTO_OF_KIND, SOCKET_KINDS, Endpoint, Plan, plan_for
from ._arguments import (
    check_bool,
    check_lock_dir,
    check_name,
    check_port,
    check_proto,
    normalize_host,
    protos_of,
)
from ._errors import AddressNotAvailableError, LockDirError, NoFreePortError, PortInUseError
from ._explain import RESERVATION_BEING_MADE, busy_address, explain, reservation_sentence
from ._probe import ProbeResult, bind_guard, guard_endpoint_of, probe
from ._ranges import candidates, configured_range
from ._registry import LockedPort, Registry, lease_live
from ._reservation import LIVE, Reservation

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator, Sequence

    from ._arguments import Proto
    from ._holders import Holder

# One source of randomness for start positions; SystemRandom needs no reseeding after fork.
_random = random.SystemRandom()


@dataclass(frozen=True)
class Request:
    """The checked arguments of one ``reserve()`` (or one member of ``reserve_many()``)."""

    port: int | None
    name: str | None
    host: str
    proto: Proto
    port_range: tuple[int, int]
    fallback: bool
    guard: bool
    lock_dir: str | None

    @classmethod
    def check(
        cls,
        *,
        port: object,
        name: object,
        host: object,
        proto: object,
        port_range: object,
        fallback: object,
        guard: object,
        lock_dir: object,
    ) -> Request:
        """Validate every argument, without any I/O."""
        return cls(
            port=None if port is None else check_port(port),
            name=check_name(name),
            host=normalize_host(host),
            proto=check_proto(proto),
            port_range=configured_range(port_range),
            fallback=check_bool(fallback, "fallback"),
            guard=check_bool(guard, "guard"),
            lock_dir=check_lock_dir(lock_dir),
        )

    @property
    def plans(self) -> tuple[tuple[socket.SocketKind, Plan], ...]:
        kinds = (SOCKET_KINDS[proto] for proto in protos_of(self.proto))
        return tuple((kind, plan_for(self.host, kind)) for kind in kinds)


class Reason(enum.Enum):
    """Why a candidate was not taken."""

    #: A live reservation or lease holds it: skip it for good.
    RESERVED = "reserved"
    #: Another process holds its lock but has not described itself yet: a reservation being
    #: made, which may still fail and let go.
    LOCKED = "locked"
    #: Something is bound where we probed.
    BUSY = "busy"


@dataclass(frozen=True)
class Refusal:
    """A candidate not taken, and where it was found busy (for the error message)."""

    reason: Reason
    endpoint: Endpoint | None = None
    kind: socket.SocketKind | None = None

    @property
    def may_pass(self) -> bool:
        """Whether the reason can pass in microseconds, so another look is worth it."""
        return self.reason is not Reason.RESERVED


_RESERVED = Refusal(Reason.RESERVED)
_LOCKED = Refusal(Reason.LOCKED)
Outcome = Reservation | Refusal


@dataclass(frozen=True)
class RetryPolicy:
    """When a refusal that may pass (:attr:`Refusal.may_pass`) gets another look.

    - An *explicit* port found busy is probed again while we keep its lock: a reader such as
      :func:`localport.is_free` in another process may have found it unreserved just before we
      locked it and be probing it right now; once we hold the lock every new reader sees it
      and keeps off, so the collision lasts microseconds. The pauses outlast a reader
      preempted on a loaded machine; they are paid in full (about 85 ms) only when the port
      really is busy.
    - A *walk* gives the ports it found locked-but-undescribed or busy another look or two
      at the end: on a nearly full range, walking each port once would end in
      :class:`NoFreePortError` while ports are free.
    """

    explicit_pauses: tuple[float, ...] = (0.001, 0.004, 0.016, 0.064)
    walk_pauses: tuple[float, ...] = (0.002, 0.01)


RETRY = RetryPolicy()


def sticky_port(name: str, port_range: tuple[int, int]) -> int:
    """The port a name hashes to: the same on every run and every machine."""
    low, high = port_range
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


def _lenient(endpoint: Endpoint) -> Endpoint:
    return dataclasses.replace(endpoint, reuse=True)


class Picker:
    """One ``reserve()`` or ``reserve_many()`` call against one lock directory."""

    def __init__(self, request: Request, registry: Registry) -> None:
        self.request = request
        self.registry = registry
        self.plans = request.plans
        #: Ports refused during this call, for NoFreePortError.
        self.refused: set[int] = set()

    # -- one candidate ---------------------------------------------------------------------------

    def attempt(self, port: int, *, explicit: bool, sticky: bool) -> Outcome:
        """Try to reserve *port* (the steps in this module's docstring).

        A *sticky* port (a name's own) is probed with ``SO_REUSEADDR`` at the consumer's
        address: a restarted dev server finds its old port in TIME_WAIT, which a plain probe
        reports busy, so the name would move on every restart. That probe still fails on any
        listener and any socket bound without it, and servers that want sticky ports set it.
        """
        registry = self.registry
        if not explicit:
            if registry.hinted_taken(port, time.time()):
                return _RESERVED
            for kind, plan in self.plans:
                cheap = _lenient(plan.cheap) if sticky else plan.cheap
                for endpoint in (*plan.guards[:1], cheap):
                    if probe(endpoint, kind, port) is ProbeResult.BUSY:
                        return Refusal(Reason.BUSY, endpoint, kind)
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
        try:
            outcome = self._verify(port, locked, sticky=sticky)
            for pause in RETRY.explicit_pauses if explicit else ():
                if not (isinstance(outcome, Refusal) and outcome.reason is Reason.BUSY):
                    break
                time.sleep(pause)
                outcome = self._verify(port, locked, sticky=sticky)
        except BaseException:
            locked.release()
            raise
        if isinstance(outcome, Refusal):
            locked.release()
        return outcome

    def _verify(self, port: int, locked: LockedPort, *, sticky: bool) -> Outcome:
        """With the lock held: honour a lease, bind the guards, probe, write the record.

        The guards bound here belong to the returned reservation, or are closed before a
        refusal is returned.
        """
        now = time.time()
        previous = Registry.read_metadata_fd(locked.fd)
        if previous is not None and lease_live(previous, now):
            return _RESERVED
        guards: list[socket.socket] = []
        try:
            refusal = self._guard_and_probe(port, guards, sticky=sticky)
            if refusal is not None:
                for guard in guards:
                    guard.close()
                return refusal
            return self._record(port, locked, tuple(guards), now)
        except BaseException:
            for guard in guards:
                guard.close()
            raise

    def _guard_and_probe(
        self, port: int, guards: list[socket.socket], *, sticky: bool
    ) -> Refusal | None:
        """Bind a guard per protocol into *guards*, then probe every address clients reach."""
        request = self.request
        for kind, plan in self.plans:
            guard_at: Endpoint | None = None
            if request.guard:
                result, guard = bind_guard(plan, kind, port)
                if result is ProbeResult.BUSY:
                    return Refusal(Reason.BUSY, plan.guards[0], kind)
                if guard is not None:
                    guards.append(guard)
                    guard_at = guard_endpoint_of(guard)
            for index, endpoint in enumerate(plan.probes):
                if guard_at is not None and endpoint.same_place(guard_at):
                    continue  # the guard's own bind already tested this address
                result = probe(_lenient(endpoint) if sticky else endpoint, kind, port)
                if result is ProbeResult.BUSY:
                    return Refusal(Reason.BUSY, endpoint, kind)
                if result is ProbeResult.ABSENT and index == 0:
                    raise AddressNotAvailableError(request.host)
        return None

    def _record(
        self, port: int, locked: LockedPort, guards: tuple[socket.socket, ...], now: float
    ) -> Reservation:
        request = self.request
        record: dict[str, Any] = {
            "v": 1,
            "pid": os.getpid(),
            "process_started": _platform.system.own_start_time(),
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
            guards=guards,
            record=record,
        )
        LIVE.add(reservation)
        return reservation

    # -- explaining a refusal ----------------------------------------------------------------------

    def _port_in_use(self, port: int, refusal: Refusal) -> PortInUseError:
        """The error for a busy explicit port, naming who holds it where that can be learned."""
        holders: list[Holder] = []
        detail = self._describe(port, refusal)
        try:
            from ._holders import who_holds

            holders = who_holds(
                port, proto=self.request.proto, host=self.request.host, lock_dir=self.registry.path
            )
            if holders:
                detail = explain(port, holders, host=self.request.host)
        except Exception:  # noqa: BLE001 - diagnostics must never hide the error itself
            holders = []
        return PortInUseError(port, holders, detail=detail)

    def _describe(self, port: int, refusal: Refusal) -> str:
        """What the refusal itself says, for when nobody can be named."""
        if refusal.endpoint is not None and refusal.kind is not None:
            return busy_address(refusal.endpoint.describe(), PROTO_OF_KIND[refusal.kind])
        record = self.registry.read_metadata(port) or {}
        if record.get("released") is not None and not lease_live(record, time.time()):
            # The record describes an earlier holder; a new one has the lock and has not
            # written its own record yet.
            return RESERVATION_BEING_MADE
        info = self.registry.describe(port)
        if info is None:
            return "(reserved by localport: another process)"
        return reservation_sentence(info)

    # -- walks -------------------------------------------------------------------------------------

    def _sticky_ports(self, port_range: tuple[int, int]) -> list[int]:
        """A name's own ports, to try first: the last one recorded, then its hash."""
        name = self.request.name
        if name is None:
            return []
        low, high = port_range
        found = []
        for port in (self.registry.recorded_port(name), sticky_port(name, port_range)):
            if port is not None and low <= port <= high and port not in found:
                found.append(port)
        return found

    def _walk(self, sticky: Sequence[int], exclude: int | None) -> Iterator[int]:
        """The sticky ports, then the range (see :func:`localport._ranges.candidates`)."""
        yield from sticky
        tried = {*sticky, exclude}
        kernel_range = _platform.system.kernel_ephemeral_range()
        for port in candidates(self.request.port_range, kernel_range, _random):
            if port not in tried:
                yield port

    def one(self) -> Reservation:
        """One port: the explicit one, else (or, with fallback, failing that) a walk."""
        request = self.request
        if request.port is not None:
            outcome = self.attempt(request.port, explicit=True, sticky=False)
            if isinstance(outcome, Reservation):
                return self._remember(outcome, outcome.port)
            if not request.fallback:
                raise self._port_in_use(request.port, outcome)
        sticky = self._sticky_ports(request.port_range)

        def attempt(port: int) -> Outcome:
            return self.attempt(port, explicit=False, sticky=port in sticky)

        reservation = self._first_taken(self._walk(sticky, exclude=request.port), attempt)
        if reservation is None:
            raise NoFreePortError(request.port_range, len(self.refused))
        return self._remember(reservation, reservation.port)

    def _first_taken(
        self, ports: Iterator[int], attempt: Callable[[int], Outcome]
    ) -> Reservation | None:
        """The first of *ports* reserved, with :data:`RETRY`'s second looks for refusals
        that may pass; ``None`` when every port stays refused."""
        again: list[int] = []
        for port in ports:
            outcome = attempt(port)
            if isinstance(outcome, Reservation):
                return outcome
            self.refused.add(port)
            if outcome.may_pass:
                again.append(port)
        for pause in RETRY.walk_pauses:
            if not again:
                break
            time.sleep(pause)
            ports_again, again = again, []
            for port in ports_again:
                outcome = attempt(port)
                if isinstance(outcome, Reservation):
                    return outcome
                if outcome.may_pass:
                    again.append(port)
        return None

    def block(self, count: int) -> list[Reservation]:
        """*count* adjacent ports, lowest first."""
        request = self.request
        low, high = request.port_range
        starts_range = (low, high - count + 1)
        sticky_starts = self._sticky_ports(starts_range)
        sticky = {port for start in sticky_starts for port in range(start, start + count)}
        kernel_range = _platform.system.kernel_ephemeral_range()
        walk = candidates(starts_range, kernel_range, _random)
        seen: set[int] = set()
        for start in itertools.chain(sticky_starts, walk):
            if start in seen:
                continue
            seen.add(start)
            taken: list[Reservation] = []
            for port in range(start, start + count):
                outcome = self.attempt(port, explicit=False, sticky=port in sticky)
                if not isinstance(outcome, Reservation):
                    self.refused.add(port)
                    break
                taken.append(outcome)
            if len(taken) == count:
                self._remember(taken[0], start)
                return taken
            for reservation in taken:
                reservation.release()
        raise NoFreePortError(request.port_range, len(self.refused), count=count)

    def _remember(self, reservation: Reservation, port: int) -> Reservation:
        """Record *port* as the name's port for next time, and pass *reservation* on."""
        name = self.request.name
        if name is not None and self.registry.recorded_port(name) != port:
            self.registry.record_port(name, port)
        return reservation
