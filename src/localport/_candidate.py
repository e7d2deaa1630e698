"""One candidate port: the protocol that reserves it or says why not.

:meth:`Candidate.attempt` runs these steps, cheapest first:

1. If the port's lock file exists, its lock is tried at once: a port another localport process
   holds is refused without being touched (a momentary bind on a reserved port's address
   would make its owner's own ``bind()`` fail).
2. If it does not (the port was never used in this directory), a plain bind where the guard
   would sit, then at the consumer's own address: a port another program holds costs a few
   microseconds to reject and leaves no file behind. The guard spot comes first: a guarded
   reservation of another lock directory is refused there, before its consumer's address is
   touched. Then the file is made and locked. A plan without a guard spot (``host="*"``,
   ``guard=False``) makes and locks the file first: its probe could otherwise land on a
   reservation made a moment ago.
3. A lease left by an earlier holder is honoured.
4. The guard socket is bound, *then* every address a client may reach is probed: probing
   first leaves a gap in which an outgoing ``connect()`` can take the port (seen in testing).
   The guard binds plainly before it allows sharing, so its own bind probes its spot.
5. The record (pid, process start time, name, protocol, host, times) is written through the
   locked descriptor.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import os
import socket
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
    check_reuse_address,
    check_scope,
    normalize_host,
    protos_of,
)
from ._errors import AddressNotAvailableError, LockDirError
from ._explain import (
    COMPROMISED_SENTENCE,
    RESERVATION_BEING_MADE,
    busy_address,
    reservation_sentence,
)
from ._listing import describe
from ._probe import ProbeResult, bind_guard, probe
from ._ranges import configured_range
from ._registry import Registry, lease_live
from ._reservation import LIVE, Reservation

if TYPE_CHECKING:
    from ._arguments import Proto
    from ._lockfile import LockedPort


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
    reuse_address: bool = False
    #: The directory a sticky name belongs to (``None``: the name is global).
    scope: str | None = None

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
        reuse_address: object = False,
        scope: object = None,
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
            reuse_address=check_reuse_address(reuse_address),
            scope=check_scope(scope),
        )

    @property
    def plans(self) -> tuple[tuple[socket.SocketKind, Plan], ...]:
        kinds = (SOCKET_KINDS[proto] for proto in protos_of(self.proto))
        return tuple((kind, plan_for(self.host, kind)) for kind in kinds)


class Reason(enum.Enum):
    """Why a candidate was not taken."""

    #: A live reservation or lease holds it: skip it for good.
    RESERVED = "reserved"
    #: Another process holds its lock: a reservation, or one being made that may still fail
    #: and let go (told apart only at the end of a walk, by looking again).
    LOCKED = "locked"
    #: Something is bound where we probed.
    BUSY = "busy"
    #: A live reservation claims it although its lock file was deleted or replaced.
    COMPROMISED = "compromised"


@dataclass(frozen=True)
class Refusal:
    """A candidate not taken, and where it was found busy (for the error message)."""

    reason: Reason
    endpoint: Endpoint | None = None
    kind: socket.SocketKind | None = None

    @property
    def may_pass(self) -> bool:
        """Whether the reason can pass in microseconds, so another look is worth it."""
        return self.reason in (Reason.LOCKED, Reason.BUSY)


#: Errors of one lock file that spoil that port and not the directory: a planted symlink
#: (ELOOP), another user's file (EACCES, EPERM), a full disk or quota when the port's file
#: would be made (ENOSPC, EDQUOT) while other ports' files still serve.
_SPOILS_ONE_PORT = frozenset(
    {
        errno.ELOOP,
        errno.EACCES,
        errno.EPERM,
        errno.ENOSPC,
        getattr(errno, "EDQUOT", errno.ENOSPC),
        errno.ENOENT,  # a lock file made and gone again: someone else's doing
    }
)
_RESERVED = Refusal(Reason.RESERVED)
_LOCKED = Refusal(Reason.LOCKED)
_COMPROMISED = Refusal(Reason.COMPROMISED)
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


def _lenient(endpoint: Endpoint, kind: socket.SocketKind) -> Endpoint:
    """*endpoint* probed with ``SO_REUSEADDR``, for TCP only: TIME_WAIT is TCP's, and two UDP
    sockets that both set ``SO_REUSEADDR`` share an address, so a lenient UDP probe would not
    see a live UDP server that sets it."""
    if kind != socket.SOCK_STREAM:
        return endpoint
    return dataclasses.replace(endpoint, reuse=True)


class Candidate:
    """Tries ports one at a time for one request against one lock directory."""

    def __init__(self, request: Request, registry: Registry) -> None:
        self.request = request
        self.registry = registry
        self.plans = request.plans
        # Without a guard spot to probe first, lock (making the file) before any probe.
        self.probe_before_lock = all(plan.guards for _, plan in self.plans)

    def attempt(self, port: int, *, explicit: bool, sticky: bool) -> Outcome:
        """Try to reserve *port* (the steps in this module's docstring).

        A *sticky* port (a name's own), and every port with ``reuse_address``, is probed
        with ``SO_REUSEADDR`` at the consumer's address: a restarted dev server finds its old
        port in TIME_WAIT, which a plain probe reports busy, so the name would move on every
        restart. That probe still fails on any listener and any socket bound without it, and
        servers that want sticky ports set it.
        """
        sticky = sticky or self.request.reuse_address
        try:
            taken = self._lock(port, explicit=explicit, sticky=sticky)
        except OSError as error:
            # A planted symlink (ELOOP) or another user's file in a shared directory spoils
            # this one port; anything else spoils the directory.
            if explicit or error.errno not in _SPOILS_ONE_PORT:
                path = self.registry.lock_path(port)
                reason = f"its lock file {path} cannot be used ({error})"
                raise LockDirError(self.registry.path, reason) from error
            return _RESERVED
        if isinstance(taken, Refusal):
            return taken
        locked = taken
        claim = None
        outcome: Outcome = _RESERVED
        try:
            claim = self.registry.claim(port)
            outcome = self._verify(port, locked, claim, sticky=sticky)
            for pause in RETRY.explicit_pauses if explicit else ():
                if not (isinstance(outcome, Refusal) and outcome.reason is Reason.BUSY):
                    break
                time.sleep(pause)
                outcome = self._verify(port, locked, claim, sticky=sticky)
        except FileExistsError:
            # We hold the lock, yet a live reservation claims the port: its lock file was
            # deleted or replaced under it. Granting the port would make two holders.
            outcome = _COMPROMISED
        except BaseException:
            outcome = _RESERVED
            raise
        finally:
            if isinstance(outcome, Refusal):
                if claim is not None:
                    claim.close()
                locked.release()
        return outcome

    def _lock(self, port: int, *, explicit: bool, sticky: bool) -> LockedPort | Refusal:
        """The port's lock, or why not (steps 1 to 3).

        A port whose lock file exists is locked first: if another process holds it, nothing
        about the port is touched. A port never used in this directory has no lock file and
        no holder here, so its addresses are probed before a file is made for it: a port some
        other program holds costs a few microseconds and leaves nothing behind.
        """
        registry = self.registry
        fd = registry.open_existing(port)
        if fd is None and not explicit and self.probe_before_lock:
            for kind, plan in self.plans:
                cheap = _lenient(plan.cheap, kind) if sticky else plan.cheap
                for endpoint in (*plan.guards[:1], cheap):
                    if probe(endpoint, kind, port) is ProbeResult.BUSY:
                        return Refusal(Reason.BUSY, endpoint, kind)
        locked = registry.lock(port, fd)
        return _LOCKED if locked is None else locked

    def _verify(
        self, port: int, locked: LockedPort, claim: socket.socket | None, *, sticky: bool
    ) -> Outcome:
        """With the lock held: honour a lease, bind the guards, probe, write the record.

        The guards bound here belong to the returned reservation, or are closed before a
        refusal is returned.
        """
        now = time.time()
        previous = Registry.read_record_fd(locked.fd)
        if previous is not None and lease_live(previous, now):
            return _RESERVED
        guards: list[socket.socket] = []
        try:
            refusal = self._guard_and_probe(port, guards, sticky=sticky)
            if refusal is not None:
                for guard in guards:
                    guard.close()
                return refusal
            try:
                return self._record(port, locked, tuple(guards), claim, now)
            except OSError as error:
                if error.errno not in _SPOILS_ONE_PORT:
                    raise
                for guard in guards:  # a full disk: this port's record cannot be written
                    guard.close()
                return _RESERVED
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
                result, guard, spot = bind_guard(plan, kind, port)
                if result is ProbeResult.BUSY:
                    return Refusal(Reason.BUSY, spot, kind)
                if guard is not None:
                    guards.append(guard)
                    guard_at = spot
            for index, endpoint in enumerate(plan.probes):
                if guard_at is not None and endpoint.same_place(guard_at):
                    continue  # the guard's own bind already tested this address
                result = probe(_lenient(endpoint, kind) if sticky else endpoint, kind, port)
                if result is ProbeResult.BUSY:
                    return Refusal(Reason.BUSY, endpoint, kind)
                if result is ProbeResult.ABSENT and index == 0:
                    raise AddressNotAvailableError(request.host)
        return None

    def _record(
        self,
        port: int,
        locked: LockedPort,
        guards: tuple[socket.socket, ...],
        claim: socket.socket | None,
        now: float,
    ) -> Reservation:
        request = self.request
        # Guarded only when every protocol is: a wildcard UDP consumer gets no guard.
        record = new_record(request, port, guarded=len(guards) == len(self.plans), now=now)
        Registry.write_record(locked.fd, record)
        return _live_reservation(request, port, locked, guards, claim, record)


def _live_reservation(  # noqa: PLR0917 - one call site, the pieces of one reservation
    request: Request,
    port: int,
    locked: LockedPort,
    guards: tuple[socket.socket, ...],
    claim: socket.socket | None,
    record: dict[str, Any],
) -> Reservation:
    """The reservation whose record was just written, added to the live set."""
    reservation = Reservation(
        port=port,
        host=request.host,
        proto=request.proto,
        name=request.name,
        locked=locked,
        guards=guards,
        record=record,
        claim=claim,
    )
    LIVE.add(reservation)
    return reservation


def new_record(request: Request, port: int, *, guarded: bool, now: float) -> dict[str, Any]:
    """The record a new reservation writes into its lock file: a description for readers."""
    return {
        "v": 1,
        "pid": os.getpid(),
        "process_started": _platform.system.own_start_time(),
        "port": port,
        "proto": request.proto,
        "host": request.host,
        "name": request.name,
        "scope": request.scope,
        "created": now,
        "guarded": guarded,
        "released": None,
        "lease_until": None,
    }


def describe_refusal(registry: Registry, port: int, refusal: Refusal) -> str:
    """What a refusal itself says, for when nobody can be named."""
    if refusal.reason is Reason.COMPROMISED:
        return COMPROMISED_SENTENCE
    if refusal.endpoint is not None and refusal.kind is not None:
        return busy_address(refusal.endpoint.describe(), PROTO_OF_KIND[refusal.kind])
    record = registry.read_record(port) or {}
    if record.get("released") is not None and not lease_live(record, time.time()):
        # The record describes an earlier holder; a new one has the lock and has not
        # written its own record yet.
        return RESERVATION_BEING_MADE
    info = describe(registry, port)
    if info is None:
        return "(reserved by localport: another process)"
    return reservation_sentence(info)
