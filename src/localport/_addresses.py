"""Addresses: where a reservation probes and guards, which binds collide, which listeners a
client reaches.

Two different rules live here, and mixing them up was a bug once:

- *collision* (:func:`conflicts`): would a socket already bound at one place make a plain
  ``bind()`` at another fail? A ``[::1]`` listener collides with nothing on 127.0.0.1.
- *reach* (:func:`client_addresses`, :func:`answers`): where do clients of a server bound to a
  host connect from this machine, and does a listener answer them? A ``[::1]`` listener does
  not answer a client of 127.0.0.1 either, but ``localhost`` may resolve to it.

Where the guard sits was measured in a private network namespace (kernel 6.x;
``tests/test_guard.py`` re-measures it on every run):

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

import functools
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._arguments import SocketProto
    from ._platform import SocketRecord

SOCKET_KINDS: dict[SocketProto, socket.SocketKind] = {
    "tcp": socket.SOCK_STREAM,
    "udp": socket.SOCK_DGRAM,
}
PROTO_OF_KIND: dict[socket.SocketKind, SocketProto] = {
    kind: proto for proto, kind in SOCKET_KINDS.items()
}
_WILDCARDS = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}


@dataclass(frozen=True)
class Endpoint:
    """One address to bind: family, address, and for IPv6 whether the socket is v6-only."""

    family: socket.AddressFamily
    address: str
    v6only: bool = True
    #: Bind with ``SO_REUSEADDR``. Such a probe still fails on any listener and on any socket
    #: bound without ``SO_REUSEADDR``, but not on ``TIME_WAIT`` leftovers or on our own guard:
    #: used for the dual-stack wildcard (which collides with the guard otherwise) and for a
    #: sticky name's own ports (see :mod:`localport._picker`).
    reuse: bool = False

    def describe(self) -> str:
        if self.family == socket.AF_INET6:
            return f"[{self.address}]"
        return self.address

    def same_place(self, other: Endpoint) -> bool:
        return self.family == other.family and self.address == other.address


@dataclass(frozen=True)
class Plan:
    """What to bind for one consumer host and one protocol."""

    #: The consumer's own address: bound for an instant before the lock is tried, so a port
    #: some other program holds costs a few microseconds to reject.
    cheap: Endpoint
    #: Bound once the lock and the guard are held: every address a client of the consumer may
    #: reach (a ``[::1]`` listener answers "localhost" as well as a 127.0.0.1 one does).
    probes: tuple[Endpoint, ...]
    #: Guard addresses in order of preference; the first that exists here is used.
    guards: tuple[Endpoint, ...]


_V4_LOOPBACK = Endpoint(socket.AF_INET, "127.0.0.1")
_V4_SECOND_LOOPBACK = Endpoint(socket.AF_INET, "127.0.0.2")
_V6_LOOPBACK = Endpoint(socket.AF_INET6, "::1")


def host_family(host: str) -> socket.AddressFamily:
    if host in ("localhost", "*"):
        return socket.AF_INET
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_address(host: str) -> tuple[socket.AddressFamily, str]:
    """The family and address a server for *host* binds (``localhost`` binds 127.0.0.1, and
    ``*``, every address, the IPv4 wildcard)."""
    if host == "localhost":
        return socket.AF_INET, "127.0.0.1"
    if host == "*":
        return socket.AF_INET, "0.0.0.0"
    return host_family(host), host


def client_addresses(host: str) -> list[tuple[socket.AddressFamily, str]]:
    """Where clients of a server bound to *host* (normalized) connect from this machine.

    A wildcard is reached through the loopback address of its own family (``0.0.0.0`` through
    127.0.0.1, ``::`` through ``[::1]``); ``localhost`` through either loopback address.
    """
    if host in ("127.0.0.1", "0.0.0.0"):
        return [(socket.AF_INET, "127.0.0.1")]
    if host in ("::1", "::"):
        return [(socket.AF_INET6, "::1")]
    if host in ("localhost", "*"):
        return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
    return [(host_family(host), host)]


def url_host(host: str) -> str:
    """The host part of a URL that reaches a server bound to *host* from this machine."""
    if host == "localhost":
        return host
    family, address = client_addresses(host)[0]  # "*": 127.0.0.1
    return f"[{address}]" if family == socket.AF_INET6 else address


@functools.lru_cache(maxsize=64)
def plan_for(host: str, sock_type: socket.SocketKind) -> Plan:
    """The probe and guard plan for a consumer on *host* (already normalized)."""
    udp = sock_type == socket.SOCK_DGRAM
    if host == "*":
        # Free on every address: the IPv4 wildcard, then a dual-stack [::] (absent without
        # IPv6), which fails on anything bound to the port on any address of either family.
        # No guard: every guard collides with a wildcard bind of its own family.
        wildcard = Endpoint(socket.AF_INET, "0.0.0.0")
        return Plan(wildcard, (wildcard, Endpoint(socket.AF_INET6, "::", v6only=False)), ())
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
    import ipaddress

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


# -- collision and reach -------------------------------------------------------------------------

_Place: TypeAlias = "tuple[socket.AddressFamily, str, bool | None]"


def unmapped(family: socket.AddressFamily, address: str) -> tuple[socket.AddressFamily, str]:
    """``::ffff:127.0.0.1`` (an IPv4 peer of a dual-stack socket) is an IPv4 address."""
    if family == socket.AF_INET6 and address.startswith("::ffff:") and "." in address:
        return socket.AF_INET, address[7:]
    return family, address


def conflicts(existing: _Place, wanted_place: _Place) -> bool:
    """Whether a socket at *existing* collides with a bind at *wanted_place* (Linux's rules).

    Each is ``(family, address, v6only)``.
    """
    family, address, socket_v6only = existing
    wanted_family, wanted, wanted_v6only = wanted_place
    if family == wanted_family:
        return address in (wanted, _WILDCARDS[family]) or wanted == _WILDCARDS[family]
    if family == socket.AF_INET6 and address == "::":
        return socket_v6only is not True  # a dual-stack [::] takes every IPv4 address too
    return wanted_family == socket.AF_INET6 and wanted == "::" and not wanted_v6only


def in_the_way_of(host: str, proto: SocketProto) -> Callable[[SocketRecord], bool]:
    """A test for sockets that would make a plain ``bind()`` for *host* fail, or that answer
    clients of *host* (a ``[::1]`` listener answers "localhost" as well as 127.0.0.1 does)."""
    plan = plan_for(host, SOCKET_KINDS[proto])
    endpoints = {(e.family, e.address, e.v6only) for e in (plan.cheap, *plan.probes)}

    def keep(item: SocketRecord) -> bool:
        family, address = unmapped(item.family, item.local[0])
        return any(conflicts((family, address, item.v6only), end) for end in endpoints)

    return keep


def answers(listener: SocketRecord, family: socket.AddressFamily, address: str) -> bool:
    """Whether *listener* accepts connections made to *address* of *family*."""
    wildcard = _WILDCARDS[listener.family]
    if listener.family == family:
        return listener.local[0] in (address, wildcard)
    # A dual-stack [::] listener takes IPv4 connections too.
    return family == socket.AF_INET and listener.local[0] == "::" and listener.v6only is False


def reaches(listener: SocketRecord, host: str) -> bool:
    """Whether a client of a server on *host* reaches *listener*."""
    return any(answers(listener, family, address) for family, address in client_addresses(host))
