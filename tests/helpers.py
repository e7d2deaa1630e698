"""Small helpers shared by the test modules."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback on this machine")

#: For tests that act as another user (``spawn(LISTENING_CHILD, "nobody")``): only root may.
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root"
)


def time_wait_table_full() -> bool:
    """Whether the kernel's TIME_WAIT table is (nearly) full, so new entries get dropped.

    Another program on the machine can fill it (a load test, a benchmark); a test that needs
    a TIME_WAIT entry then skips instead of failing.
    """
    try:
        with open("/proc/sys/net/ipv4/tcp_max_tw_buckets", "rb") as file:
            limit = int(file.read())
        count = 0
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(name, "rb") as file:
                count += sum(1 for line in file if line.split()[3:4] == [b"06"])
    except (OSError, ValueError):
        return False
    return count > limit - 2000


#: A child for the ``spawn`` fixture: it listens on 127.0.0.1, on a port the kernel picks,
#: prints that port as JSON, and holds it until its stdin closes. Given the argument ``nobody``
#: (``spawn(LISTENING_CHILD, "nobody")``, root only) it first becomes user and group 65534, so
#: the socket it then opens is nobody's.
LISTENING_CHILD = """
    import json, os, socket, sys
    if len(sys.argv) > 1 and sys.argv[1] == "nobody":
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    print(json.dumps(server.getsockname()[1]), flush=True)
    sys.stdin.read()
"""


def leave_time_wait(port: int) -> None:
    """A server on 127.0.0.1:*port* that closes its connection first: TIME_WAIT on *port*."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    connection, _ = server.accept()
    connection.close()  # the server's side closes first: TIME_WAIT on the server's port
    client.close()
    server.close()


@contextlib.contextmanager
def localport_popen(
    *arguments: str, stdout: Any = subprocess.PIPE
) -> Iterator[subprocess.Popen[str]]:
    """``python -m localport ARGUMENTS`` in the background; killed by its PID if it outlives
    the test, its pipes closed either way."""
    process = subprocess.Popen(
        [sys.executable, "-m", "localport", *arguments],
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
