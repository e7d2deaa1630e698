"""Waiting for a server to listen on a port, or for a port to be let go."""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING

from ._addresses import client_addresses

# Proto (and SocketProto) at run time, not only for type checkers: the API reference
# resolves them in signatures.
from ._arguments import (
    Proto,
    check_port,
    check_proto,
    check_seconds,
    normalize_host,
)
from ._errors import WaitTimeoutError
from ._holders import listening_sockets, who_holds

if TYPE_CHECKING:
    from collections.abc import Callable


_POLL = 0.02


def accepts_connections(port: int, host: str) -> bool:
    """Whether a TCP connection to *port* succeeds right now, where clients of *host* connect."""
    for _, address in client_addresses(host):
        try:
            with socket.create_connection((address, port), timeout=0.25):
                return True
        except OSError:
            continue
    return False


def is_listening(port: int, host: str) -> bool:
    """Whether a TCP server listens on *port* where clients of *host* reach it.

    The kernel is asked where it can say (no traffic to the server); elsewhere a connection
    is attempted.
    """
    found = listening_sockets(port, host)
    return bool(found) if found is not None else accepts_connections(port, host)


def wait_until_listening(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    stop_if: Callable[[], bool] | None = None,
) -> None:
    """Return once a TCP server listens on *port* where clients of *host* reach it.

    On Linux the kernel is asked which sockets listen (sock_diag), so waiting sends no
    traffic to the server; elsewhere a connection is attempted every 20 ms.

    :param port: the port, 1-65535.
    :param host: the address clients use (``"127.0.0.1"``, ``"::1"``, ``"localhost"``...).
    :param timeout: seconds to wait, > 0.
    :param stop_if: called between looks; waiting ends early (returning) when it says True,
        e.g. because the process that should listen has exited.
    :raises WaitTimeoutError: (a :class:`TimeoutError`) nothing listened in time.
    """
    port = check_port(port)
    host = normalize_host(host)
    checked: object = stop_if  # typed callers cannot get this wrong; untyped ones can
    if checked is not None and not callable(checked):
        msg = f"stop_if must be a callable returning bool, or None; got {stop_if!r}"
        raise TypeError(msg)
    deadline = time.monotonic() + check_seconds(timeout, "timeout")
    while True:
        if is_listening(port, host) or (stop_if is not None and stop_if()):
            return
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(port, timeout, "nothing listened")
        time.sleep(_POLL)


def wait_until_free(
    port: int,
    *,
    host: str = "127.0.0.1",
    proto: Proto = "tcp",
    timeout: float = 30.0,
) -> None:
    """Return once no process listens on, is bound to, or has reserved *port* any more.

    ``TIME_WAIT`` leftovers of closed connections do not count: a server that sets
    ``SO_REUSEADDR`` (every common one does) can bind the port again at once.

    :raises WaitTimeoutError: the port was still held when the time was up.
    """
    port = check_port(port)
    host = normalize_host(host)
    checked = check_proto(proto)
    deadline = time.monotonic() + check_seconds(timeout, "timeout")
    while True:
        holders = who_holds(port, proto=checked, host=host)
        if all(holder.status == "TIME_WAIT" for holder in holders):
            return
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(port, timeout, "still held")
        time.sleep(_POLL)
