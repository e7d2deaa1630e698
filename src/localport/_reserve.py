"""The public functions of the core: ``reserve()``, ``reserve_many()``, ``reservations()`` and
``is_free()``. The work is done in :mod:`localport._picker` and :mod:`localport._reservation`."""

from __future__ import annotations

import dataclasses

# At run time: the API reference evaluates os.PathLike in the signatures.
import os  # noqa: TC003
import time

# Proto (and SocketProto) at run time, not only for type checkers: the API reference
# resolves them in signatures.
from ._arguments import (
    Proto,
    check_bool,
    check_count,
    check_lock_dir,
    check_port,
    protos_of,
)
from ._candidate import Request
from ._listing import is_reserved, live
from ._picker import Picker
from ._probe import ProbeResult, probe
from ._registry import Registry, ReservationInfo
from ._reservation import Reservation, ReservationGroup


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
    reuse_address: bool | None = None,
    scope: str | os.PathLike[str] | None = None,
) -> Reservation:
    """Reserve a free local port for this process.

    :param port: this exact port (1-65535, inside the range or not); ``None`` picks one.
    :param name: a sticky name: the same name gets the same port on the next run while it is
        free, so a dev server's URL stays put across restarts.
    :param host: the address your server will bind: ``"127.0.0.1"``, ``"::1"``,
        ``"0.0.0.0"``, ``"::"``, ``"localhost"`` or another local IP address. Every address a
        client of that server may reach is checked (a ``[::1]`` listener blocks a
        ``127.0.0.1`` reservation, since ``localhost`` may resolve to either). ``"*"`` asks
        for a port free on every address of both families, for a server that may bind any
        of them (what most tests mean by "a free port"); such a reservation keeps no guard
        socket, which would collide with a wildcard bind, and prefers ports outside the
        kernel's ephemeral range, which outgoing connections never take.
    :param proto: ``"tcp"``, ``"udp"`` or ``"both"``.
    :param port_range: ``(low, high)`` inclusive, or ``"low-high"``, to pick from; default
        the ``LOCALPORT_RANGE`` environment variable, else 49152-65535.
    :param fallback: with *port*: take another free port instead of raising when it is busy.
    :param guard: keep a guard socket on the port so outgoing connections cannot take it; turn
        off only for a server that cannot bind beside it (see the docs on guards).
    :param lock_dir: the lock directory shared with cooperating processes; default
        ``LOCALPORT_DIR``, else a private per-user directory.
    :param reuse_address: count ports that only TIME_WAIT leftovers of closed connections
        hold as free: for a server that sets ``SO_REUSEADDR`` (uvicorn, gunicorn, Node, Go,
        ``http.server`` and most others do), which binds such a port at once. Default: the
        ``LOCALPORT_REUSEADDR`` environment variable (``1`` is on), else off.

        .. versionadded:: 0.2.0
    :param scope: the project directory *name* belongs to (see :func:`project_directory`):
        each directory has its own ports for the same name, so two checkouts of a project
        never move each other's. ``None`` (the default): the name is shared by the whole lock
        directory.

        .. versionadded:: 0.2.0
    :returns: a :class:`Reservation`, held until released or the process exits.
    :raises PortInUseError: *port* is taken (and *fallback* is false).
    :raises NoFreePortError: every port of the range is taken.
    :raises AddressNotAvailableError: *host* is not an address of this machine.
    :raises LockDirError: the lock directory is unsafe or unusable.
    :raises TypeError, ValueError: bad arguments, before anything is touched.
    """
    request = Request.check(
        port=port,
        name=name,
        host=host,
        proto=proto,
        port_range=port_range,
        fallback=fallback,
        guard=guard,
        lock_dir=lock_dir,
        reuse_address=reuse_address,
        scope=scope,
    )
    return Picker(request, Registry.open(request.lock_dir)).one()


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
    reuse_address: bool | None = None,
    scope: str | os.PathLike[str] | None = None,
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
    count = check_count(count)
    check_bool(consecutive, "consecutive")
    request = Request.check(
        port=None,
        name=name,
        host=host,
        proto=proto,
        port_range=port_range,
        fallback=False,
        guard=guard,
        lock_dir=lock_dir,
        reuse_address=reuse_address,
        scope=scope,
    )
    low, high = request.port_range
    if count > high - low + 1:
        msg = f"count {count} is more than the {high - low + 1} ports of port_range {low}-{high}"
        raise ValueError(msg)
    registry = Registry.open(request.lock_dir)
    if consecutive:
        return ReservationGroup(Picker(request, registry).block(count))
    taken: list[Reservation] = []
    try:
        for index in range(count):
            member_name = None if request.name is None else f"{request.name}[{index}]"
            member = dataclasses.replace(request, name=member_name)
            taken.append(Picker(member, registry).one())
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
    return live(Registry.open(check_lock_dir(lock_dir), write=False))


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
    checked = check_port(port)  # None means "pick one" to reserve(), but not here
    request = Request.check(
        port=checked,
        name=None,
        host=host,
        proto=proto,
        port_range=None,
        fallback=False,
        guard=False,
        lock_dir=lock_dir,
    )
    registry = Registry.open(request.lock_dir, write=False)
    if is_reserved(registry, checked, time.time()):
        return False
    # Ask the kernel instead of binding where it can say: a probe bind, however short, could
    # make a concurrent reserve() of this port fail. (Imported here: the holder search and
    # its container runtimes cost a reserve() milliseconds of imports it never uses.)
    from ._holders import bound_in_the_way

    in_the_way = bound_in_the_way(checked, request.host, protos_of(request.proto))
    if in_the_way is not None:
        return not in_the_way
    for kind, plan in request.plans:
        for endpoint in (plan.cheap, *plan.probes):
            if probe(endpoint, kind, checked) is ProbeResult.BUSY:
                return False
    return True
