"""``launch()``, the waits and ``localport_server_factory``: real dev servers, real HTTP."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import queue
import shutil
import signal
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import localport
from helpers import LISTENING_CHILD, needs_ipv6
from localport import (
    PortInUseError,
    ServerStartError,
    WaitTimeoutError,
    launch,
    wait_until_listening,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

SERVERS = Path(__file__).parent / "servers"

# Ports of our own (tests/conftest.py explains the plan: 24000-26999 are spoken for, and
# 24700-24999 in particular by other test files; these stay below the kernel's ephemeral range
# too). The sticky name re-reserves its port on the second launch, and the wait_until_free
# tests bind fixed numbers, so neither may pick from the default range other workers share.
STICKY_RANGE = (27000, 27049)
FREED_PORT = 27098
STAYS_HELD_PORT = 27099

# Long enough for a Python child to start and print under -n 4, short enough to keep the
# file quick: the tests that wait this long expect the wait to run out.
SHORT_READY_TIMEOUT = 2.0

# Each inner pytest run keeps the outer suite's plugins out (as in test_pytest_plugin.py).
QUIET = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:asyncio")

HTTP_SERVER = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]

# Reports the port variables it was given; binds the port it is told on the command line.
ENV_REPORTER = """
import http.server, json, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({name: os.environ.get(name) for name in ("PORT", "WEB_PORT")})
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

IGNORES_SIGTERM = """
import http.server, signal, sys
signal.signal(signal.SIGTERM, signal.SIG_IGN)
address = ("127.0.0.1", int(sys.argv[1]))
http.server.HTTPServer(address, http.server.SimpleHTTPRequestHandler).serve_forever()
"""

# Exits once it has answered a GET (on macOS the launcher's wait connects without one).
EXITS_AFTER_ONE_GET = """
import http.server, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        super().do_GET()
        self.server.answered = True

server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.answered = False
while not server.answered:
    server.handle_request()
"""

NODE_SERVER = """
require("http")
  .createServer((request, response) => response.end("hello from node"))
  .listen(Number(process.env.PORT), "127.0.0.1");
"""

# Direct HTTP, whatever proxy the developer's environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str) -> tuple[int, bytes]:
    with _OPENER.open(url, timeout=10) as response:
        return response.status, response.read()


def reserved_ports() -> set[int]:
    """The ports this test's lock directory (LOCALPORT_DIR, see conftest) has reserved."""
    return {info.port for info in localport.reservations()}


def _running_in_group(pgid: int) -> list[int]:
    found = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                found.append(pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def processes_left_in_group(pgid: int) -> list[int]:
    """The processes of group *pgid* still running, once SIGKILL has had a moment to land.

    launch() starts each server as the leader of a new session, so its group id is its PID.
    """
    deadline = time.monotonic() + 10
    while (left := _running_in_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def assert_stopped(server: localport.Server) -> None:
    assert server.poll() is not None
    assert processes_left_in_group(server.pid) == []
    # Not is_free(): the connection we made can leave TIME_WAIT behind on the port.
    assert server.port not in reserved_ports()


def touch_command(marker: Path) -> list[str]:
    """A command that leaves *marker* behind if it is ever started."""
    code = "import pathlib, sys; pathlib.Path(sys.argv[1]).touch()"
    return [sys.executable, "-c", code, str(marker)]


# -- real dev servers ------------------------------------------------------------------------------


def test_python_http_server_serves_its_directory_until_stopped(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from http.server")
    echo = io.StringIO()
    server = localport.launch(HTTP_SERVER, cwd=tmp_path, echo=echo)
    with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port in reserved_ports()
        assert fetch(f"{server.url}/hello.txt") == (200, b"hello from http.server")
        assert server.stop() == -signal.SIGTERM
    assert_stopped(server)
    # The output is kept, and echoed, line by line.
    request_line = '"GET /hello.txt HTTP/1.1" 200'
    assert any(request_line in line for line in server.output_tail)
    assert request_line in echo.getvalue()


def test_a_flask_app_answers_on_its_reserved_port() -> None:
    command = [sys.executable, "-m", "flask", "--app", "flask_app", "run"]
    command += ["--port", "{port}", "--host", "127.0.0.1", "--no-reload"]
    with localport.launch(command, cwd=SERVERS) as server:
        assert fetch(server.url) == (200, b"hello from flask")
    assert_stopped(server)


def test_a_uvicorn_app_answers_on_its_reserved_port() -> None:
    command = [sys.executable, "-m", "uvicorn", "asgi_app:app"]
    command += ["--port", "{port}", "--host", "127.0.0.1"]
    with localport.launch(command, cwd=SERVERS) as server:
        assert fetch(server.url) == (200, b"hello from uvicorn")
    assert_stopped(server)


def test_a_django_runserver_answers_on_its_reserved_port() -> None:
    command = [sys.executable, "manage.py", "runserver", "127.0.0.1:{port}", "--noreload"]
    with localport.launch(command, cwd=SERVERS / "django_project") as server:
        assert fetch(server.url) == (200, b"hello from django")
    assert_stopped(server)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_node_server_finds_its_port_in_the_environment() -> None:
    with localport.launch(["node", "-e", NODE_SERVER]) as server:
        assert fetch(server.url) == (200, b"hello from node")
    assert_stopped(server)


def test_stopping_a_server_stops_the_children_it_started(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("served by a child")
    code = "import subprocess, sys; subprocess.run(sys.argv[1:])"
    with localport.launch([sys.executable, "-c", code, *HTTP_SERVER], cwd=tmp_path) as server:
        # launch() returned, so the child listens: the listener may be a child of the command.
        (child,) = psutil.Process(server.pid).children()
        assert sorted(_running_in_group(server.pid)) == sorted([server.pid, child.pid])
        assert fetch(f"{server.url}/hello.txt") == (200, b"served by a child")
    assert_stopped(server)  # the child too: it was in the server's process group


def test_a_server_that_ignores_sigterm_is_killed_after_the_stop_timeout() -> None:
    with localport.launch([sys.executable, "-c", IGNORES_SIGTERM, "{port}"]) as server:
        assert server.stop(timeout=0.5) == -signal.SIGKILL
    assert_stopped(server)


def test_a_server_that_exits_by_itself_gives_its_port_back_on_wait(tmp_path: Path) -> None:
    with localport.launch(
        [sys.executable, "-c", EXITS_AFTER_ONE_GET, "{port}"], cwd=tmp_path
    ) as server:
        assert fetch(server.url)[0] == 200
        assert server.wait(timeout=30) == 0
        assert server.port not in reserved_ports()
    assert_stopped(server)


@pytest.mark.parametrize(
    ("env_var", "expected"),
    [
        ("PORT", {"PORT": True, "WEB_PORT": False}),
        (["PORT", "WEB_PORT"], {"PORT": True, "WEB_PORT": True}),
        (None, {"PORT": False, "WEB_PORT": False}),
    ],
    ids=["one", "two", "none"],
)
def test_the_server_gets_its_port_in_the_named_environment_variables(
    monkeypatch: pytest.MonkeyPatch, env_var: str | list[str] | None, expected: dict[str, bool]
) -> None:
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("WEB_PORT", raising=False)
    command = [sys.executable, "-c", ENV_REPORTER, "{port}"]
    with localport.launch(command, env_var=env_var) as server:
        status, body = fetch(server.url)
    assert status == 200
    port = str(server.port)
    assert json.loads(body) == {name: port if given else None for name, given in expected.items()}
    assert_stopped(server)


# -- servers that do not come up -------------------------------------------------------------------


def test_a_server_that_crashes_at_start_fails_with_its_exit_code_and_last_words() -> None:
    code = "import sys; print('starting', flush=True); sys.stderr.write('fatal: no config\\n')"
    code += "; sys.exit(3)"
    with pytest.raises(ServerStartError) as caught:
        localport.launch([sys.executable, "-c", code], ready_timeout=30)
    error = caught.value
    # An exit code means the wait ended because the process did, not because time ran out.
    assert error.returncode == 3
    assert error.output[-1] == "fatal: no config"
    assert "exited with code 3 before listening" in str(error)
    assert "fatal: no config" in str(error)
    assert error.port not in reserved_ports()
    # It crosses xdist workers intact.
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.port, copy.returncode, copy.output) == (error.port, 3, error.output)
    assert str(copy) == str(error)


def test_a_server_that_never_listens_is_stopped_when_the_wait_runs_out() -> None:
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(600)"
    with pytest.raises(ServerStartError) as caught:
        localport.launch([sys.executable, "-c", code], ready_timeout=SHORT_READY_TIMEOUT)
    error = caught.value
    assert error.returncode is None
    assert f"did not listen on it within {SHORT_READY_TIMEOUT:g} s" in str(error)
    pid = int(error.output[0])
    assert processes_left_in_group(pid) == []
    assert error.port not in reserved_ports()


LISTENS_ELSEWHERE = """
import socket, time
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
time.sleep(600)
"""


def test_a_server_listening_on_another_port_fails_at_once_not_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        localport.launch([sys.executable, "-c", LISTENS_ELSEWHERE], ready_timeout=60)
    # The bound: reported within 5 s (it takes about one second), not after 60.
    assert time.monotonic() - started < 5
    error = caught.value
    elsewhere = int(error.output[0])
    assert elsewhere != error.port
    assert f"listens on 127.0.0.1:{elsewhere}, not {error.port}" in str(error)
    assert "its command ignores {port} or $PORT" in str(error)
    assert error.returncode is None


def test_a_server_listening_elsewhere_at_the_timeout_is_told_where_it_listens() -> None:
    # The timeout's message for a server whose tree listens elsewhere (a timeout shorter than
    # the one-second grace ends the wait first): asked of a started, listening child.
    from localport._child import Child
    from localport._readiness import Readiness

    lines: queue.Queue[str] = queue.Queue()
    child = Child(
        [sys.executable, "-c", LISTENS_ELSEWHERE], cwd=None, env=os.environ, sink=lines.put
    )
    try:
        elsewhere = int(lines.get(timeout=30))
        failure = Readiness(child, 9, "127.0.0.1", "{port}").timed_out(0.8)
    finally:
        child.stop()
    assert "did not listen on it within 0.8 s" in failure.reason
    assert f"listens on 127.0.0.1:{elsewhere} instead: pass {{port}} to it" in failure.reason


def test_an_explicit_port_another_process_holds_fails_before_anything_starts(
    spawn: Any, tmp_path: Path
) -> None:
    holder = spawn(LISTENING_CHILD)
    port = holder.read()
    marker = tmp_path / "started"
    with pytest.raises(PortInUseError) as caught:
        localport.launch(touch_command(marker), port=port)
    assert caught.value.port == port
    assert caught.value.errno == errno.EADDRINUSE
    assert f"PID {holder.pid}" in str(caught.value)
    assert not marker.exists()
    assert reserved_ports() == set()


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"cmd": []}, TypeError, "cmd must be a non-empty list of str"),
        ({"cmd": 5}, TypeError, "cmd must be a non-empty list of str"),
        ({"cmd": ["python", 5]}, TypeError, "cmd must be a non-empty list of str"),
        ({"ready_timeout": 0}, ValueError, "ready_timeout must be a number of seconds > 0"),
        ({"ready_timeout": True}, TypeError, "ready_timeout must be a number of seconds > 0"),
        ({"env_var": "1BAD"}, ValueError, "env_var must be an environment variable name"),
        ({"env_var": ["PORT", "MY-PORT"]}, ValueError, "env_var must be an environment"),
    ],
    ids=[
        "empty-cmd",
        "int-cmd",
        "int-argument",
        "zero-timeout",
        "bool-timeout",
        "digit-var",
        "dash-var",
    ],
)
def test_bad_arguments_fail_before_anything_starts(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    marker = tmp_path / "started"
    arguments: dict[str, Any] = {"cmd": touch_command(marker), **options}
    with pytest.raises(error, match=match):
        localport.launch(**arguments)
    assert not marker.exists()
    assert reserved_ports() == set()


def test_the_same_name_gets_the_same_port_on_the_next_launch(tmp_path: Path) -> None:
    options: dict[str, Any] = {"name": "launch-sticky", "port_range": STICKY_RANGE, "cwd": tmp_path}
    with localport.launch(HTTP_SERVER, **options) as first:
        assert STICKY_RANGE[0] <= first.port <= STICKY_RANGE[1]
        assert [(info.port, info.name) for info in localport.reservations()] == [
            (first.port, "launch-sticky")
        ]
    assert_stopped(first)
    with localport.launch(HTTP_SERVER, **options) as second:
        assert second.port == first.port
        assert fetch(second.url)[0] == 200
    assert_stopped(second)


# -- waiting for a port ----------------------------------------------------------------------------


def test_waiting_for_a_port_nobody_listens_on_runs_out_of_time() -> None:
    with localport.reserve() as reservation, pytest.raises(WaitTimeoutError) as caught:
        localport.wait_until_listening(reservation.port, timeout=0.2)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert (error.port, error.timeout) == (reservation.port, 0.2)
    assert str(error) == f"port {reservation.port}: nothing listened within 0.2 s"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.port, copy.timeout, str(copy)) == (error.port, error.timeout, str(error))


@pytest.fixture
def listen_later() -> Iterator[Any]:
    """``listen_later(reservation)``: a thread starts listening on it 0.3 s later.

    Returns an event set just before ``listen()``: whoever sees the listener sees it set.
    """
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []

    def start(reservation: localport.Reservation) -> threading.Event:
        about_to_listen = threading.Event()

        def listen() -> None:
            time.sleep(0.3)
            about_to_listen.set()
            sockets.append(reservation.listen())

        thread = threading.Thread(target=listen)
        thread.start()
        threads.append(thread)
        return about_to_listen

    yield start
    for thread in threads:
        thread.join()
    for sock in sockets:
        sock.close()


def test_waiting_returns_once_a_listener_appears(listen_later: Any) -> None:
    with localport.reserve() as reservation:
        about_to_listen = listen_later(reservation)
        localport.wait_until_listening(reservation.port, timeout=30)
        assert about_to_listen.is_set()
        with socket.create_connection(reservation.address, timeout=5):
            pass


def test_stop_if_ends_the_wait_early() -> None:
    calls: list[None] = []

    def stop_if() -> bool:
        calls.append(None)
        return len(calls) == 3

    with localport.reserve() as reservation:
        # Nothing ever listens: returning at all (with 30 s to go) is stop_if's doing.
        localport.wait_until_listening(reservation.port, timeout=30, stop_if=stop_if)
    assert len(calls) == 3


def listener_on(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT from a rerun
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_waiting_for_a_port_to_be_free_returns_once_its_listener_closes() -> None:
    listener = listener_on(FREED_PORT)
    about_to_close = threading.Event()

    def close_later() -> None:
        time.sleep(0.3)
        about_to_close.set()
        listener.close()

    thread = threading.Thread(target=close_later)
    thread.start()
    try:
        localport.wait_until_free(FREED_PORT, timeout=30)
        assert about_to_close.is_set()
    finally:
        thread.join()
        listener.close()


def test_waiting_for_a_port_to_be_free_runs_out_of_time_while_it_is_held() -> None:
    with listener_on(STAYS_HELD_PORT), pytest.raises(WaitTimeoutError) as caught:
        localport.wait_until_free(STAYS_HELD_PORT, timeout=0.2)
    assert isinstance(caught.value, TimeoutError)
    assert str(caught.value) == f"port {STAYS_HELD_PORT}: still held within 0.2 s"


# -- the localport_server_factory fixture -----------------------------------------------------


def test_server_factory_stops_every_server_when_its_test_ends(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    records = tmp_path / "pids"
    records.mkdir()
    pytester.makepyfile(
        f"""
        import os, sys, urllib.request

        HTTP_SERVER = [sys.executable, "-m", "http.server", "{{port}}", "--bind", "127.0.0.1"]
        OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))

        def record(name, server):
            with open(os.path.join({str(records)!r}, name), "w") as file:
                file.write(str(server.pid))

        def test_serves(localport_server_factory, tmp_path):
            (tmp_path / "hello.txt").write_text("hello from the factory")
            server = localport_server_factory(HTTP_SERVER, cwd=tmp_path)
            record("passed", server)
            with OPENER.open(server.url + "/hello.txt", timeout=10) as response:
                assert response.read() == b"hello from the factory"

        def test_fails_with_its_server_running(localport_server_factory):
            record("failed", localport_server_factory(HTTP_SERVER))
            assert False, "its server is stopped all the same"
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=1, failed=1)
    pids = {path.name: int(path.read_text()) for path in records.iterdir()}
    assert set(pids) == {"passed", "failed"}
    for pid in pids.values():
        assert processes_left_in_group(pid) == []
    assert reserved_ports() == set()  # the inner run shares this test's LOCALPORT_DIR


def test_a_crashing_server_that_leaves_a_child_behind_fails_at_once() -> None:
    """The child keeps the output pipe open; launch() must not wait for it to go."""
    code = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print('fatal: boom', flush=True)\n"
        "sys.exit(2)\n"
    )
    started = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        launch([sys.executable, "-c", code], ready_timeout=30)
    assert caught.value.returncode == 2
    assert "fatal: boom" in caught.value.output
    # Generous, and not the point: the wait must not last as long as the child (60 s).
    assert time.monotonic() - started < 30


@needs_ipv6
def test_a_listener_clients_of_the_host_cannot_reach_does_not_count() -> None:
    with socket.socket(socket.AF_INET6) as listener:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind(("::1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(WaitTimeoutError):
            wait_until_listening(port, host="127.0.0.1", timeout=0.5)
        wait_until_listening(port, host="::1", timeout=5)
        wait_until_listening(port, host="localhost", timeout=5)
