"""Bind probes and guard sockets: how localport asks the kernel whether a port is free.

A *probe* binds an address without ``SO_REUSEADDR`` and closes the socket at once: if the bind
fails with ``EADDRINUSE`` something holds the port there. A *guard* is a bound, never listening
socket kept open while a reservation lives: Linux ``connect()`` autobind skips every port that
has any explicitly bound socket (of either address family, in the same network namespace), so
outgoing connections cannot take the reserved port before the caller's server binds it.

Where the guard sits was measured in a private network namespace (kernel 6.x; see
``tests/test_guard.py``, which re-measures it on every run):

============  ==================================  =========================================
consumer      TCP guard                           UDP guard
============  ==================================  =========================================
IPv4 address  ``[::1]`` v6-only (else 127.0.0.2)  127.0.0.2 (``[::1]`` does not stop IPv4
                                                  UDP autobind)
0.0.0.0       ``[::1]`` v6-only                   none: every guard collides with its bind
localhost     127.0.0.2                           127.0.0.2
IPv6 address  127.0.0.2 (else 127.0.0.1)          127.0.0.2
``::``        127.0.0.2 (else 127.0.0.1)          none
============  ==================================  =========================================

Each guard lets the consumer's plain ``bind()`` (no ``SO_REUSEADDR``) succeed, except a
dual-stack ``[::]`` TCP consumer, which collides with every possible guard unless it sets
``SO_REUSEADDR`` (uvicorn, gunicorn, Node, Go and ``http.server`` all do).
"""

from __future__ import annotations

import enum
import errno
import functools
import ipaddress
import socket
import sys
from dataclasses import dataclass

HOST_ARGUMENT_HELP = "an IP address such as '127.0.0.1', '::1', '0.0.0.0' or '::', or 'localhost'"

#: errnos that mean "this address family or address does not exist here", not "busy".
_ABSENT_ERRNOS = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT})

_WINDOWS = sys.platform == "win32"
_LINUX = sys.platform.startswith("linux")


class ProbeResult(enum.Enum):
    FREE = "free"
    BUSY = "busy"
    #: The address (or its whole family) does not exist on this machine.
    ABSENT = "absent"


@dataclass(frozen=True)
class Endpoint:
    """One address to bind: family, address, and for IPv6 whether the socket is v6-only."""

    family: socket.AddressFamily
    address: str
    v6only: bool = True
    #: Probe with ``SO_REUSEADDR``: only for the dual-stack wildcard, which collides with our
    #: own guard otherwise. Such a probe still fails on any listener and any socket bound
    #: without ``SO_REUSEADDR``.
    reuse: bool = False

    def describe(self) -> str:
        if self.family == socket.AF_INET6:
            return f"[{self.address}]"
        return self.address


@dataclass(frozen=True)
class Plan:
    """What to bind for one consumer host and one protocol."""

    #: Bound before the file lock is tried: the consumer's own address, so a port some other
    #: program holds costs a few microseconds to reject.
    cheap: Endpoint
    #: Bound once the lock and the guard are held: every address a client of the consumer may
    #: reach (a ``[::1]`` listener answers "localhost" as well as a 127.0.0.1 one does).
    probes: tuple[Endpoint, ...]
    #: Guard addresses in order of preference; the first that exists here is used.
    guards: tuple[Endpoint, ...]


_V4_LOOPBACK = Endpoint(socket.AF_INET, "127.0.0.1")
_V4_SECOND_LOOPBACK = Endpoint(socket.AF_INET, "127.0.0.2")
_V6_LOOPBACK = Endpoint(socket.AF_INET6, "::1")


def normalize_host(host: object) -> str:
    """Validate *host* without any I/O and return it in canonical form."""
    if not isinstance(host, str):
        msg = f"host must be a str, {HOST_ARGUMENT_HELP}; got {type(host).__name__} {host!r}"
        raise TypeError(msg)
    return _normalize_text_host(host)


@functools.lru_cache(maxsize=64)
def _normalize_text_host(host: str) -> str:
    # Cached: parsing an address with ipaddress costs more than a bind probe.
    if host.lower() == "localhost":
        return "localhost"
    try:
        address = ipaddress.ip_address(host.strip("[]") if host.startswith("[") else host)
    except ValueError:
        msg = f"host must be {HOST_ARGUMENT_HELP}; got {host!r} (no name but localhost is resolved)"
        raise ValueError(msg) from None
    return str(address)


PROTOS = ("tcp", "udp", "both")


def check_proto(value: object) -> str:
    """Validate *proto* without I/O: ``"tcp"``, ``"udp"`` or ``"both"``."""
    if not isinstance(value, str):
        msg = f"proto must be 'tcp', 'udp' or 'both', got {type(value).__name__} {value!r}"
        raise TypeError(msg)
    if value not in PROTOS:
        msg = f"proto must be 'tcp', 'udp' or 'both', got {value!r}"
        raise ValueError(msg)
    return value


def host_family(host: str) -> socket.AddressFamily:
    if host == "localhost":
        return socket.AF_INET
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to *host* from this machine."""
    if host == "0.0.0.0":
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    if ":" in host:
        return f"[{host}]"
    return host


def bind_address(host: str) -> tuple[socket.AddressFamily, str]:
    """The family and address a server for *host* binds (``localhost`` binds 127.0.0.1)."""
    if host == "localhost":
        return socket.AF_INET, "127.0.0.1"
    return host_family(host), host


@functools.lru_cache(maxsize=64)
def plan_for(host: str, sock_type: socket.SocketKind) -> Plan:
    """The probe and guard plan for a consumer on *host* (already normalized)."""
    udp = sock_type == socket.SOCK_DGRAM
    if host == "localhost":
        return Plan(_V4_LOOPBACK, (_V4_LOOPBACK, _V6_LOOPBACK), (_V4_SECOND_LOOPBACK,))
    if host == "0.0.0.0":
        wildcard = Endpoint(socket.AF_INET, host)
        return Plan(wildcard, (wildcard, _V6_LOOPBACK), () if udp else (_V6_LOOPBACK,))
    if host == "::":
        dual = Endpoint(socket.AF_INET6, host, v6only=False)
        if udp:
            return Plan(dual, (dual,), ())
        # A plain dual-stack probe would collide with our own guard; probing with
        # SO_REUSEADDR still fails on any listener and on any socket bound without it.
        shared = Endpoint(socket.AF_INET6, host, v6only=False, reuse=True)
        return Plan(dual, (shared,), (_V4_SECOND_LOOPBACK, _V4_LOOPBACK))
    address = ipaddress.ip_address(host)
    own = Endpoint(host_family(host), host)
    if address.version == 6:
        probes = (own, _V4_LOOPBACK) if address.is_loopback else (own,)
        guards = (_V4_SECOND_LOOPBACK,) if udp else (_V4_SECOND_LOOPBACK, _V4_LOOPBACK)
        return Plan(own, probes, guards)
    probes = (own, _V6_LOOPBACK) if address.is_loopback else (own,)
    spare = Endpoint(socket.AF_INET, "127.0.0.3") if host == "127.0.0.2" else _V4_SECOND_LOOPBACK
    guards = (spare,) if udp else (_V6_LOOPBACK, spare)
    return Plan(own, probes, guards)


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
        if _WINDOWS:
            # Without it a Windows bind may succeed beside a socket bound with SO_REUSEADDR.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]
        elif endpoint.reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((endpoint.address, port))
    except OSError as error:
        if error.errno in _ABSENT_ERRNOS:
            return ProbeResult.ABSENT
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            # EACCES: a privileged port, or a Windows excluded port range. Either way the
            # caller's server could not bind it.
            return ProbeResult.BUSY
        raise
    finally:
        sock.close()
    return ProbeResult.FREE


def bind_guard(
    plan: Plan, sock_type: socket.SocketKind, port: int
) -> tuple[ProbeResult, socket.socket | None]:
    """Bind the first guard of *plan* that exists here.

    Returns ``(BUSY, None)`` when something listens (or holds the address without
    ``SO_REUSEADDR``) where the guard would sit, ``(FREE, sock)`` with the guard, or
    ``(ABSENT, None)`` when no guard address exists on this machine.
    """
    for endpoint in plan.guards:
        try:
            sock = _new_socket(endpoint, sock_type)
        except OSError as error:
            if error.errno in _ABSENT_ERRNOS:
                continue
            raise
        try:
            if not _WINDOWS:
                # Lets the consumer bind beside the guard (see the table above). On Windows
                # SO_REUSEADDR would let this socket *steal* a bound port, so it stays plain.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((endpoint.address, port))
        except OSError as error:
            sock.close()
            if error.errno in _ABSENT_ERRNOS:
                continue
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return ProbeResult.BUSY, None
            raise
        return ProbeResult.FREE, sock
    return ProbeResult.ABSENT, None


def guard_endpoint_of(sock: socket.socket) -> Endpoint:
    """The endpoint a guard socket is bound to."""
    address = sock.getsockname()[0]
    return Endpoint(sock.family, address)


def same_place(a: Endpoint, b: Endpoint) -> bool:
    return a.family == b.family and a.address == b.address


def is_linux() -> bool:
    return _LINUX
