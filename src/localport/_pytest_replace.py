"""Other plugins' port fixtures, served by localport: the opt-in ``localport_replace``.

``localport_replace = anyio pytest-asyncio aiohttp`` (or ``--localport-replace``) registers, in
``pytest_configure`` and so after every plugin that defines the originals, fixtures with the
same names, scopes and call signatures, whose ports localport reserves: free on every address
of both families (``host="*"``), so a wildcard or IPv6 bind works as it did, and held until the
fixture's scope ends, so no other test, xdist worker or test run gets them meanwhile. A
project's own conftest fixtures still win over these; the pytest how-to shows the two lines to
change there.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Protocol

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._arguments import SocketProto

#: Free on every address of both families (see :func:`localport.reserve`).
_ANY = "*"


class _Pool(Protocol):
    """What the replacements need of the plugin's fixture pools."""

    def port(
        self, *, name: str | None = None, proto: SocketProto = ..., host: str = ...
    ) -> int: ...


class AnyioFreePortFactory:
    """The value of anyio's ``free_tcp_port_factory`` / ``free_udp_port_factory``, from localport.

    Called as anyio's is: ``factory()`` or ``factory(family)``; every call reserves another port,
    free on every address whatever *family* says, and held until the session ends.
    """

    def __init__(self, pool: _Pool, kind: socket.SocketKind) -> None:
        self._pool = pool
        self._kind = kind

    @property
    def kind(self) -> socket.SocketKind:
        return self._kind

    def __call__(self, family: socket.AddressFamily | None = None) -> int:
        if family is not None and family not in (socket.AF_INET, socket.AF_INET6):
            msg = f"family must be socket.AF_INET, socket.AF_INET6 or None, got {family!r}"
            raise ValueError(msg)
        return self._pool.port(proto=_proto(self._kind), host=_ANY)


def _proto(kind: socket.SocketKind) -> SocketProto:
    return "tcp" if kind == socket.SOCK_STREAM else "udp"


class Anyio:
    """anyio's port fixtures (``anyio.pytest_plugin``), served by localport."""

    @pytest.fixture(scope="session")
    def free_tcp_port_factory(self, _localport_session_pool: _Pool) -> AnyioFreePortFactory:
        """localport's replacement of anyio's: TCP ports free on every address, held until the
        session ends; ``factory(family=None)``."""
        return AnyioFreePortFactory(_localport_session_pool, socket.SOCK_STREAM)

    @pytest.fixture(scope="session")
    def free_udp_port_factory(self, _localport_session_pool: _Pool) -> AnyioFreePortFactory:
        """localport's replacement of anyio's: UDP ports free on every address, held until the
        session ends; ``factory(family=None)``."""
        return AnyioFreePortFactory(_localport_session_pool, socket.SOCK_DGRAM)

    @pytest.fixture
    def free_tcp_port(self, _localport_pool: _Pool) -> int:
        """localport's replacement of anyio's: a TCP port free on every address, for this test."""
        return _localport_pool.port(proto="tcp", host=_ANY)

    @pytest.fixture
    def free_udp_port(self, _localport_pool: _Pool) -> int:
        """localport's replacement of anyio's: a UDP port free on every address, for this test."""
        return _localport_pool.port(proto="udp", host=_ANY)


class PytestAsyncio:
    """pytest-asyncio's port fixtures, served by localport."""

    @pytest.fixture
    def unused_tcp_port(self, _localport_pool: _Pool) -> int:
        """localport's replacement of pytest-asyncio's: a TCP port free on every address."""
        return _localport_pool.port(proto="tcp", host=_ANY)

    @pytest.fixture
    def unused_udp_port(self, _localport_pool: _Pool) -> int:
        """localport's replacement of pytest-asyncio's: a UDP port free on every address."""
        return _localport_pool.port(proto="udp", host=_ANY)

    @pytest.fixture(scope="session")
    def unused_tcp_port_factory(self, _localport_session_pool: _Pool) -> Callable[[], int]:
        """localport's replacement of pytest-asyncio's: ``factory()`` reserves another TCP port
        free on every address each call, held until the session ends."""
        return lambda: _localport_session_pool.port(proto="tcp", host=_ANY)

    @pytest.fixture(scope="session")
    def unused_udp_port_factory(self, _localport_session_pool: _Pool) -> Callable[[], int]:
        """localport's replacement of pytest-asyncio's: ``factory()`` reserves another UDP port
        free on every address each call, held until the session ends."""
        return lambda: _localport_session_pool.port(proto="udp", host=_ANY)


class Aiohttp:
    """aiohttp's port fixture (``aiohttp.pytest_plugin``), served by localport."""

    @pytest.fixture
    def aiohttp_unused_port(self, _localport_pool: _Pool) -> Callable[[], int]:
        """localport's replacement of aiohttp's: ``unused_port()`` reserves a TCP port free on
        every address each call, held until the test ends (aiohttp's ``unused_port`` fixture
        hands out this same function)."""
        return lambda: _localport_pool.port(proto="tcp", host=_ANY)


#: Each name ``localport_replace`` accepts, and the fixtures it replaces.
REPLACEMENTS: dict[str, type] = {
    "aiohttp": Aiohttp,
    "anyio": Anyio,
    "pytest-asyncio": PytestAsyncio,
}
