"""The localport pytest plugin: port fixtures that are safe under pytest-xdist.

Registered as the ``pytest11`` entry point ``localport``, so ``-p no:localport`` turns it off.
It loads in every pytest run of every project that installs localport, so importing it costs
next to nothing: localport's core is imported by the first fixture that needs it.

Fixtures: ``free_port``, ``free_udp_port``, ``port_factory``, ``reservation_factory`` and their
session-scoped counterparts ``session_port_factory`` and ``session_reservation_factory``.
When a test fails with ``EADDRINUSE``, its report gets a section naming who holds the port.
"""

from __future__ import annotations

import errno
import re
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Sequence

    from ._arguments import Proto
    from ._launch import Server
    from ._reservation import Reservation

_RANGE_HELP = "port range to pick from, as LOW-HIGH (default: LOCALPORT_RANGE, else 49152-65535)"
_DIR_HELP = "lock directory shared with other processes (default: LOCALPORT_DIR, else private)"
#: How many socket.bind calls of the running test are remembered for an EADDRINUSE report.
_BINDS_KEPT = 32


class PortFactory(Protocol):
    """The type of ``port_factory`` and ``session_port_factory``."""

    def __call__(
        self, *, name: str | None = None, proto: Proto = "tcp", host: str = "127.0.0.1"
    ) -> int: ...


class ReservationFactory(Protocol):
    """The type of ``reservation_factory`` and ``session_reservation_factory``."""

    def __call__(
        self,
        *,
        name: str | None = None,
        proto: Proto = "tcp",
        host: str = "127.0.0.1",
        guard: bool = True,
    ) -> Reservation: ...


# -- options -------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("localport", "free ports for tests (localport)")
    group.addoption(
        "--localport-range", dest="localport_range", metavar="LOW-HIGH", help=_RANGE_HELP
    )
    group.addoption("--localport-dir", dest="localport_dir", metavar="DIR", help=_DIR_HELP)
    parser.addini("localport_range", _RANGE_HELP, default="")
    parser.addini("localport_dir", _DIR_HELP, default="")


class _Settings:
    """The range and lock directory the fixtures use, checked once at configure time."""

    def __init__(self, config: pytest.Config) -> None:
        import os

        self.port_range: tuple[int, int] | None = None
        option, ini = config.getoption("localport_range"), config.getini("localport_range")
        source, text = ("--localport-range", option) if option else ("localport_range", ini)
        if not text and os.environ.get("LOCALPORT_RANGE", "").strip():
            source, text = "LOCALPORT_RANGE", os.environ["LOCALPORT_RANGE"]
        if text:
            from ._arguments import parse_range

            try:
                self.port_range = parse_range(str(text), source)
            except ValueError as error:
                raise pytest.UsageError(str(error)) from None
        # Resolved once, here: a relative path would otherwise follow every chdir of a test.
        # The option is relative to the current directory, the ini key to the rootdir.
        self.lock_dir: str | None = None
        option, ini = config.getoption("localport_dir"), config.getini("localport_dir")
        if option:
            self.lock_dir = os.path.abspath(str(option))
        elif ini:
            self.lock_dir = os.path.join(str(config.rootpath), str(ini))

    def describe(self) -> str:
        import os

        from ._ranges import DEFAULT_RANGE
        from ._registry import default_lock_dir

        # __init__ parsed LOCALPORT_RANGE (or refused it) when no option or ini key was given.
        low, high = self.port_range or DEFAULT_RANGE
        directory = self.lock_dir or os.environ.get("LOCALPORT_DIR") or default_lock_dir()
        return f"localport: ports {low}-{high}, lock directory {directory}"


_SETTINGS_KEY = pytest.StashKey[_Settings]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SETTINGS_KEY] = _Settings(config)
    _BIND_WATCH.install()


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[_SETTINGS_KEY].describe()


# -- fixtures ------------------------------------------------------------------------------------


class _Pool:
    """The reservations of one fixture scope, all released when the scope ends."""

    def __init__(self, settings: _Settings) -> None:
        self.settings = settings
        self.held: list[Reservation] = []

    def reserve(
        self,
        *,
        name: str | None = None,
        proto: Proto = "tcp",
        host: str = "127.0.0.1",
        guard: bool = True,
    ) -> Reservation:
        from ._reserve import reserve

        reservation = reserve(
            name=name,
            proto=proto,
            host=host,
            guard=guard,
            port_range=self.settings.port_range,
            lock_dir=self.settings.lock_dir,
        )
        self.held.append(reservation)
        return reservation

    def port(
        self, *, name: str | None = None, proto: Proto = "tcp", host: str = "127.0.0.1"
    ) -> int:
        return self.reserve(name=name, proto=proto, host=host).port

    def release(self) -> None:
        for reservation in self.held:
            reservation.release()
        self.held.clear()


@pytest.fixture
def _localport_pool(request: pytest.FixtureRequest) -> Iterator[_Pool]:
    pool = _Pool(request.config.stash[_SETTINGS_KEY])
    yield pool
    pool.release()


@pytest.fixture(scope="session")
def _localport_session_pool(request: pytest.FixtureRequest) -> Iterator[_Pool]:
    pool = _Pool(request.config.stash[_SETTINGS_KEY])
    yield pool
    pool.release()


@pytest.fixture
def free_port(_localport_pool: _Pool) -> int:
    """A TCP port reserved on 127.0.0.1 for this test, released after it.

    Bind it with a plain ``bind(("127.0.0.1", free_port))``: no other test, xdist worker or
    test run sharing the lock directory gets it meanwhile.
    """
    return _localport_pool.port()


@pytest.fixture
def free_udp_port(_localport_pool: _Pool) -> int:
    """A UDP port reserved on 127.0.0.1 for this test, released after it."""
    return _localport_pool.port(proto="udp")


@pytest.fixture
def port_factory(_localport_pool: _Pool) -> PortFactory:
    """Reserve any number of ports: ``port_factory(*, name=None, proto="tcp", host="127.0.0.1")``.

    Every port is released when the test ends.
    """
    return _localport_pool.port


@pytest.fixture
def reservation_factory(_localport_pool: _Pool) -> ReservationFactory:
    """Like ``port_factory``, but returns the :class:`~localport.Reservation`.

    For tests that want ``.listen()``, ``.socket()`` or ``.url()``; released when the test ends.
    """
    return _localport_pool.reserve


@pytest.fixture(scope="session")
def session_port_factory(_localport_session_pool: _Pool) -> PortFactory:
    """``port_factory`` for session-scoped fixtures: ports live until the session ends."""
    return _localport_session_pool.port


@pytest.fixture(scope="session")
def session_reservation_factory(_localport_session_pool: _Pool) -> ReservationFactory:
    """``reservation_factory`` for session-scoped fixtures."""
    return _localport_session_pool.reserve


class ServerFactory(Protocol):
    """The type of ``server_factory``: :func:`localport.launch`'s signature."""

    def __call__(self, cmd: Sequence[str] | str, **options: Any) -> Server: ...


@pytest.fixture
def server_factory(request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """Start servers with :func:`localport.launch`; every one is stopped when the test ends.

    ``server_factory(["python", "-m", "http.server", "{port}"])`` returns a
    :class:`~localport.Server` once it listens; its last output lines are in
    ``server.output_tail``, and a server that fails to start raises
    :class:`~localport.ServerStartError` with them.
    """
    from ._launch import launch

    settings = request.config.stash[_SETTINGS_KEY]
    started: list[Server] = []

    def start(cmd: Sequence[str] | str, **options: Any) -> Server:
        options.setdefault("port_range", settings.port_range)
        options.setdefault("lock_dir", settings.lock_dir)
        server = launch(cmd, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- explaining EADDRINUSE -----------------------------------------------------------------------


class _BindWatch:
    """Remembers the addresses the running test asked ``socket.bind`` for.

    A plain ``sock.bind(("127.0.0.1", 8000))`` that fails says "[Errno 98] Address already in
    use" without the port; the ``socket.bind`` audit event (Python 3.8+) sees the address.
    Audit hooks cannot be removed, so the hook is installed once and does nothing unless a
    test's setup, call or teardown is running (about half a microsecond per audit event).
    """

    def __init__(self) -> None:
        self.installed = False
        self.active = False
        self.addresses: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def install(self) -> None:
        if not self.installed:
            sys.addaudithook(self._hook)
            self.installed = True

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.bind" or not self.active:
            return
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
            with self.lock:
                self.addresses.append((str(address[0]), address[1]))
                del self.addresses[:-_BINDS_KEPT]

    def start(self) -> None:
        with self.lock:
            self.addresses.clear()
        self.active = True

    def stop(self) -> list[tuple[str, int]]:
        self.active = False
        with self.lock:
            return list(self.addresses)


_BIND_WATCH = _BindWatch()
# asyncio: "error while attempting to bind on address ('127.0.0.1', 8000)"; uvicorn and others
# print "127.0.0.1:8000" or "port 8000".
_PORT_PATTERNS = (
    re.compile(r"address \('?[^',]*'?, (\d{1,5})"),
    re.compile(r"\bport[ =:]+(\d{1,5})\b", re.IGNORECASE),
    re.compile(r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|localhost):(\d{1,5})\b"),
)


_BINDS_KEY = pytest.StashKey[dict[str, list[tuple[str, int]]]]()


# Old-style wrappers (hookwrapper=True): the plugin loads for everyone who installs localport,
# whatever their pytest version.
def _watch_binds(item: pytest.Item, when: str) -> Iterator[None]:
    _BIND_WATCH.start()
    try:
        yield
    finally:
        item.stash.setdefault(_BINDS_KEY, {})[when] = _BIND_WATCH.stop()


# Fixtures bind ports too: their setup and teardown are watched like the test itself.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    yield from _watch_binds(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    yield from _watch_binds(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    yield from _watch_binds(item, "teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if call.excinfo is None or report.passed:
        return
    error = _address_in_use(call.excinfo.value)
    if error is None:
        return
    port = _port_of(error, item.stash.get(_BINDS_KEY, {}).get(call.when, []))
    if port is not None:
        settings = item.config.stash[_SETTINGS_KEY]
        report.sections.append((f"localport: who holds port {port}", _who_text(port, settings)))


def _address_in_use(error: BaseException) -> BaseException | None:
    """The EADDRINUSE error in *error*'s chain (``raise ... from`` and implicit context)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.EADDRINUSE:
            return current
        if "address already in use" in str(current).lower():
            return current
        current = current.__cause__ or current.__context__
    return None


def _port_of(error: BaseException, binds: list[tuple[str, int]]) -> int | None:
    port = getattr(error, "port", None)
    if isinstance(port, int):
        return port  # localport's own PortInUseError
    for pattern in _PORT_PATTERNS:
        match = pattern.search(str(error))
        if match and 0 < int(match.group(1)) < 65536:
            return int(match.group(1))
    # The last bind that asked for a port is the one that failed: the audit event fires
    # just before the system call.
    for _, asked in reversed(binds):
        if asked:
            return asked
    return None


def _who_text(port: int, settings: _Settings) -> str:
    try:
        from ._explain import explain
        from ._holders import who_holds
        from .cli._render import holder_line

        holders = who_holds(port, proto="both", lock_dir=settings.lock_dir)
    except Exception as error:  # noqa: BLE001 - the report must never fail over diagnostics
        return f"could not find out who holds port {port}: {error}"
    advice = "use the free_port fixture instead of a fixed port"
    lines = [f"port {port} is in use {explain(port, holders, instead=advice)}"]
    lines.extend(holder_line(holder) for holder in holders)
    return "\n".join(lines)
