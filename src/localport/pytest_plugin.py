"""The localport pytest plugin: port fixtures that are safe under pytest-xdist.

Registered as the ``pytest11`` entry point ``localport``, so ``-p no:localport`` turns it off.
It loads in every pytest run of every project that installs localport, so importing it costs
next to nothing: localport's core is imported by the first fixture that needs it.

Fixtures, all named ``localport_*`` so that none shadows another plugin's: ``localport_tcp_port``,
``localport_udp_port``, ``localport_port_factory``, ``localport_reservation_factory``, their
session-scoped counterparts ``localport_session_port_factory`` and
``localport_session_reservation_factory``, and ``localport_server_factory``.
When a test fails with ``EADDRINUSE``, its report gets a section naming who holds the port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator, Iterator, Sequence

    from ._arguments import Proto
    from ._launch import Server
    from ._pytest_report import Bind, BindWatch
    from ._reservation import Reservation

_RANGE_HELP = "port range to pick from, as LOW-HIGH (default: LOCALPORT_RANGE, else 49152-65535)"
_DIR_HELP = "lock directory shared with other processes (default: LOCALPORT_DIR, else private)"
_REPLACE_HELP = (
    "make other plugins' port fixtures localport-backed: any of anyio, pytest-asyncio, aiohttp "
    "(separated by spaces or commas)"
)
_REUSE_HELP = (
    "count ports held only by TIME_WAIT leftovers as free, for servers that set SO_REUSEADDR "
    "(default: LOCALPORT_REUSEADDR)"
)


class PortFactory(Protocol):
    """The type of ``localport_port_factory`` and ``localport_session_port_factory``."""

    def __call__(
        self, *, name: str | None = None, proto: Proto = "tcp", host: str = "127.0.0.1"
    ) -> int: ...


class ReservationFactory(Protocol):
    """The type of ``localport_reservation_factory`` and its session-scoped counterpart."""

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
    group.addoption(
        "--localport-replace",
        dest="localport_replace",
        action="append",
        metavar="PLUGIN",
        help=_REPLACE_HELP,
    )
    group.addoption(
        "--localport-reuseaddr",
        dest="localport_reuseaddr",
        action="store_true",
        default=None,
        help=_REUSE_HELP,
    )
    parser.addini("localport_range", _RANGE_HELP, default="")
    parser.addini("localport_dir", _DIR_HELP, default="")
    parser.addini("localport_replace", _REPLACE_HELP, type="args", default=[])
    parser.addini("localport_reuseaddr", _REUSE_HELP, type="bool", default=None)


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
            from ._ranges import check_unprivileged

            try:
                self.port_range = check_unprivileged(parse_range(str(text), source), source)
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
        option, ini = config.getoption("localport_reuseaddr"), config.getini("localport_reuseaddr")
        #: None: reserve() reads LOCALPORT_REUSEADDR. (Before pytest 8 an unset bool ini key
        #: reads as [], whatever its default.)
        self.reuse_address: bool | None = True if option else ini if isinstance(ini, bool) else None
        self.replace = _replacements(
            config.getoption("localport_replace") or [], config.getini("localport_replace")
        )
        #: Every port a localport fixture handed out, for the EADDRINUSE report's advice.
        self.handed_out: set[int] = set()

    def describe(self) -> str:
        import os

        from ._ranges import DEFAULT_RANGE
        from ._registry import default_lock_dir

        # __init__ parsed LOCALPORT_RANGE (or refused it) when no option or ini key was given.
        low, high = self.port_range or DEFAULT_RANGE
        directory = self.lock_dir or os.environ.get("LOCALPORT_DIR") or default_lock_dir()
        return f"localport: ports {low}-{high}, lock directory {directory}"


def _replacements(option: list[str], ini: list[str]) -> list[str]:
    """The plugins named by --localport-replace (or else the ini key), checked."""
    source = "--localport-replace" if option else "localport_replace"
    names = [name for text in (option or ini) for name in text.replace(",", " ").split()]
    if not names:
        return []
    from ._pytest_replace import REPLACEMENTS

    unknown = [name for name in names if name not in REPLACEMENTS]
    if unknown:
        known = ", ".join(sorted(REPLACEMENTS))
        msg = f"{source}: no port fixtures of {', '.join(unknown)} to replace; known: {known}"
        raise pytest.UsageError(msg)
    return list(dict.fromkeys(names))


_SETTINGS_KEY = pytest.StashKey[_Settings]()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    global _BIND_WATCH  # noqa: PLW0603 - one audit hook per process: they cannot be removed
    settings = _Settings(config)
    config.stash[_SETTINGS_KEY] = settings
    if _BIND_WATCH is None:
        from ._pytest_report import BindWatch

        _BIND_WATCH = BindWatch()
    _BIND_WATCH.install()
    if settings.replace:
        # Registered last, in pytest_configure: fixtures of a plugin registered later win over
        # earlier plugins' of the same name (a project's conftest still wins over both).
        from ._pytest_replace import REPLACEMENTS

        for name in settings.replace:
            plugin = REPLACEMENTS[name]()
            config.pluginmanager.register(plugin, f"localport-replaces-{name}")


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
            reuse_address=self.settings.reuse_address,
        )
        self.held.append(reservation)
        self.settings.handed_out.add(reservation.port)
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
def localport_tcp_port(_localport_pool: _Pool) -> int:
    """A TCP port reserved on 127.0.0.1 for this test, released after it.

    Bind it with a plain ``bind(("127.0.0.1", localport_tcp_port))``: no other test, xdist worker or
    test run sharing the lock directory gets it meanwhile.
    """
    return _localport_pool.port()


@pytest.fixture
def localport_udp_port(_localport_pool: _Pool) -> int:
    """A UDP port reserved on 127.0.0.1 for this test, released after it."""
    return _localport_pool.port(proto="udp")


@pytest.fixture
def localport_port_factory(_localport_pool: _Pool) -> PortFactory:
    """Reserve any number of ports: ``(*, name=None, proto="tcp", host="127.0.0.1") -> int``.

    Every port is released when the test ends.
    """
    return _localport_pool.port


@pytest.fixture
def localport_reservation_factory(_localport_pool: _Pool) -> ReservationFactory:
    """Like ``localport_port_factory``, but returns the :class:`~localport.Reservation`.

    For tests that want ``.listen()``, ``.socket()`` or ``.url()``; released when the test ends.
    """
    return _localport_pool.reserve


@pytest.fixture(scope="session")
def localport_session_port_factory(_localport_session_pool: _Pool) -> PortFactory:
    """``localport_port_factory`` for session-scoped fixtures: ports live until the session ends."""
    return _localport_session_pool.port


@pytest.fixture(scope="session")
def localport_session_reservation_factory(_localport_session_pool: _Pool) -> ReservationFactory:
    """``localport_reservation_factory`` for session-scoped fixtures."""
    return _localport_session_pool.reserve


class ServerFactory(Protocol):
    """The type of ``localport_server_factory``: :func:`localport.launch`'s signature."""

    def __call__(self, cmd: Sequence[str] | str, **options: Any) -> Server: ...


@pytest.fixture
def localport_server_factory(request: pytest.FixtureRequest) -> Iterator[ServerFactory]:
    """Start servers with :func:`localport.launch`; every one is stopped when the test ends.

    ``localport_server_factory(["python", "-m", "http.server", "{port}"])`` returns a
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
#
# The work is in localport._pytest_report; the hooks must live in the plugin module itself.

_BIND_WATCH: BindWatch | None = None
_Binds: TypeAlias = "dict[str, list[Bind]]"
_BINDS_KEY = pytest.StashKey[_Binds]()


# Old-style wrappers (hookwrapper=True): the plugin loads for everyone who installs localport,
# whatever their pytest version.
def _watch_binds(item: pytest.Item, when: str) -> Iterator[None]:
    watch = _BIND_WATCH
    if watch is None:
        yield
        return
    watch.start()
    try:
        yield
    finally:
        item.stash.setdefault(_BINDS_KEY, {})[when] = watch.stop()


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
    try:
        section = _report_section(item, call.excinfo.value, call.when)
    except Exception:  # noqa: BLE001 - a diagnostic must never turn a failure into an error
        return
    if section is not None:
        report.sections.append(section)


def _report_section(item: pytest.Item, error: BaseException, when: str) -> tuple[str, str] | None:
    from ._pytest_report import address_in_use, failed_bind, who_text

    in_use = address_in_use(error)
    if in_use is None:
        return None
    found = failed_bind(in_use, item.stash.get(_BINDS_KEY, {}).get(when, []))
    if found is None:
        return None
    port, bind = found
    settings = item.config.stash[_SETTINGS_KEY]
    text = who_text(port, settings.lock_dir, from_fixture=port in settings.handed_out, bind=bind)
    return f"localport: who holds port {port}", text
