"""Ports free on every address, and TIME_WAIT leftovers for servers that set SO_REUSEADDR."""

from __future__ import annotations

import pickle
import socket
from typing import Literal

import pytest

import localport
from helpers import has_ipv6, leave_time_wait, needs_ipv6, time_wait_table_full

# Ranges of their own (see the plan in conftest.py): below the kernel's ephemeral range.
TIME_WAIT_RANGE = (29200, 29203)
ANY_RANGE = (29210, 29219)


@pytest.mark.parametrize(
    ("kind", "proto"), [(socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")], ids=["tcp", "udp"]
)
def test_a_port_for_every_address_binds_on_every_address(
    kind: socket.SocketKind, proto: Literal["tcp", "udp"]
) -> None:
    with localport.reserve(host="*", proto=proto, port_range=ANY_RANGE) as reservation:
        assert reservation.host == "*"
        assert not reservation.guarded  # a guard would collide with a wildcard bind
        assert reservation.url() == f"http://127.0.0.1:{reservation.port}"
        # A plain bind (no SO_REUSEADDR) of each wildcard, one after the other...
        with socket.socket(socket.AF_INET, kind) as v4:
            v4.bind(("0.0.0.0", reservation.port))
        if has_ipv6():
            with socket.socket(socket.AF_INET6, kind) as v6:
                v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual-stack
                v6.bind(("::", reservation.port))
        # ...and the reservation's own address.
        with socket.socket(socket.AF_INET, kind) as server:
            server.bind(reservation.address)


@needs_ipv6
def test_a_port_for_every_address_is_not_one_an_ipv6_listener_holds() -> None:
    low, _ = ANY_RANGE
    with socket.socket(socket.AF_INET6) as v6:
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.bind(("::1", low))
        v6.listen()
        for _ in range(5):  # whichever port the walk starts at
            with localport.reserve(host="*", port_range=(low, low + 1)) as reservation:
                assert reservation.port == low + 1


def test_a_range_held_only_by_time_wait_says_so_and_reuse_address_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if time_wait_table_full():
        pytest.skip("the kernel's TIME_WAIT table is full: new entries are dropped")
    low, high = TIME_WAIT_RANGE
    for port in range(low, high + 1):
        leave_time_wait(port)

    with pytest.raises(localport.NoFreePortError) as info:
        localport.reserve(port_range=TIME_WAIT_RANGE)
    error = info.value
    assert error.busy == high - low + 1
    assert error.time_wait == high - low + 1
    assert "TIME_WAIT" in str(error)
    assert "reuse_address=True" in str(error)
    assert "LOCALPORT_REUSEADDR=1" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.time_wait == error.time_wait
    assert str(copy) == str(error)

    with localport.reserve(port_range=TIME_WAIT_RANGE, reuse_address=True) as reservation:
        assert low <= reservation.port <= high
        with reservation.listen():  # a server that sets SO_REUSEADDR binds it
            pass

    monkeypatch.setenv("LOCALPORT_REUSEADDR", "1")
    with localport.reserve(port_range=TIME_WAIT_RANGE) as from_the_environment:
        assert low <= from_the_environment.port <= high


def test_a_listener_is_not_taken_for_time_wait() -> None:
    low, _ = ANY_RANGE
    with socket.create_server(("127.0.0.1", low)) as server:
        assert server.getsockname()[1] == low
        with pytest.raises(localport.NoFreePortError) as info:
            localport.reserve(port_range=(low, low), reuse_address=True)
    assert info.value.time_wait == 0
    assert "TIME_WAIT" not in str(info.value)


@pytest.mark.parametrize("value", ["maybe", "2"])
def test_a_bad_localport_reuseaddr_is_named(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LOCALPORT_REUSEADDR", value)
    with pytest.raises(ValueError, match="LOCALPORT_REUSEADDR"):
        localport.reserve()
    assert localport.reservations() == []


def test_reuse_address_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="reuse_address must be True or False"):
        localport.reserve(reuse_address=1)  # type: ignore[arg-type]
