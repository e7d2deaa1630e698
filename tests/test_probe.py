"""Programs that are not localport users: the bind probe must see every one of them."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

import localport
from helpers import needs_ipv6
from localport import NoFreePortError, PortInUseError, reserve

if TYPE_CHECKING:
    from collections.abc import Iterator

guard_modes = pytest.mark.parametrize("guard", [True, False], ids=["guard", "lock-only"])


@pytest.fixture
def foreign() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for sock in sockets:
        sock.close()


def _hold(
    sockets: list[socket.socket],
    host: str,
    *,
    kind: socket.SocketKind = socket.SOCK_STREAM,
    v6only: bool = True,
    listen: bool = True,
    port: int = 0,
) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sockets.append(sock)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
    sock.bind((host, port))
    if listen and kind == socket.SOCK_STREAM:
        sock.listen()
    bound: int = sock.getsockname()[1]
    return bound


def _free_for_both() -> int:
    """A port free for TCP and UDP alike (a UDP bind(0) may pick a port TCP uses)."""
    with reserve(proto="both") as reservation:
        return reservation.port


def _assert_refused(port: int, *, guard: bool, host: str = "127.0.0.1", proto: str = "tcp") -> None:
    with pytest.raises(PortInUseError) as caught:
        reserve(port, host=host, proto=proto, guard=guard)  # type: ignore[arg-type]
    assert caught.value.port == port
    # A picked port is refused the same way: the only candidate is busy.
    with pytest.raises(NoFreePortError):
        reserve(host=host, proto=proto, guard=guard, port_range=(port, port))  # type: ignore[arg-type]
    assert not localport.is_free(port, host=host, proto=proto)  # type: ignore[arg-type]


@guard_modes
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_an_ipv4_listener_blocks_a_loopback_reservation(
    foreign: list[socket.socket], host: str, guard: bool
) -> None:
    _assert_refused(_hold(foreign, host), guard=guard)


@needs_ipv6
@guard_modes
def test_a_v6only_wildcard_listener_blocks_an_ipv4_reservation(
    foreign: list[socket.socket], guard: bool
) -> None:
    # 127.0.0.1 is free here, but a client of "localhost" may reach [::1], where this answers.
    _assert_refused(_hold(foreign, "::", v6only=True), guard=guard)


@needs_ipv6
@guard_modes
def test_an_ipv6_loopback_listener_blocks_an_ipv4_reservation(
    foreign: list[socket.socket], guard: bool
) -> None:
    _assert_refused(_hold(foreign, "::1"), guard=guard)


@needs_ipv6
@guard_modes
def test_an_ipv4_listener_blocks_an_ipv6_loopback_reservation(
    foreign: list[socket.socket], guard: bool
) -> None:
    _assert_refused(_hold(foreign, "127.0.0.1"), guard=guard, host="::1")


@needs_ipv6
@guard_modes
@pytest.mark.parametrize("holder", ["127.0.0.1", "::1"])
def test_any_loopback_listener_blocks_a_localhost_reservation(
    foreign: list[socket.socket], holder: str, guard: bool
) -> None:
    _assert_refused(_hold(foreign, holder), guard=guard, host="localhost")


@needs_ipv6
@guard_modes
def test_a_dual_stack_listener_blocks_every_host(foreign: list[socket.socket], guard: bool) -> None:
    port = _hold(foreign, "::", v6only=False)
    for host in ("127.0.0.1", "0.0.0.0", "::1", "::", "localhost"):
        _assert_refused(port, guard=guard, host=host)


@guard_modes
def test_a_bound_but_not_listening_socket_blocks_a_reservation(
    foreign: list[socket.socket], guard: bool
) -> None:
    _assert_refused(_hold(foreign, "127.0.0.1", listen=False), guard=guard)


@guard_modes
@pytest.mark.parametrize("proto", ["udp", "both"])
def test_a_udp_socket_blocks_udp_and_both(
    foreign: list[socket.socket], proto: str, guard: bool
) -> None:
    _assert_refused(_hold(foreign, "127.0.0.1", kind=socket.SOCK_DGRAM), guard=guard, proto=proto)


@guard_modes
def test_a_udp_socket_does_not_block_tcp(foreign: list[socket.socket], guard: bool) -> None:
    port = _hold(foreign, "127.0.0.1", kind=socket.SOCK_DGRAM, port=_free_for_both())
    with reserve(port, guard=guard) as reservation:
        assert reservation.port == port


@guard_modes
def test_a_tcp_listener_does_not_block_udp(foreign: list[socket.socket], guard: bool) -> None:
    port = _hold(foreign, "127.0.0.1", port=_free_for_both())
    with reserve(port, proto="udp", guard=guard) as reservation:
        assert reservation.port == port


@guard_modes
def test_a_walk_skips_busy_ports_and_takes_the_free_one(
    foreign: list[socket.socket], guard: bool
) -> None:
    base = 24930 if guard else 24950  # one range per variant: xdist may run both at once
    busy = []
    for port in range(base, base + 8):
        sock = socket.socket()
        foreign.append(sock)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            continue  # already busy on this machine: just as good
        sock.listen()
        busy.append(port)
    free = base + 8
    if not localport.is_free(free):
        pytest.skip(f"port {free} is busy on this machine")
    with reserve(port_range=(base, free), guard=guard) as reservation:
        assert reservation.port == free


def test_the_error_names_the_address_where_the_port_is_busy(foreign: list[socket.socket]) -> None:
    port = _hold(foreign, "127.0.0.1", kind=socket.SOCK_DGRAM)
    with pytest.raises(
        PortInUseError, match=r"by this process, bound \(not listening\) to 127\.0\.0\.1"
    ):
        reserve(port, proto="udp")


def test_is_free_probes_by_binding_where_the_kernel_cannot_be_asked(
    foreign: list[socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without netlink sock_diag (other systems, sandboxes) is_free() binds to find out."""
    from localport import _platform

    monkeypatch.setattr(_platform, "system", _platform.Portable())
    assert not localport.is_free(_hold(foreign, "127.0.0.1"))
    assert not localport.is_free(_hold(foreign, "127.0.0.1", listen=False))
    with reserve() as reservation:
        port = reservation.port
    assert localport.is_free(port)
