"""reserve() and friends, as a user sees them."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

import localport
from helpers import needs_ipv6, time_wait_table_full
from localport import NoFreePortError, PortInUseError, reserve, reserve_many
from localport._picker import sticky_port

if TYPE_CHECKING:
    from pathlib import Path


def _listener(
    host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM
) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.bind((host, 0))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


def test_a_picked_port_is_in_the_default_range_and_can_be_bound() -> None:
    with reserve() as reservation:
        assert 49152 <= reservation.port <= 65535
        with socket.socket() as server:
            server.bind(reservation.address)  # plain bind, no SO_REUSEADDR
            server.listen()
            with socket.create_connection(("127.0.0.1", reservation.port), timeout=5):
                pass


def test_the_reservation_describes_itself() -> None:
    reservation = reserve(name="api", host="::1" if _ipv6() else "127.0.0.1")
    try:
        assert reservation.name == "api"
        assert reservation.proto == "tcp"
        assert reservation.address == (reservation.host, reservation.port)
        assert reservation.url().endswith(f":{reservation.port}")
        assert reservation.url("ws").startswith("ws://")
        assert f"port={reservation.port}" in repr(reservation)
        assert repr(reservation).endswith(" held>")
        assert reservation.lock_path is not None
        assert os.path.exists(reservation.lock_path)
    finally:
        reservation.release()
    assert reservation.released
    assert reservation.lock_path is None


@pytest.mark.parametrize(
    ("host", "url_host"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("localhost", "localhost")],
)
def test_url_reaches_the_server_from_this_machine(host: str, url_host: str) -> None:
    with reserve(host=host) as reservation:
        assert reservation.url() == f"http://{url_host}:{reservation.port}"


@needs_ipv6
def test_an_ipv6_url_has_brackets() -> None:
    with reserve(host="::") as reservation:
        assert reservation.url() == f"http://[::1]:{reservation.port}"


def test_release_is_idempotent_and_frees_the_port() -> None:
    # A range of its own: in the default range a test running beside this one could take
    # the port between the release and the second reserve (see tests/conftest.py).
    reservation = reserve(port_range=(24520, 24529))
    port = reservation.port
    reservation.release()
    reservation.release()
    with reserve(port) as again:
        assert again.port == port


def test_a_released_port_is_not_listed() -> None:
    reservation = reserve(name="listed")
    listed = {info.port: info for info in localport.reservations()}
    assert listed[reservation.port].name == "listed"
    assert listed[reservation.port].pid == os.getpid()
    assert listed[reservation.port].guarded
    reservation.release()
    assert reservation.port not in {info.port for info in localport.reservations()}


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "localhost"])
def test_a_plain_bind_succeeds_inside_the_reservation(host: str) -> None:
    with reserve(host=host) as reservation, socket.socket() as server:
        server.bind(("127.0.0.1" if host == "localhost" else host, reservation.port))
        server.listen()


@needs_ipv6
@pytest.mark.parametrize("host", ["::1", "::"])
def test_a_bind_with_reuseaddr_succeeds_inside_an_ipv6_reservation(host: str) -> None:
    with reserve(host=host) as reservation, socket.socket(socket.AF_INET6) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(host == "::1"))
        server.bind((host, reservation.port))
        server.listen()


@needs_ipv6
def test_a_plain_bind_succeeds_inside_a_v6only_reservation() -> None:
    with reserve(host="::1") as reservation, socket.socket(socket.AF_INET6) as server:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        server.bind(("::1", reservation.port))
        server.listen()


def test_listen_hands_over_a_listening_socket() -> None:
    with reserve() as reservation, reservation.listen() as server:
        assert server.getsockname()[1] == reservation.port
        with socket.create_connection(("127.0.0.1", reservation.port), timeout=5) as client:
            connection, _ = server.accept()
            with connection:
                client.sendall(b"ping")
                assert connection.recv(4) == b"ping"


def test_socket_for_udp_gives_a_bound_datagram_socket() -> None:
    with reserve(proto="udp") as reservation, reservation.socket() as server:
        assert server.type == socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"hi", ("127.0.0.1", reservation.port))
            assert server.recv(2) == b"hi"


def test_a_reservation_of_both_protocols_binds_each() -> None:
    with (
        reserve(proto="both") as reservation,
        reservation.socket("tcp") as tcp,
        reservation.socket("udp") as udp,
    ):
        assert tcp.getsockname()[1] == udp.getsockname()[1] == reservation.port


def test_a_released_reservation_gives_no_socket() -> None:
    reservation = reserve()
    reservation.release()
    with pytest.raises(localport.LocalportError, match="released"):
        reservation.socket()


def test_an_explicit_free_port_is_reserved_even_outside_the_range() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with reserve(port, port_range=(60000, 60010)) as reservation:
        assert reservation.port == port


def test_an_explicit_busy_port_raises_port_in_use() -> None:
    with _listener() as holder:
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            reserve(port)
    assert caught.value.port == port
    assert caught.value.errno == errno.EADDRINUSE
    assert isinstance(caught.value, OSError)
    assert str(port) in str(caught.value)


def test_fallback_takes_another_port_when_the_explicit_one_is_busy() -> None:
    with _listener() as holder:
        port = holder.getsockname()[1]
        with reserve(port, fallback=True) as reservation:
            assert reservation.port != port
            assert 49152 <= reservation.port <= 65535


def test_an_explicit_port_reserved_in_this_process_is_refused() -> None:
    with reserve(name="first") as first, pytest.raises(PortInUseError, match="this process"):
        reserve(first.port)


def test_localport_range_bounds_picked_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALPORT_RANGE", "24000-24049")
    ports: set[int] = set()
    with reserve_many(10) as group:
        ports.update(group.ports)
    assert all(24000 <= port <= 24049 for port in ports)


def test_the_port_range_argument_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALPORT_RANGE", "24000-24049")
    with reserve(port_range="24100-24109") as reservation:
        assert 24100 <= reservation.port <= 24109


# Sticky-name tests pick from ranges of their own: a hashed port in a shared range could be
# taken by another xdist worker between two steps of a test.
STICKY_RANGES = {
    "sticky-web": (24600, 24619),
    "moved": (24620, 24639),
    "restart-me": (24640, 24659),
    "restarted": (24660, 24679),
}


def test_a_sticky_name_gets_its_hashed_port_when_free() -> None:
    expected = sticky_port("sticky-web", STICKY_RANGES["sticky-web"])
    with reserve(name="sticky-web", port_range=STICKY_RANGES["sticky-web"]) as reservation:
        assert reservation.port == expected


def test_a_sticky_name_keeps_its_last_port_when_the_hashed_one_is_busy() -> None:
    hashed = sticky_port("moved", STICKY_RANGES["moved"])
    with (
        reserve(hashed) as blocker,
        reserve(name="moved", port_range=STICKY_RANGES["moved"]) as first,
    ):
        assert first.port != blocker.port
        moved_to = first.port
    # The hashed port is free again, but the name keeps the port it was last given.
    with reserve(name="moved", port_range=STICKY_RANGES["moved"]) as second:
        assert second.port == moved_to


def test_a_sticky_name_survives_a_restart_of_the_process(spawn: Any) -> None:
    code = """
        import json, localport
        with localport.reserve(name="restart-me") as r:
            print(json.dumps(r.port), flush=True)
    """
    env = {"LOCALPORT_RANGE": "{}-{}".format(*STICKY_RANGES["restart-me"])}
    first = spawn(code, env=env)
    port = first.read()
    first.finish()
    second = spawn(code, env=env)
    assert second.read() == port
    second.finish()


def test_a_sticky_port_in_time_wait_after_a_restart_stays_put() -> None:
    """A dev server that closed its connections leaves TIME_WAIT behind; its name keeps the port."""
    if time_wait_table_full():
        pytest.skip("the kernel's TIME_WAIT table is full: new entries are dropped")
    with reserve(name="restarted", port_range=STICKY_RANGES["restarted"]) as first:
        server = first.listen()
        client = socket.create_connection(("127.0.0.1", first.port), timeout=5)
        connection, _ = server.accept()
        connection.close()  # the server closes first: TIME_WAIT on the server's port
        client.close()
        server.close()
    assert not localport.is_free(first.port)  # a plain bind would fail now...
    with reserve(name="restarted", port_range=STICKY_RANGES["restarted"]) as second:
        assert second.port == first.port  # ...but the name keeps its port
        with second.listen():  # and a server that sets SO_REUSEADDR binds it
            pass


def test_a_busy_sticky_port_yields_another_free_one() -> None:
    with reserve(name="shared-name") as first, reserve(name="shared-name") as second:
        assert first.port != second.port


def test_reserve_many_consecutive_gives_adjacent_ports() -> None:
    with reserve_many(3, consecutive=True) as group:
        low = group.ports[0]
        assert group.ports == (low, low + 1, low + 2)
        assert len(group) == 3
        assert [r.port for r in group] == list(group.ports)
        for reservation in group:
            with socket.socket() as server:
                server.bind(reservation.address)
    assert group.released


def test_reserve_many_gives_distinct_ports_released_together() -> None:
    group = reserve_many(5, name="cluster")
    assert len(set(group.ports)) == 5
    assert [r.name for r in group] == [f"cluster[{i}]" for i in range(5)]
    group.release()
    assert all(r.released for r in group)


def test_reserve_many_consecutive_skips_a_busy_port_in_the_block() -> None:
    with (
        reserve(24201) as blocker,
        reserve_many(2, consecutive=True, port_range=(24200, 24203)) as group,
    ):
        assert blocker.port not in group.ports
        assert group.ports[1] == group.ports[0] + 1


def test_reserve_many_takes_all_or_none() -> None:
    with reserve(24301), pytest.raises(NoFreePortError):
        reserve_many(3, port_range=(24300, 24302))
    assert not [info for info in localport.reservations() if 24300 <= info.port <= 24302]


def test_an_exhausted_range_raises_quickly_without_leaking_descriptors() -> None:
    with reserve_many(8, port_range=(24400, 24407)):
        before = _open_descriptors()
        started = time.monotonic()
        with pytest.raises(NoFreePortError) as caught:
            reserve(port_range=(24400, 24407))
        elapsed = time.monotonic() - started
        assert _open_descriptors() == before
    assert caught.value.port_range == (24400, 24407)
    assert caught.value.busy == 8
    assert "24400-24407" in str(caught.value)
    assert elapsed < 5  # bounded time, generously: the point is "does not hang"


def test_is_free_sees_reservations_and_listeners() -> None:
    with reserve(port_range=(24530, 24539)) as reservation:
        assert not localport.is_free(reservation.port)
    assert localport.is_free(reservation.port)
    with _listener() as holder:
        assert not localport.is_free(holder.getsockname()[1])


def test_a_lease_keeps_other_reservers_off_after_release(lock_dir: Path) -> None:
    reservation = reserve(port_range=(24500, 24500))
    reservation.release(lease=30)
    with pytest.raises(NoFreePortError):
        reserve(port_range=(24500, 24500))
    with pytest.raises(PortInUseError):
        reserve(24500)
    assert not localport.is_free(24500)
    leased = [info for info in localport.reservations() if info.port == 24500]
    assert leased
    assert leased[0].lease_until is not None
    # The guard is gone: the process the port was handed to can bind it.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 24500))


def test_an_expired_lease_frees_the_port() -> None:
    reservation = reserve(port_range=(24510, 24510))
    reservation.release(lease=0.05)
    time.sleep(0.1)
    with reserve(port_range=(24510, 24510)) as again:
        assert again.port == 24510


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def _ipv6() -> bool:
    from helpers import has_ipv6

    return has_ipv6()


# Where walks start: 30800-30999 (tests/conftest.py's plan), 200 ports, so that two processes
# whose walks started alike would pick the very same six ports.
_WALK_RANGE = (30800, 30999)


def _six_picks() -> list[int]:
    group = [reserve(port_range=_WALK_RANGE) for _ in range(6)]
    try:
        return [reservation.port for reservation in group]
    finally:
        for reservation in group:
            reservation.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_does_not_repeat_its_parents_walks() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: pick, report, leave without running atexit
        try:
            os.write(write_end, json.dumps(_six_picks()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        child_picks = json.loads(os.read(read_end, 4096))
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(read_end)
    assert _six_picks() != child_picks


def test_processes_that_seed_random_alike_still_walk_differently(spawn: Any) -> None:
    # pytest-randomly seeds the random module with one seed in every xdist worker.
    code = f"""
        import json, random, localport
        random.seed(1234)
        group = [localport.reserve(port_range={_WALK_RANGE}) for _ in range(6)]
        print(json.dumps([reservation.port for reservation in group]), flush=True)
        for reservation in group:
            reservation.release()
    """
    first = spawn(code)
    first_picks = first.read()
    first.finish()
    second = spawn(code)
    assert second.read() != first_picks
    second.finish()
