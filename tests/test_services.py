"""The Python side of several services: ``launch_services()``, ``project_directory()``,
scoped sticky names, ``launch(reservation=...)``, ``{fd}`` and ``{port:NAME}`` in ``launch``
and ``localport run``, and ``localport wait``. Real processes and real HTTP on loopback."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

import localport
from helpers import LISTENING_CHILD, needs_ipv6
from localport import PlaceholderError, ServerStartError, launch, launch_services

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shells and signals")

SERVICE = str(Path(__file__).parent / "servers" / "service.py")
PY = shlex.quote(sys.executable)


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_launch_services_starts_servers_and_workers_that_know_each_other(
    tmp_path: Path,
) -> None:
    lines: list[tuple[str, str]] = []
    services = {
        "api": [sys.executable, SERVICE, "{port}"],
        "web": f"{PY} {shlex.quote(SERVICE)} $PORT --api {{url:api}} --api-port {{port:api}}",
        "worker": f"{PY} -c \"print('working', flush=True); import time; time.sleep(60)\"",
    }
    with launch_services(services, scope=tmp_path, output=lambda *pair: lines.append(pair)) as up:
        assert list(up) == ["api", "web", "worker"]
        api, web, worker = up["api"], up["web"], up["worker"]
        assert api.port is not None
        assert web.port is not None
        assert worker.port is None
        assert worker.url is None
        assert api.url == f"http://127.0.0.1:{api.port}"
        answer = fetch(f"{web.url}/")
        assert answer["argv"] == ["--api", api.url, "--api-port", str(api.port)]
        assert answer["env"]["API_URL"] == api.url
        assert answer["env"]["WEB_PORT"] == answer["env"]["PORT"] == str(web.port)
        assert up.scope == str(tmp_path)
        assert up.exited() is None
        deadline = time.monotonic() + 30
        while ("worker", "working") not in lines:
            assert time.monotonic() < deadline, lines
            time.sleep(0.02)
        pids = [service.pid for service in up.values()]
    assert not [pid for pid in pids if alive(pid)]
    assert localport.reservations() == []


def test_launch_services_checks_everything_before_anything_starts(
    tmp_path: Path, lock_dir: Path
) -> None:
    marker = tmp_path / "ran"
    touch = f"touch {shlex.quote(str(marker))}"
    with pytest.raises(PlaceholderError, match=r"'web' names 'db'.*no port is recorded") as caught:
        launch_services({"api": f"{touch}; sleep 9 # {{port}}", "web": f"{touch} {{url:db}}"})
    assert caught.value.name == "db"
    with pytest.raises(TypeError, match="services must be a non-empty mapping"):
        launch_services({})
    with pytest.raises(ValueError, match="service 'api': the command must be non-empty"):
        launch_services({"api": "  "})
    with pytest.raises(TypeError, match="env must be a mapping"):
        launch_services({"api": f"{touch} {{port}}"}, env={"A": 1})  # type: ignore[dict-item]
    assert not marker.exists()
    assert list(lock_dir.glob("port-*.lock")) == []


def test_a_failing_service_stops_the_others_and_names_itself(tmp_path: Path) -> None:
    services = {
        "api": [sys.executable, SERVICE, "{port}"],
        "web": "echo broken >&2; exit 9 # {port}",
    }
    with pytest.raises(ServerStartError) as caught:
        launch_services(services, scope=tmp_path)
    error = caught.value
    assert error.service == "web"
    assert error.returncode == 9
    assert error.output == ("broken",)
    assert error.summary == f"web (port {error.port}) exited with code 9 before listening"
    assert pickle.loads(pickle.dumps(error)).service == "web"
    assert localport.reservations() == []


def test_scoped_names_give_each_project_its_own_stable_port(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    with localport.reserve(name="api", scope=one) as first:
        port = first.port
    with localport.reserve(name="api", scope=one) as again:
        assert again.port == port
    with localport.reserve(name="api", scope=two) as other:
        assert other.port != port
    with localport.reserve(name="api") as unscoped:
        assert unscoped.name == "api"
    infos = []
    with localport.reserve(name="api", scope=one):
        infos = localport.reservations()
    assert [(info.name, info.scope) for info in infos] == [("api", str(one))]


def test_project_directory_finds_the_procfile_then_the_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    deep = checkout / "src" / "app"
    deep.mkdir(parents=True)
    assert localport.project_directory(deep) == str(deep)
    (checkout / ".git").write_text("gitdir: elsewhere\n")  # a worktree's .git is a file
    assert localport.project_directory(deep) == str(checkout)
    (checkout / "src" / "Procfile").write_text("api: x {port}\n")
    assert localport.project_directory(deep) == str(checkout / "src")
    # A Procfile above the checkout belongs to something else.
    (tmp_path / "Procfile").write_text("other: y\n")
    (checkout / "src" / "Procfile").unlink()
    assert localport.project_directory(deep) == str(checkout)
    with pytest.raises(TypeError, match="start must be a path"):
        localport.project_directory(5)  # type: ignore[arg-type]


def test_launch_takes_over_a_reservation_the_caller_holds() -> None:
    reservation = localport.reserve(name="held")
    with pytest.raises(ValueError, match="do not pass port= too"):
        launch([sys.executable, SERVICE, "{port}"], reservation=reservation, port=5)
    with launch([sys.executable, SERVICE, "{port}"], reservation=reservation) as server:
        assert server.port == reservation.port
        assert fetch(server.url)["env"]["PORT"] == str(reservation.port)
    assert reservation.released


def test_launch_passes_a_listening_socket_as_fd() -> None:
    with launch([sys.executable, SERVICE, "fd:{fd}", "--fd", "{fd}"]) as server:
        answer = fetch(server.url)
        assert answer["pid"] == server.pid
        fd = int(answer["argv"][1])
        assert fd > 2


def test_launch_fills_port_and_url_of_a_recorded_name(tmp_path: Path) -> None:
    with pytest.raises(PlaceholderError, match="no port is recorded for the name 'api'"):
        launch([sys.executable, SERVICE, "{port}", "{url:api}"], scope=tmp_path)
    with launch([sys.executable, SERVICE, "{port}"], name="api", scope=tmp_path) as api:
        command = [sys.executable, SERVICE, "{port}", "{url:api}", "{port:api}"]
        with launch(command, scope=tmp_path) as web:
            assert fetch(web.url)["argv"] == [api.url, str(api.port)]


def localport_command(*arguments: str, cwd: Path, timeout: float = 60) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "localport", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_run_resolves_another_terminals_server_in_the_same_project(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    (project / "frontend").mkdir(parents=True)
    (project / "Procfile").write_text("api: unused {port}\n")
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localport",
            "run",
            "--name",
            "api",
            "--",
            sys.executable,
            SERVICE,
            "fd:{fd}",
        ],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert api.stderr is not None
        ready = api.stderr.readline()
        assert ready.startswith("localport: ready: http://127.0.0.1:"), ready
        api_url = ready.split()[2]
        # From a subdirectory, the same project: {url:api} is the server above.
        code = "import sys; print(sys.argv[1]); raise SystemExit(3)"
        result = localport_command(
            "run", "--", sys.executable, "-c", code, "{url:api}", cwd=project / "frontend"
        )
        assert result.stdout.splitlines()[0] == api_url
        missing = localport_command("run", "--", "true", "{port:nope}", cwd=project)
        assert missing.returncode == 2
        assert missing.stderr.strip() == (
            f"localport: no port is recorded for the name 'nope' in project "
            f"{project.resolve()}: start that server first, with that name"
        )
    finally:
        api.send_signal(signal.SIGINT)
        api.wait(30)
        assert api.stderr is not None
        api.stderr.close()


def test_wait_until_listening_free_and_timeout(tmp_path: Path, spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    assert localport_command("wait", str(port), cwd=tmp_path).returncode == 0
    held = localport_command("wait", str(port), "--free", "--timeout", "0.3", cwd=tmp_path)
    assert held.returncode == 8
    assert held.stderr.strip() == f"localport: port {port}: still held after 0.3 s"
    child.kill()
    assert localport_command("wait", str(port), "--free", cwd=tmp_path).returncode == 0
    nobody = localport_command("wait", str(port), "--timeout", "0.3", cwd=tmp_path)
    assert nobody.returncode == 8
    assert nobody.stderr.strip() == (f"localport: port {port}: nothing listened on it after 0.3 s")
    usage = localport_command("wait", str(port), "--udp", cwd=tmp_path)
    assert usage.returncode == 2
    assert "--udp goes with --free" in usage.stderr


def test_wait_returns_when_a_server_starts_listening_later(tmp_path: Path) -> None:
    with localport.reserve() as reservation:
        waiter = subprocess.Popen(
            [sys.executable, "-m", "localport", "wait", str(reservation.port)],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(0.5)
            assert waiter.poll() is None
            with reservation.listen():
                assert waiter.wait(30) == 0
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.wait(10)
            assert waiter.stderr is not None
            waiter.stderr.close()


def test_children_get_pythonunbuffered_unless_set(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": ""}
    with launch([sys.executable, SERVICE, "{port}"]) as server:
        assert fetch(server.url)["env"]["PYTHONUNBUFFERED"] == "1"
    with launch([sys.executable, SERVICE, "{port}"], env=env) as server:
        assert fetch(server.url)["env"]["PYTHONUNBUFFERED"] == ""


@needs_ipv6
def test_a_server_on_the_right_port_but_another_address_fails_at_once() -> None:
    code = """
import socket, sys, time
listener = socket.socket(socket.AF_INET6)
listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("::1", int(sys.argv[1])))
listener.listen()
time.sleep(600)
"""
    started = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        launch([sys.executable, "-c", code, "{port}"], ready_timeout=60)
    assert time.monotonic() - started < 5  # about one second, not the timeout
    port = caught.value.port
    assert caught.value.summary == (
        f"the server for port {port} listens on [::1]:{port}, not 127.0.0.1:{port}: its "
        f"command ignores {{host}}"
    )


def test_launch_on_a_port_this_process_reserved_says_to_pass_the_reservation() -> None:
    with localport.reserve() as reservation:
        with pytest.raises(ValueError, match=r"pass that reservation to launch\(reservation="):
            launch([sys.executable, SERVICE, "{port}"], port=reservation.port)
        assert not reservation.released
