"""who_holds(), listening() and the PortInUseError that names the holder, with real processes."""

from __future__ import annotations

import os
import pickle
import socket
import sys
from typing import Any

import pytest

import localport
from helpers import LISTENING_CHILD, needs_ipv6, needs_root, time_wait_table_full
from localport import Holder, PortInUseError, _platform, who_holds

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process tools")

# A child that binds, optionally listens, reports its port and waits for stdin to close.
SERVER = """
    import json, socket, sys
    host, kind, listen = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, 0))
    if listen and kind == "tcp":
        sock.listen()
    print(json.dumps(sock.getsockname()[1]), flush=True)
    sys.stdin.read()
"""
MARKER = "localport-holder-marker"


def _serve(spawn: Any, host: str, kind: str = "tcp", *, listen: bool = True) -> tuple[Any, int]:
    child = spawn(SERVER, host, kind, "1" if listen else "0", MARKER)
    port: int = child.read()
    return child, port


def _holder_of(holders: list[Holder], pid: int) -> Holder:
    mine = [holder for holder in holders if holder.pid == pid]
    assert mine, f"pid {pid} not among {holders}"
    return mine[0]


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "0.0.0.0",
        pytest.param("::1", marks=needs_ipv6),
        pytest.param("::", marks=needs_ipv6),
    ],
)
def test_a_listening_child_is_found_with_its_pid_and_command_line(spawn: Any, host: str) -> None:
    child, port = _serve(spawn, host)
    holder = _holder_of(who_holds(port), child.pid)
    assert holder.status == "LISTEN"
    assert holder.proto == "tcp"
    assert holder.local_address == (host, port)
    assert holder.family == (socket.AF_INET6 if ":" in host else socket.AF_INET)
    assert MARKER in holder.cmdline
    assert holder.uid == os.getuid()
    assert holder.started is not None
    assert holder.reservation is None


def test_a_udp_socket_is_found_for_udp_only(spawn: Any) -> None:
    child, port = _serve(spawn, "127.0.0.1", "udp")
    holder = _holder_of(who_holds(port, proto="udp"), child.pid)
    assert holder.status == "BOUND"
    assert holder.proto == "udp"
    assert [h for h in who_holds(port, proto="both") if h.pid == child.pid]
    assert not [h for h in who_holds(port, proto="tcp") if h.pid == child.pid]


def test_a_bound_but_not_listening_socket_is_found(spawn: Any) -> None:
    child, port = _serve(spawn, "127.0.0.1", listen=False)
    holder = _holder_of(who_holds(port), child.pid)
    assert holder.status == "BOUND"


def test_a_port_nobody_holds_has_no_holders() -> None:
    with localport.reserve(port_range=(24540, 24549)) as reservation:
        port = reservation.port
    assert who_holds(port) == []


def test_the_host_filter_keeps_only_holders_that_matter(spawn: Any) -> None:
    loopback_child, port = _serve(spawn, "127.0.0.1")
    # localhost may reach 127.0.0.1, so a server for localhost cares about this listener...
    assert _holder_of(who_holds(port, host="localhost"), loopback_child.pid)
    # ...while one bound to 127.0.0.2 alone does not collide with it.
    assert [h for h in who_holds(port, host="127.0.0.2") if h.pid == loopback_child.pid] == []
    wildcard_child, other = _serve(spawn, "0.0.0.0")
    assert _holder_of(who_holds(other, host="127.0.0.2"), wildcard_child.pid)


def test_time_wait_leftovers_are_reported_without_a_pid() -> None:
    if time_wait_table_full():
        pytest.skip("the kernel's TIME_WAIT table is full: new entries are dropped")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    connection, _ = server.accept()
    connection.close()  # the server side closes first, so TIME_WAIT sits on the server's port
    client.close()
    server.close()
    holders = who_holds(port)
    assert holders
    assert {h.status for h in holders} == {"TIME_WAIT"}
    assert all(h.pid is None for h in holders)
    with pytest.raises(PortInUseError, match="TIME_WAIT") as caught:
        localport.reserve(port)
    assert "free again within" in str(caught.value)


def test_a_reservation_is_reported_before_and_after_its_server_binds(spawn: Any) -> None:
    child = spawn(
        """
        import json, sys, localport
        reservation = localport.reserve(name="api")
        print(json.dumps(reservation.port), flush=True)
        sys.stdin.readline()
        server = reservation.listen()
        print(json.dumps("listening"), flush=True)
        sys.stdin.read()
        """
    )
    port = child.read()
    (before,) = who_holds(port)
    assert before.status == "RESERVED"
    assert before.pid == child.pid
    assert before.reservation is not None
    assert before.reservation.name == "api"
    assert before.local_address is not None  # its guard socket
    with pytest.raises(PortInUseError, match="name 'api'") as caught:
        localport.reserve(port)
    assert "nothing listens on it yet" in str(caught.value)

    child.send()
    assert child.read() == "listening"
    # Now the server is the holder, and it carries its reservation.
    (after,) = who_holds(port)
    assert after.status == "LISTEN"
    assert after.pid == child.pid
    assert after.reservation is not None
    assert after.reservation.name == "api"
    with pytest.raises(PortInUseError, match=f"PID {child.pid}"):
        localport.reserve(port)


def test_an_unguarded_reservation_is_a_holder_without_a_socket(spawn: Any) -> None:
    child = spawn(
        """
        import json, sys, localport
        reservation = localport.reserve(guard=False)
        print(json.dumps(reservation.port), flush=True)
        sys.stdin.read()
        """
    )
    port = child.read()
    (holder,) = who_holds(port)
    assert holder.status == "RESERVED"
    assert holder.local_address is None
    assert holder.pid == child.pid


def test_reserving_a_held_port_names_the_holder_in_the_error(spawn: Any) -> None:
    child, port = _serve(spawn, "127.0.0.1")
    with pytest.raises(PortInUseError) as caught:
        localport.reserve(port)
    error = caught.value
    assert f"PID {child.pid}" in str(error)
    assert "(python -c, user" in str(error)  # the program as people name it, on one line
    assert sys.executable not in str(error)  # not the interpreter's path
    assert "\n" not in str(error)
    assert f"kill {child.pid}" in str(error)
    assert "listening on 127.0.0.1" in str(error)
    assert _holder_of(list(error.holders), child.pid).status == "LISTEN"
    copy = pickle.loads(pickle.dumps(error))
    assert copy.holders == error.holders
    assert str(copy) == str(error)


@needs_ipv6
def test_an_ipv6_only_listener_gets_its_own_sentence(spawn: Any) -> None:
    _, port = _serve(spawn, "::1")
    with pytest.raises(PortInUseError, match="IPv6 only") as caught:
        localport.reserve(port)
    assert "localhost" in str(caught.value)


def test_listening_lists_a_childs_listener(spawn: Any) -> None:
    child, port = _serve(spawn, "127.0.0.1")
    mine = [h for h in localport.listening() if h.local_address == ("127.0.0.1", port)]
    assert [h.pid for h in mine] == [child.pid]


@needs_root
def test_another_users_process_is_reported_with_its_uid(spawn: Any) -> None:
    # The child drops to nobody *before* creating its socket, so the socket is nobody's.
    child = spawn(LISTENING_CHILD, "nobody")
    port = child.read()
    holder = _holder_of(who_holds(port), child.pid)  # root may look into every process
    assert holder.uid == 65534


@needs_root
def test_without_root_another_users_holder_has_uid_and_no_pid(spawn: Any) -> None:
    import shutil
    import tempfile

    server = socket.create_server(("127.0.0.1", 0))
    nobody_locks = tempfile.mkdtemp(prefix="localport-test-nobody-")
    os.chown(nobody_locks, 65534, 65534)
    try:
        port = server.getsockname()[1]
        checker = spawn(
            """
            import json, os, sys
            # Everything is imported before dropping to nobody, who may not read the stdlib.
            import filelock, ipaddress, psutil, pwd
            import localport, localport._holders, localport._picker, localport._platform.linux
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            port = int(sys.argv[1])
            holders = [h for h in localport.who_holds(port) if h.status == "LISTEN"]
            try:
                localport.reserve(port)
                message = None
            except localport.PortInUseError as error:
                message = str(error)
            print(json.dumps({"holders": [[h.pid, h.uid] for h in holders], "message": message}))
            """,
            str(port),
            env={"LOCALPORT_DIR": nobody_locks},
        )
        result = checker.read()
        checker.finish()
    finally:
        server.close()
        shutil.rmtree(nobody_locks)
    assert result["holders"] == [[None, 0]]
    assert "uid 0" in result["message"]
    assert "run as root" in result["message"]


def test_the_psutil_path_finds_the_same_holder(spawn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where netlink is not available (other systems, sandboxes), psutil answers."""

    monkeypatch.setattr(_platform, "system", _platform.Portable())
    child, port = _serve(spawn, "127.0.0.1")
    holder = _holder_of(who_holds(port), child.pid)
    assert holder.status == "LISTEN"
    assert MARKER in holder.cmdline


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"port": 0}, ValueError, "port"),
        ({"port": "80"}, TypeError, "port"),
        ({"port": 80, "proto": "sctp"}, ValueError, "proto"),
        ({"port": 80, "proto": 6}, TypeError, "proto"),
        ({"port": 80, "host": "example.com"}, ValueError, "host"),
    ],
)
def test_who_holds_rejects_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        who_holds(**kwargs)
