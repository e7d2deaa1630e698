"""A held port: :class:`Reservation`, :class:`ReservationGroup`, and the live set that keeps
every reservation of this process referenced until it is released or the process exits."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any, overload

# Proto at run time, not only for type checkers: the API reference resolves it in signatures.
from ._arguments import Proto, check_lease
from ._ending import EndsOnExit
from ._errors import LocalportError
from ._handoff import ReservedAddress
from ._listing import mark_lease
from ._registry import Registry

if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator, Sequence

    from ._lockfile import LockedPort


class _LiveSet:
    """Every reservation of this process that is not released yet.

    Dropping the last reference to a held lock releases it. Users will write
    ``port = reserve().port``, so every live reservation is referenced from here until
    release() or interpreter exit; at exit, each is released. A forked child gets a copy of
    this set, but the reservations are the parent's: the child forgets them, closing only
    its own copies of their descriptors (a child's unlock would free the parent's lock).
    """

    def __init__(self) -> None:
        self._reservations: set[Reservation] = set()
        self._mutex = threading.Lock()

    def add(self, reservation: Reservation) -> None:
        with self._mutex:
            self._reservations.add(reservation)

    def discard(self, reservation: Reservation) -> None:
        with self._mutex:
            self._reservations.discard(reservation)

    def holding(self, port: int) -> Reservation | None:
        """This process's live reservation of *port*, if any."""
        with self._mutex:
            return next((r for r in self._reservations if r.port == port), None)

    def release_all(self) -> None:
        with self._mutex:
            pending = list(self._reservations)
        for reservation in pending:
            with contextlib.suppress(Exception):
                reservation.release()

    def forget_after_fork(self) -> None:
        # A mutex held by another thread at fork time would never be released in the child.
        self._mutex = threading.Lock()
        for reservation in list(self._reservations):
            reservation._forget_after_fork()  # noqa: SLF001 - the set owns its reservations
        self._reservations.clear()


LIVE = _LiveSet()
atexit.register(LIVE.release_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=LIVE.forget_after_fork)


class _ReleasedOnExit(EndsOnExit):
    """Ended by ``release()``."""

    __slots__ = ()

    def release(self) -> None:
        raise NotImplementedError

    def _end(self) -> None:
        self.release()


class Reservation(_ReleasedOnExit, ReservedAddress):
    """A port held for this process until :meth:`release` (or exit).

    While it lives, no other process using the same lock directory gets this port, and (with
    the guard on) the kernel will not hand it out as the source port of an outgoing connection.
    Bind your server inside the ``with`` block, or take the ready socket from :meth:`socket` /
    :meth:`listen`. Garbage collection does not release it: ``port = reserve().port`` keeps the
    port reserved until the process exits.
    """

    __slots__ = (
        "__weakref__",
        "_claim",
        "_created",
        "_guards",
        "_locked",
        "_mutex",
        "_owner_pid",
        "_record",
        "_released",
    )

    def __init__(
        self,
        *,
        port: int,
        host: str,
        proto: Proto,
        name: str | None,
        locked: LockedPort,
        guards: tuple[socket.socket, ...],
        record: dict[str, Any],
        claim: socket.socket | None = None,
    ) -> None:
        super().__init__(port=port, host=host, proto=proto, name=name)
        self._locked: LockedPort | None = locked
        self._guards = guards
        self._claim = claim
        self._record = record
        self._created = float(record["created"])
        self._owner_pid = os.getpid()
        self._released = False
        self._mutex = threading.Lock()

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
    def compromised(self) -> bool:
        """Whether the lock file was unlinked or replaced while held (checked on each read).

        Then the file no longer keeps other processes off the port: someone (another user of
        a shared lock directory, a clean-up script) deleted or renamed it. On Linux the
        reservation's claim still makes other localport reservers of this directory refuse
        the port; elsewhere one of them may be granted it. Release and reserve again.
        ``False`` once released.

        .. versionadded:: 0.2.0
        """
        locked = self._locked
        return locked is not None and not self._released and not locked.intact()

    @property
    def guarded(self) -> bool:
        """Whether a guard socket keeps outgoing connections off the port, for every protocol.

        False with ``guard=False``, where no guard address exists (no IPv6 for some hosts),
        and for UDP on a wildcard host, where every guard would collide with the server.
        """
        return bool(self._record.get("guarded")) and not self._released

    def release(self, *, lease: float = 0.0) -> None:
        """Give the port back. Safe to call more than once, from any thread.

        :param lease: keep other localport users off the port for this many seconds after
            release, for handing the number to a process that will bind it a little later.
            The guard socket is closed either way, so that process can bind.

        In a forked child this does nothing: the reservation belongs to the parent.
        """
        lease = check_lease(lease)
        if os.getpid() != self._owner_pid:
            return  # before the mutex, which a fork may have copied while held
        with self._mutex:
            if self._released:
                return
            self._released = True
            locked, self._locked = self._locked, None
            guards, self._guards = self._guards, ()
            claim, self._claim = self._claim, None
        for guard in guards:
            guard.close()
        if claim is not None:
            claim.close()  # before the unlock: a claim never outlives its lock
        if locked is not None:
            now = time.time()
            until = now + lease if lease else None
            record = dict(self._record, released=now, lease_until=until)
            with contextlib.suppress(OSError):
                Registry.write_record(locked.fd, record)
                if until is not None:
                    mark_lease(locked.fd, until)
            locked.release()
        LIVE.discard(self)

    def _check_usable(self) -> None:
        if self._released:
            msg = f"the reservation of port {self._port} was released; reserve again"
            raise LocalportError(msg)

    def _forget_after_fork(self) -> None:
        # Closing the child's copies of the guard sockets leaves the parent's bound; the lock
        # file's descriptor is closed by localport._lockfile's own fork hook.
        for guard in self._guards:
            guard.close()
        self._guards = ()
        if self._claim is not None:
            self._claim.close()
            self._claim = None
        self._locked = None

    def __repr__(self) -> str:
        name = f" name={self._name!r}" if self._name is not None else ""
        state = "released" if self._released else "held"
        if self.compromised:
            state = "held, compromised"
        return (
            f"<Reservation port={self._port} proto={self._proto!r} host={self._host!r}{name}"
            f" {state}>"
        )


class ReservationGroup(_ReleasedOnExit):
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

    def __repr__(self) -> str:
        return f"<ReservationGroup ports={list(self.ports)}>"
