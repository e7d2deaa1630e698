"""Waiting for a server to listen on a port, or for a port to be let go."""

from __future__ import annotations

import socket
import sys
import time
from typing import TYPE_CHECKING

from ._errors import LocalportError
from ._probe import check_proto, normalize_host
from ._ranges import check_port

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._sockdiag import DiagSocket

_POLL = 0.02


class WaitTimeoutError(LocalportError, TimeoutError):
    """A wait for a port ran out of time.

    :ivar port: the port waited for.
    :ivar timeout: the seconds waited.
    """

    def __init__(self, port: int, timeout: float, what: str) -> None:
        self._port = port
        self._timeout = timeout
        self._what = what
        super().__init__(f"port {port}: {what} within {timeout:g} s")

    @property
    def port(self) -> int:
        return self._port

    @property
    def timeout(self) -> float:
        return self._timeout

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self._port, self._timeout, self._what))


def check_seconds(value: object, argument: str) -> float:
    """Validate a duration in seconds (> 0) without I/O, naming *argument* when it is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{argument} must be a number of seconds > 0, got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if not value > 0:
        msg = f"{argument} must be a number of seconds > 0, got {value!r}"
        raise ValueError(msg)
    return float(value)


def listeners(port: int, host: str) -> list[DiagSocket] | None:
    """The sockets listening on *port* that clients of *host* reach.

    ``None`` where the kernel cannot be asked without connecting (no sock_diag): the caller
    then tries to connect instead.
    """
    if not sys.platform.startswith("linux"):
        return None
    from ._holders import listening_sockets

    try:
        return listening_sockets(port, host)
    except OSError:
        return None


def _connect_host(host: str) -> list[str]:
    """Where a client of a server bound to *host* connects."""
    if host in ("0.0.0.0", "localhost"):
        return ["127.0.0.1", "::1"] if host == "localhost" else ["127.0.0.1"]
    if host == "::":
        return ["::1", "127.0.0.1"]
    return [host]


def accepts_connections(port: int, host: str) -> bool:
    """Whether a TCP connection to *port* on *host* succeeds right now."""
    for address in _connect_host(host):
        try:
            with socket.create_connection((address, port), timeout=0.25):
                return True
        except OSError:
            continue
    return False


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
    deadline = time.monotonic() + check_seconds(timeout, "timeout")
    while True:
        found = listeners(port, host)
        if (found if found is not None else accepts_connections(port, host)) or (
            stop_if is not None and stop_if()
        ):
            return
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(port, timeout, "nothing listened")
        time.sleep(_POLL)


def wait_until_free(
    port: int,
    *,
    host: str = "127.0.0.1",
    proto: str = "tcp",
    timeout: float = 30.0,
) -> None:
    """Return once no process listens on, is bound to, or has reserved *port* any more.

    ``TIME_WAIT`` leftovers of closed connections do not count: a server that sets
    ``SO_REUSEADDR`` (every common one does) can bind the port again at once.

    :raises WaitTimeoutError: the port was still held when the time was up.
    """
    from ._holders import who_holds

    port = check_port(port)
    host = normalize_host(host)
    check_proto(proto)
    deadline = time.monotonic() + check_seconds(timeout, "timeout")
    while True:
        holders = who_holds(port, proto=proto, host=host)
        if all(holder.status == "TIME_WAIT" for holder in holders):
            return
        if time.monotonic() >= deadline:
            raise WaitTimeoutError(port, timeout, "still held")
        time.sleep(_POLL)
