"""The guard socket, measured in a private network namespace.

Each case runs in a child that unshares its network namespace (root, Linux), brings up its
own loopback and narrows ``ip_local_port_range`` to four ports around a reserved one. It then
opens outgoing connections until the range is exhausted and reports which source ports they
got, and whether the consumer's own bind succeeds beside the guard. A control case without a
guard shows the connections *do* take the port otherwise, so the test can fail.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux namespaces")

NETNS_CHILD = r"""
    import ctypes, errno, fcntl, json, os, socket, struct, sys

    host, proto, guard = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        reason = "unshare(CLONE_NEWNET): " + os.strerror(ctypes.get_errno())
        print(json.dumps({"skip": reason}))
        sys.exit(0)
    # Bring up the namespace's loopback (what `ip link set lo up` does).
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(control, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(control, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    low = 50000
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as file:
            file.write(f"{low} {low + 3}")
    except OSError as error:
        print(json.dumps({"skip": f"cannot narrow ip_local_port_range: {error}"}))
        sys.exit(0)

    import localport

    port = low + 2  # connect() autobind tries even ports first: make the reserved one even
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    reservation = localport.reserve(port, host=host, proto=proto, guard=guard)

    # Outgoing connections from both families to several destinations, until the range runs out.
    listeners, clients, taken = [], [], []
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for offset in range(8):
            listener = socket.socket(family, kind)
            listener.bind((address, 40000 + offset))
            if kind == socket.SOCK_STREAM:
                listener.listen(64)
            listeners.append(listener)
            for _ in range(4):
                client = socket.socket(family, kind)
                try:
                    client.connect((address, 40000 + offset))
                except OSError as error:
                    client.close()
                    if error.errno not in (errno.EADDRNOTAVAIL, errno.EAGAIN):
                        raise
                    continue
                clients.append(client)
                taken.append(client.getsockname()[1])
    for sock in clients + listeners:
        sock.close()

    # The consumer binds beside the guard, plainly (no SO_REUSEADDR) where the design says it
    # can, with SO_REUSEADDR for a dual-stack [::] TCP server (which every server sets).
    consumer = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    if ":" in host:
        consumer.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(host != "::"))
    if host == "::" and kind == socket.SOCK_STREAM:
        consumer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        consumer.bind(("127.0.0.1" if host == "localhost" else host, port))
        if kind == socket.SOCK_STREAM:
            consumer.listen()
        bound = None
    except OSError as error:
        bound = errno.errorcode.get(error.errno, str(error.errno))
    consumer.close()
    guarded = reservation.guarded
    reservation.release()
    print(json.dumps({
        "taken": port in taken, "connections": len(taken), "bind_error": bound, "guarded": guarded,
    }))
"""


def _run(spawn: Any, host: str, proto: str, *, guard: bool) -> dict[str, Any]:
    child = spawn(NETNS_CHILD, host, proto, "1" if guard else "0")
    result: dict[str, Any] = child.read(timeout=60)
    child.finish()
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


@pytest.mark.parametrize(
    ("host", "proto"),
    [
        ("127.0.0.1", "tcp"),
        ("0.0.0.0", "tcp"),
        ("localhost", "tcp"),
        ("::1", "tcp"),
        ("::", "tcp"),
        ("127.0.0.1", "udp"),
        ("localhost", "udp"),
        ("::1", "udp"),
    ],
)
def test_outgoing_connections_never_take_a_guarded_port(spawn: Any, host: str, proto: str) -> None:
    result = _run(spawn, host, proto, guard=True)
    assert result["guarded"]
    assert result["connections"] >= 2, "the namespace's range was not used at all"
    assert not result["taken"]
    assert result["bind_error"] is None


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_without_a_guard_an_outgoing_connection_takes_the_port(spawn: Any, proto: str) -> None:
    """The control: the property above is not an accident of the test setup."""
    result = _run(spawn, "127.0.0.1", proto, guard=False)
    assert not result["guarded"]
    assert result["taken"]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_udp_consumer_gets_no_guard(spawn: Any, host: str) -> None:
    # Every guard address would collide with a wildcard UDP bind; the docs say so.
    result = _run(spawn, host, "udp", guard=True)
    assert not result["guarded"]
    assert result["bind_error"] is None
