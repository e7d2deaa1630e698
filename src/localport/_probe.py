"""Bind probes and guard sockets: how localport asks the kernel whether a port is free.

A *probe* binds an address and closes the socket at once: if the bind fails with
``EADDRINUSE`` something holds the port there. A *guard* is a bound, never listening socket
kept open while a reservation lives: Linux ``connect()`` autobind skips every port that has any
explicitly bound socket (of either address family, in the same network namespace), so outgoing
connections cannot take the reserved port before the caller's server binds it. Where each one
binds is decided in :mod:`localport._addresses`.
"""

from __future__ import annotations

import enum
import errno
import socket
from typing import TYPE_CHECKING

from . import _platform

if TYPE_CHECKING:
    from ._addresses import Endpoint, Plan

#: errnos that mean "this address family or address does not exist here", not "busy".
#: EINVAL is what bind() says of a link-local IPv6 address without a zone (``fe80::1``):
#: no address of this machine as written.
_ABSENT_ERRNOS = frozenset(
    {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.EINVAL}
)
#: errnos that mean "your server could not bind this": in use, or (EACCES) a privileged port
#: or a Windows excluded port range.
_BUSY_ERRNOS = frozenset({errno.EADDRINUSE, errno.EACCES})


class ProbeResult(enum.Enum):
    FREE = "free"
    BUSY = "busy"
    #: The address (or its whole family) does not exist on this machine.
    ABSENT = "absent"


def _new_socket(endpoint: Endpoint, sock_type: socket.SocketKind) -> socket.socket:
    sock = socket.socket(endpoint.family, sock_type)
    try:
        if endpoint.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(endpoint.v6only))
    except OSError:
        sock.close()
        raise
    return sock


def probe(endpoint: Endpoint, sock_type: socket.SocketKind, port: int) -> ProbeResult:
    """Bind *endpoint* on *port* for an instant and say what the kernel answered."""
    try:
        sock = _new_socket(endpoint, sock_type)
    except OSError as error:
        if error.errno in _ABSENT_ERRNOS:
            return ProbeResult.ABSENT
        raise
    try:
        _platform.system.set_probe_options(sock, reuse=endpoint.reuse)
        sock.bind((endpoint.address, port))
    except OSError as error:
        if error.errno in _ABSENT_ERRNOS:
            return ProbeResult.ABSENT
        if error.errno in _BUSY_ERRNOS:
            return ProbeResult.BUSY
        raise
    finally:
        sock.close()
    return ProbeResult.FREE


def bind_guard(
    plan: Plan, sock_type: socket.SocketKind, port: int
) -> tuple[ProbeResult, socket.socket | None, Endpoint | None]:
    """Bind the first guard of *plan* that exists here.

    Returns ``(BUSY, None, spot)`` when something listens (or holds the address without
    ``SO_REUSEADDR``) at the guard's *spot*, ``(FREE, sock, spot)`` with the guard and where
    it sits, or ``(ABSENT, None, None)`` when no guard address exists on this machine.
    """
    for endpoint in plan.guards:
        try:
            sock = _new_socket(endpoint, sock_type)
        except OSError as error:
            if error.errno in _ABSENT_ERRNOS:
                continue
            raise
        try:
            # Bound plainly first, so the bind fails on any socket already there: another
            # lock directory's guard too, since two sockets share an address only when both
            # set SO_REUSEADDR. This bind is the probe of the guard's spot.
            sock.bind((endpoint.address, port))
            # Then shared, so that the consumer can bind beside it (a dual-stack [::] server
            # collides with every guard otherwise; see localport._addresses). Linux checks a
            # bound socket's SO_REUSEADDR when the *next* bind comes, not when it bound.
            _platform.system.set_shared_address(sock)
        except OSError as error:
            sock.close()
            if error.errno in _ABSENT_ERRNOS:
                continue
            if error.errno in _BUSY_ERRNOS:
                return ProbeResult.BUSY, None, endpoint
            raise
        return ProbeResult.FREE, sock, endpoint
    return ProbeResult.ABSENT, None, None
