"""Picking a port: the explicit one, a name's sticky ports, then a walk of the range.

Each candidate is tried by :class:`localport._candidate.Candidate`; this module decides the
order, gives refusals that may pass a second look (:data:`localport._candidate.RETRY`), and
explains an explicit port that is busy.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import time
from typing import TYPE_CHECKING

from . import _platform
from ._arguments import protos_of
from ._candidate import RETRY, Candidate, Outcome, Refusal, describe_refusal
from ._errors import NoFreePortError, PortInUseError
from ._explain import explain
from ._ranges import candidates
from ._registry import sticky_key
from ._reservation import Reservation

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ._arguments import SocketProto
    from ._candidate import Request
    from ._holders import Holder
    from ._registry import Registry

# Where a walk starts. A private generator, not the module's: a test suite that seeds
# ``random`` (pytest-randomly does, the same seed in every xdist worker) would make every
# process start its walks at the same ports. Seeded from the OS, and again in a forked child,
# which would otherwise repeat its parent's walks. Not SystemRandom: its ``randrange`` asks the
# kernel for one byte at a time, nine system calls a pick.
_random = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_random.seed)


def sticky_port(key: str, port_range: tuple[int, int]) -> int:
    """The port a name (its :func:`~localport._registry.sticky_key`) hashes to: the same on
    every run and every machine, and for a scoped name, different in every project directory."""
    low, high = port_range
    import hashlib  # sticky names only: 2 ms of import a plain reserve() never needs

    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low + 1)


class Picker:
    """One ``reserve()`` or ``reserve_many()`` call against one lock directory."""

    def __init__(self, request: Request, registry: Registry) -> None:
        self.request = request
        self.registry = registry
        self.candidate = Candidate(request, registry)
        #: Ports refused during this call, for NoFreePortError.
        self.refused: set[int] = set()

    def attempt(self, port: int, *, explicit: bool, sticky: bool) -> Outcome:
        return self.candidate.attempt(port, explicit=explicit, sticky=sticky)

    def _port_in_use(self, port: int, refusal: Refusal) -> PortInUseError:
        """The error for a busy explicit port, naming who holds it where that can be learned."""
        holders: list[Holder] = []
        detail = describe_refusal(self.registry, port, refusal)
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

    def _sticky_ports(self, port_range: tuple[int, int]) -> list[int]:
        """A name's own ports, to try first: the last one recorded, then its hash."""
        name, scope = self.request.name, self.request.scope
        if name is None:
            return []
        hashed = sticky_port(sticky_key(name, scope), port_range)
        return _in_range(port_range, self._recorded, hashed)

    @functools.cached_property
    def _recorded(self) -> int | None:
        """The name's recorded port, read once per call."""
        name = self.request.name
        return None if name is None else self.registry.recorded_port(name, self.request.scope)

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
            raise self._exhausted()
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
            try:
                for port in range(start, start + count):
                    outcome = self.attempt(port, explicit=False, sticky=port in sticky)
                    if not isinstance(outcome, Reservation):
                        self.refused.add(port)
                        break
                    taken.append(outcome)
            except BaseException:  # all or none, also when an attempt raises
                for reservation in taken:
                    reservation.release()
                raise
            if len(taken) == count:
                self._remember(taken[0], start)
                return taken
            for reservation in taken:
                reservation.release()
        raise self._exhausted(count)

    def _exhausted(self, count: int = 1) -> NoFreePortError:
        """The error for a range with no (block of) free port(s), counting the refused ports
        that only TIME_WAIT leftovers hold (free for a server that sets SO_REUSEADDR)."""
        request = self.request
        time_wait = 0
        if not request.reuse_address:
            protos = protos_of(request.proto)
            time_wait = sum(1 for port in self.refused if _only_time_wait(port, protos))
        return NoFreePortError(
            request.port_range, len(self.refused), count=count, time_wait=time_wait
        )

    def _remember(self, reservation: Reservation, port: int) -> Reservation:
        """Record *port* as the name's port for next time, and pass *reservation* on."""
        name = self.request.name
        if name is None:
            return reservation
        if self._recorded != port:
            self.registry.record_port(name, port, scope=self.request.scope, host=self.request.host)
        return reservation


def _in_range(port_range: tuple[int, int], *ports: int | None) -> list[int]:
    """*ports* that are not ``None`` and lie in *port_range*, once each, in order."""
    low, high = port_range
    return list(dict.fromkeys(port for port in ports if port is not None and low <= port <= high))


def _only_time_wait(port: int, protos: Sequence[SocketProto]) -> bool:
    """Whether the kernel says every socket on *port* is a TIME_WAIT leftover (``False`` where
    it cannot say)."""
    states: list[str] = []
    for proto in protos:
        found = _platform.system.bound_sockets(port, proto)
        if found is None:
            return False
        states.extend(item.state for item in found)
    return bool(states) and all(state == "TIME_WAIT" for state in states)
