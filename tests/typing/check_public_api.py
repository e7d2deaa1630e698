"""Uses only localport's public API, for mypy (strict) to check the types users see.

Nothing runs at import. ``tests/test_public_api.py`` calls :func:`use_the_public_api` so the
code below is also known to work, not only to type-check. :func:`rejected_by_the_type_checker`
is never called: each line there must be an error for mypy, which ``warn_unused_ignores``
(part of strict) enforces through its ``type: ignore`` comment.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Literal

import localport
from localport import (
    Container,
    Holder,
    LocalportError,
    LockDirError,
    NoFreePortError,
    PortInUseError,
    Reservation,
    ReservationGroup,
    ReservationInfo,
)

if TYPE_CHECKING:
    # typeshed ships typing_extensions to mypy; at run time it may be absent (and
    # typing.assert_type needs 3.11), so there the check is an identity function.
    from typing_extensions import assert_type
else:

    def assert_type(value, _type):
        return value


def use_the_public_api() -> None:
    version = assert_type(localport.__version__, str)
    assert version
    use_a_reservation()
    use_the_options()
    use_the_listing()
    use_a_group()
    use_the_errors()


def use_a_reservation() -> None:
    with localport.reserve() as reservation:
        assert_type(reservation, Reservation)
        port: int = assert_type(reservation.port, int)
        assert_type(reservation.host, str)
        assert_type(reservation.proto, Literal["tcp", "udp", "both"])
        assert_type(reservation.name, str | None)
        assert_type(reservation.address, tuple[str, int])
        assert_type(reservation.created, float)
        assert_type(reservation.lock_path, str | None)
        assert_type(reservation.released, bool)
        assert_type(reservation.guarded, bool)
        assert_type(reservation.url(), str)
        assert_type(reservation.url("ws"), str)
        with reservation.listen(backlog=16) as server:
            assert_type(server, socket.socket)
        with reservation.socket() as bound:
            assert_type(bound, socket.socket)
        assert_type(localport.is_free(port), bool)


def use_the_options() -> None:
    direct: Reservation = localport.reserve(
        None,
        name="check-public-api",
        host="127.0.0.1",
        proto="both",
        port_range=(49152, 65535),
        fallback=False,
        guard=True,
        lock_dir=None,
    )
    with direct.socket("udp") as datagram:
        assert_type(datagram, socket.socket)
    direct.release(lease=0.0)
    direct.release()


def use_the_listing() -> None:
    listing = assert_type(localport.reservations(), list[ReservationInfo])
    for info in listing:
        assert_type(info.port, int)
        assert_type(info.proto, str)
        assert_type(info.host, str)
        assert_type(info.name, str | None)
        assert_type(info.pid, int)
        assert_type(info.process_started, float | None)
        assert_type(info.created, float)
        assert_type(info.lease_until, float | None)
        assert_type(info.guarded, bool)
        assert_type(info.lock_path, str)


def use_a_group() -> None:
    with localport.reserve_many(2, consecutive=True, port_range="49152-65535") as group:
        assert_type(group, ReservationGroup)
        assert_type(group.ports, tuple[int, ...])
        assert_type(group[0], Reservation)
        assert_type(group[0:1], tuple[Reservation, ...])
        assert_type(len(group), int)
        assert_type(group.released, bool)
        members: list[Reservation] = list(group)
        assert len(members) == 2
    group.release()


def use_the_errors() -> None:
    caught: LocalportError | None = None
    with localport.reserve() as held:
        try:
            localport.reserve(held.port)
        except PortInUseError as in_use:
            caught = in_use
    assert caught is not None, "a port this process holds was reserved twice"
    assert explain(caught)


def explain(error: LocalportError) -> str:
    """What a caller might do with each error's attributes."""
    if isinstance(error, PortInUseError):
        assert_type(error.port, int)
        assert_type(error.holders, tuple[Holder, ...])
        for holder in error.holders:
            container = assert_type(holder.container, Container | None)
            if container is not None:
                return f"{error.port}: {container.runtime} {container.handle}"
        code: int | None = error.errno
        return f"{error.port}: {code}"
    if isinstance(error, NoFreePortError):
        low, high = assert_type(error.port_range, tuple[int, int])
        return f"{low}-{high}: {assert_type(error.busy, int)} busy"
    if isinstance(error, LockDirError):
        return assert_type(error.lock_dir, str) + assert_type(error.reason, str)
    return str(error)


def rejected_by_the_type_checker() -> None:
    localport.reserve("80")  # type: ignore[arg-type]
    localport.reserve(proto="sctp")  # type: ignore[arg-type]
    localport.reserve(80, "web")  # type: ignore[call-arg]
    localport.reserve_many(2, host=None)  # type: ignore[arg-type]
    localport.is_free(None)  # type: ignore[arg-type]
    reservation = localport.reserve()
    reservation.port = 80  # type: ignore[misc]
