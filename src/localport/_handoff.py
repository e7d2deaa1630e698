"""What a reservation is for: an address, and the sockets that hand it to a server.

:class:`ReservedAddress` is the part of :class:`localport.Reservation` that says where the
server goes (port, host, protocol, URL) and gives it a bound socket (the zero-gap handoff);
:mod:`localport._reservation` adds holding and releasing.
"""

from __future__ import annotations

import socket

from . import _platform
from ._addresses import SOCKET_KINDS, bind_address, url_host

# Proto and SocketProto at run time, not only for type checkers: the API reference resolves
# them in signatures.
from ._arguments import Proto, SocketProto, check_backlog, check_socket_proto, check_text

# The class below has a method named socket(); annotations inside it use this alias.
SocketType = socket.socket


class ReservedAddress:
    """The address a server is meant to bind, and sockets bound to it."""

    __slots__ = ("_host", "_name", "_port", "_proto")

    def __init__(self, *, port: int, host: str, proto: Proto, name: str | None) -> None:
        self._port = port
        self._host = host
        self._proto: Proto = proto
        self._name = name

    @property
    def port(self) -> int:
        """The reserved port."""
        return self._port

    @property
    def host(self) -> str:
        """The address the server is meant to bind (as given, normalized)."""
        return self._host

    @property
    def proto(self) -> Proto:
        """``"tcp"``, ``"udp"`` or ``"both"``."""
        return self._proto

    @property
    def name(self) -> str | None:
        """The sticky name, or ``None``."""
        return self._name

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, ready for ``bind()`` (for ``host="*"``, the IPv4 wildcard)."""
        if self._host == "*":
            return bind_address(self._host)[1], self._port
        return self._host, self._port

    def url(self, scheme: str = "http") -> str:
        """A URL that reaches a server on this reservation from this machine.

        A wildcard host maps to the loopback address of its family (``0.0.0.0`` to
        ``127.0.0.1``, ``::`` to ``[::1]``).
        """
        check_text(scheme, "scheme", "http")
        return f"{scheme}://{url_host(self._host)}:{self._port}"

    def socket(self, proto: SocketProto | None = None) -> socket.socket:
        """A new socket bound to the reserved address: the zero-gap handoff.

        The socket has ``SO_REUSEADDR`` (as servers set it), is IPv6-only for an IPv6 host other
        than ``::`` (which is dual-stack), and belongs to the caller, who closes it. Pass its
        ``fileno()`` to a server that takes a descriptor (uvicorn ``--fd``, gunicorn ``fd://``),
        with ``subprocess.Popen(..., pass_fds=[fd])``.

        :param proto: ``"tcp"`` or ``"udp"``; needed only for a reservation of ``"both"``.
        :raises LocalportError: if the reservation was released.
        """
        kind = SOCKET_KINDS[self._socket_proto(proto)]
        self._check_usable()
        family, address = bind_address(self._host)
        sock = socket.socket(family, kind)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(address != "::"))
            _platform.system.set_shared_address(sock)
            sock.bind((address, self._port))
        except BaseException:
            sock.close()
            raise
        return sock

    def listen(self, backlog: int = 128) -> SocketType:
        """A TCP socket bound to the reserved address and already listening.

        :param backlog: the ``listen()`` backlog, a positive int.
        """
        backlog = check_backlog(backlog)
        if self._proto == "udp":
            msg = "listen() needs a TCP reservation; this one is proto='udp' (use socket())"
            raise ValueError(msg)
        sock = self.socket("tcp")
        try:
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def _socket_proto(self, proto: object) -> SocketProto:
        if proto is None:
            if self._proto == "both":
                msg = "proto must be 'tcp' or 'udp' for a reservation of both protocols"
                raise ValueError(msg)
            return self._proto
        checked = check_socket_proto(proto)
        if self._proto not in (checked, "both"):
            msg = f"this reservation is proto={self._proto!r}, not {checked!r}"
            raise ValueError(msg)
        return checked

    def _check_usable(self) -> None:
        """Raise if the address may no longer be bound (a released reservation)."""
