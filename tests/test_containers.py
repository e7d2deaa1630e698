"""Containers behind a port (issue 13), with real podman containers.

The ``podman`` fixture makes podman usable once per session or skips with the reason (fails
instead where ``LOCALPORT_REQUIRE_PODMAN=1``, as CI sets it, so CI cannot skip them quietly):
its own containers.conf (runc, and ulimits root may set here) named by ``CONTAINERS_CONF``,
and the image ``localhost/bb:1`` imported from a busybox rootfs, under a file lock so that
xdist workers import it once. Every container a test starts has a name of its own and is
removed by the test's teardown. Fixed ports: 29600-29799, one or two per test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest
from filelock import FileLock

import localport
from helpers import LISTENING_CHILD
from localport import PortInUseError, who_holds
from localport._explain import explain

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

IMAGE = "localhost/bb:1"
CONTAINERS_CONF = """\
# localport's tests: runc (crun refuses a mixed cgroup hierarchy), and ulimits within what
# root may set where it lacks CAP_SYS_RESOURCE.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
"""
SHARED = Path(tempfile.gettempdir()) / f"localport-test-podman-{os.getuid()}"
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABELS = {LABEL_PROJECT: "shop", LABEL_SERVICE: "web"}


def unavailable(reason: str) -> None:
    if os.environ.get("LOCALPORT_REQUIRE_PODMAN") == "1":
        pytest.fail(f"LOCALPORT_REQUIRE_PODMAN=1, but {reason}")
    pytest.skip(reason)


#: Found once: some tests take podman off PATH for localport, not for themselves.
PODMAN = shutil.which("podman") or "podman"


def podman_run(*arguments: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The test's own podman: local, whatever CONTAINER_HOST a test sets for localport."""
    environment = {k: v for k, v in os.environ.items() if k not in ("CONTAINER_HOST", "PATH")}
    return subprocess.run(
        [PODMAN, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**environment, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
    )


def build_image(work: Path) -> None:
    """``localhost/bb:1``: busybox, a shell, and /www/index.html, made without any registry."""
    busybox = next(
        (p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)),
        shutil.which("busybox"),
    )
    if busybox is None:
        unavailable("no busybox to build the test image from (apt-get install busybox-static)")
    assert busybox is not None
    rootfs = work / "rootfs"
    shutil.rmtree(rootfs, ignore_errors=True)
    for directory in ("bin", "www", "tmp", "etc"):
        (rootfs / directory).mkdir(parents=True)
    shutil.copy(busybox, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    (rootfs / "www" / "index.html").write_text("localport\n")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        [PODMAN, "import", "-", IMAGE],
        stdin=tar.stdout,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    tar.wait(60)
    shutil.rmtree(rootfs, ignore_errors=True)
    if imported.returncode != 0:
        unavailable(f"podman import failed: {imported.stderr.strip()[-400:]}")


@pytest.fixture(scope="session")
def podman() -> Iterator[str]:
    """A usable podman, its containers.conf in CONTAINERS_CONF, and the test image."""
    program = shutil.which("podman")
    if program is None:
        unavailable("podman is not on PATH (apt-get install podman runc busybox-static)")
    assert program is not None
    SHARED.mkdir(mode=0o700, exist_ok=True)
    if SHARED.stat().st_uid != os.getuid() or SHARED.is_symlink():
        unavailable(f"{SHARED} belongs to someone else")
    conf = SHARED / "containers.conf"
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("CONTAINERS_CONF", str(conf))
        environment.delenv("CONTAINER_HOST", raising=False)
        environment.delenv("DOCKER_HOST", raising=False)
        with FileLock(str(SHARED / "setup.lock"), timeout=600):
            if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
                (SHARED / "containers.conf.new").write_text(CONTAINERS_CONF)
                (SHARED / "containers.conf.new").replace(conf)
            if podman_run("image", "exists", IMAGE).returncode != 0:
                build_image(SHARED)
        yield program


def inspect(name: str, template: str) -> str:
    return podman_run("inspect", "--format", template, name).stdout.strip()


@pytest.fixture
def container(podman: str) -> Iterator[Callable[..., str]]:
    """Start a container publishing 127.0.0.1:PORT -> :80 (and *also*, a second ``-p``);
    removed whatever happens."""
    names: list[str] = []

    def start(port: int, labels: dict[str, str] = LABELS, also: str = "") -> str:
        name = f"lp-test-{secrets.token_hex(4)}"
        names.append(name)
        label_options = [f"--label={key}={value}" for key, value in labels.items()]
        more = ["-p", also] if also else []
        started = podman_run(
            *("run", "-d", "--name", name, *label_options, "-p", f"127.0.0.1:{port}:80", *more),
            *(IMAGE, "/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"),
        )
        if started.returncode != 0:
            unavailable(f"podman cannot run a container here: {started.stderr.strip()[-400:]}")
        localport.wait_until_listening(port, timeout=60)
        return name

    yield start
    for name in names:
        podman_run("rm", "-f", "-t", "0", name)


def cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localport", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def address_of(name: str) -> str:
    return inspect(name, "{{.NetworkSettings.IPAddress}}")


# -- who, list, the pytest report, PortInUseError ----------------------------------------------


def test_who_names_the_container_its_service_image_and_inner_address(container: Any) -> None:
    name = container(29600)
    result = cli("who", "29600")
    assert result.returncode == 0, result.stderr
    assert (
        f"port 29600 is in use by podman container {name} (compose project shop, service web, "
        f"image {IMAGE}), which publishes it and forwards to {address_of(name)}:80; "
        f"stop it with `podman stop {name}` or `localport kill 29600`"
    ) in result.stdout
    assert f"podman container {name} (service web, image {IMAGE})" in result.stdout


def test_who_json_carries_a_container_object(container: Any) -> None:
    name = container(29602)
    result = cli("who", "29602", "--json")
    assert result.returncode == 0, result.stderr
    (holder,) = json.loads(result.stdout)["holders"]
    assert holder["process_name"] == "conmon"
    assert holder["pid"] == int(inspect(name, "{{.State.ConmonPid}}"))
    assert holder["container"] == {
        "runtime": "podman",
        "id": inspect(name, "{{.Id}}"),
        "name": name,
        "image": IMAGE,
        "project": "shop",
        "service": "web",
        "inner_address": f"{address_of(name)}:80",
        "answered": True,
    }


def test_a_container_without_compose_labels_is_named_without_them(container: Any) -> None:
    name = container(29604, labels={})
    (holder,) = who_holds(29604)
    assert holder.container is not None
    assert (holder.container.name, holder.container.project, holder.container.service) == (
        name,
        None,
        None,
    )
    assert f"by podman container {name} (image {IMAGE}), which publishes it" in explain(
        29604, [holder]
    )


def test_list_all_names_the_container(container: Any) -> None:
    name = container(29606)
    table = cli("list", "--all")
    assert table.returncode == 0, table.stderr
    (row,) = [line for line in table.stdout.splitlines() if "127.0.0.1:29606" in line]
    assert f"podman container {name} (service web, image {IMAGE})" in row
    report = json.loads(cli("list", "--all", "--json").stdout)
    (entry,) = [h for h in report["listening"] if h["local_address"] == ["127.0.0.1", 29606]]
    assert entry["container"]["name"] == name
    assert entry["container"]["service"] == "web"


def test_a_label_with_control_characters_is_left_out(container: Any) -> None:
    title = "\x1b]0;owned\x07"  # would retitle the terminal of whoever reads it
    name = container(29614, labels={LABEL_PROJECT: f"shop{title}", LABEL_SERVICE: "web"})
    (holder,) = who_holds(29614)
    assert holder.container is not None
    assert (holder.container.name, holder.container.project) == (name, None)
    result = cli("who", "29614")
    assert f"by podman container {name} (service web, image {IMAGE})" in result.stdout
    assert "\x1b" not in result.stdout


def test_list_all_names_a_container_once_for_each_port_it_publishes(container: Any) -> None:
    name = container(29612, also="127.0.0.1:29613:8080")
    address = address_of(name)
    report = json.loads(cli("list", "--all", "--json").stdout)
    found = {
        h["local_address"][1]: h["container"]
        for h in report["listening"]
        if h["local_address"][1] in (29612, 29613)
    }
    assert {port: (c["name"], c["inner_address"]) for port, c in found.items()} == {
        29612: (name, f"{address}:80"),
        29613: (name, f"{address}:8080"),
    }


def test_who_holds_and_port_in_use_error_name_the_container(container: Any) -> None:
    name = container(29608)
    (holder,) = who_holds(29608)
    assert holder.container == localport.Container(
        "podman",
        inspect(name, "{{.Id}}"),
        name,
        IMAGE,
        "shop",
        "web",
        f"{address_of(name)}:80",
        answered=True,
    )
    with pytest.raises(PortInUseError) as caught:
        localport.reserve(29608)
    assert f"podman container {name} (compose project shop, service web, image {IMAGE})" in str(
        caught.value
    )
    assert caught.value.holders[0].container == holder.container


def test_the_pytest_report_names_the_container(container: Any, pytester: pytest.Pytester) -> None:
    name = container(29610)
    pytester.makepyfile(
        """
        import socket

        def test_binds_a_port_a_container_publishes():
            with socket.socket() as server:
                server.bind(("127.0.0.1", 29610))
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*localport: who holds port 29610*",
            f"port 29610 is in use by podman container {name} (compose project shop, "
            f"service web, image {IMAGE}), which publishes it*",
            f"*tcp*LISTEN*127.0.0.1*conmon*(podman container {name} (service web, image*",
        ]
    )


# -- kill ---------------------------------------------------------------------------------------


def running(pid: int) -> bool:
    """Whether *pid* is a live process (not a zombie awaiting its reaper)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_kill_stops_the_container_not_its_forwarder_and_frees_the_port(container: Any) -> None:
    name = container(29620)
    forwarder = int(inspect(name, "{{.State.ConmonPid}}"))
    result = cli("kill", "29620", "--yes", "--json", "--timeout", "1")
    assert result.returncode == 0, result.stderr
    (action,) = json.loads(result.stdout)["actions"]
    assert action["kind"] == "container"
    assert action["container"]["name"] == name
    assert action["command"] == f"podman stop -t 1 {name}"
    assert localport.is_free(29620)
    # Stopped by its runtime: conmon ignores SIGTERM, and a conmon killed outright leaves its
    # container running. Podman records the container as exited only when it stopped it.
    assert inspect(name, "{{.State.Status}}") == "exited"
    assert "died" in podman_run("events", "--stream=false", "--filter", f"container={name}").stdout
    # The runtime ends the forwarder once the container is down (a moment later).
    # A zombie counts as ended: PID 1 of some machines (a VM's init, a container's) reaps late.
    deadline = time.monotonic() + 30
    while running(forwarder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(forwarder)


def test_kill_dry_run_does_nothing_to_a_container(container: Any) -> None:
    name = container(29622)
    result = cli("kill", "29622", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert f"would stop podman container {name} (service web, image {IMAGE}) with " in (
        result.stdout
    )
    assert f"`podman stop -t 5 {name}`" in result.stdout
    assert inspect(name, "{{.State.Status}}") == "running"
    assert not localport.is_free(29622)
    planned = json.loads(cli("kill", "29622", "--dry-run", "--json").stdout)
    assert planned["dry_run"] is True
    assert planned["actions"][0]["container"]["name"] == name
    assert inspect(name, "{{.State.Status}}") == "running"


def test_kill_dry_run_does_nothing_to_a_process(spawn: Any) -> None:
    holder = spawn(LISTENING_CHILD)
    port = holder.read()
    result = cli("kill", str(port), "--dry-run", "--signal", "INT")
    assert result.returncode == 0, result.stderr
    assert f"would send SIGINT to PID {holder.pid} (" in result.stdout
    planned = json.loads(cli("kill", str(port), "--dry-run", "--json").stdout)
    [action] = planned["actions"]
    # The fields of a process, as everywhere in the command's JSON, and the signal to send.
    assert action == {
        "kind": "process",
        "pid": holder.pid,
        "cmdline": [sys.executable, "-c", action["cmdline"][2]],
        "command": f"{os.path.basename(sys.executable)} -c",
        "user": action["user"],
        "uid": os.getuid(),
        "started": action["started"],
        "signal": "SIGTERM",
        "grace": 5.0,
    }
    assert holder.process.poll() is None
    assert localport.is_free(port) is False


# -- runtimes that do not answer, and one that does ---------------------------------------------


class SilentSocket:
    """A Unix socket that accepts connections and never answers: a hung runtime."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="lp-")  # short: socket paths are limited
        self.path = os.path.join(self.directory, "api.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(16)
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(10)
        for connection in self.accepted:
            connection.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def silent_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentSocket]:
    silent = SilentSocket()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{silent.path}")
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{silent.path}")
    yield silent
    silent.close()


def test_an_ordinary_holder_costs_no_runtime_question(
    spawn: Any, silent_runtime: SilentSocket
) -> None:
    holder = spawn(LISTENING_CHILD)
    port = holder.read()
    (found,) = who_holds(port)
    assert (found.pid, found.container) == (holder.pid, None)
    # (Not listening(): it would rightly ask about other tests' containers.)
    assert silent_runtime.accepted == [], "a runtime was asked about an ordinary process"


def test_a_hung_runtime_still_leaves_the_container_named_within_2_s(
    container: Any, silent_runtime: SilentSocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = container(29630)
    full_id = inspect(name, "{{.Id}}")
    # No podman command either: all that is left is conmon's command line.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    started = time.monotonic()
    (holder,) = who_holds(29630)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert silent_runtime.accepted, "the API socket was not asked"
    assert holder.container == localport.Container("podman", full_id, name)
    assert (
        f"by podman container {name} (id {full_id[:12]}), whose port forwarder conmon "
        f"(PID {holder.pid}) holds it; podman did not answer, so its image and labels are "
        f"unknown (`podman inspect {name}` shows them)"
    ) in explain(29630, [holder])
    text = cli("who", "29630", env={"PATH": os.path.dirname(sys.executable)})
    assert f"by podman container {name} (id {full_id[:12]})" in text.stdout


def test_a_hung_api_socket_leaves_time_for_the_podman_command(
    container: Any, silent_runtime: SilentSocket
) -> None:
    # CONTAINER_HOST names the hung socket; the podman command must not follow it.
    name = container(29632)
    started = time.monotonic()
    (holder,) = who_holds(29632)
    assert time.monotonic() - started < 2.0
    assert silent_runtime.accepted, "the API socket was not asked"
    assert holder.container is not None
    assert holder.container.answered
    assert (holder.container.name, holder.container.image) == (name, IMAGE)


@pytest.fixture
def podman_service(podman: str) -> Iterator[str]:
    """``podman system service`` on a socket of its own: the Docker-compatible Engine API."""
    directory = tempfile.mkdtemp(prefix="lp-")
    path = os.path.join(directory, "podman.sock")
    service = subprocess.Popen(
        [podman, "system", "service", "--time=0", f"unix://{path}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(path):
            if service.poll() is not None or time.monotonic() > deadline:
                unavailable("podman system service did not start")
            time.sleep(0.05)
        yield path
    finally:
        service.terminate()
        try:
            service.wait(30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(30)
        shutil.rmtree(directory, ignore_errors=True)


def test_the_api_socket_names_and_stops_a_podman_container(
    container: Any, podman_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = container(29640)
    no_podman = {
        "CONTAINER_HOST": f"unix://{podman_service}",
        "PATH": os.path.dirname(sys.executable),
    }
    for key, value in no_podman.items():
        monkeypatch.setenv(key, value)
    (holder,) = who_holds(29640)
    assert holder.container is not None
    assert (holder.container.name, holder.container.image, holder.container.service) == (
        name,
        IMAGE,
        "web",
    )
    result = cli("kill", "29640", "--yes", "--json", "--timeout", "1", env=no_podman)
    assert result.returncode == 0, result.stderr
    (action,) = json.loads(result.stdout)["actions"]
    assert action["how"] == f"stopped through the API at {podman_service}"
    assert inspect(name, "{{.State.Status}}") == "exited"
    assert localport.is_free(29640)


#: A stand-in for a runtime's forwarder (there is no Docker here): a process with the forwarder's
#: command line (see forwarder_imitation), listening on -host-port, until its stdin closes.
DOCKER_PROXY = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[sys.argv.index("-host-port") + 1])))
server.listen()
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_docker_proxy_is_named_through_the_engine_api_or_its_command_line(
    container: Any, podman_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # podman's service speaks the Docker Engine API: it stands in for dockerd.
    name = container(29650)
    address = address_of(name)
    proxy = forwarder_imitation(
        [
            *("docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1"),
            *("-host-port", "29651", "-container-ip", address, "-container-port", "80"),
        ],
        29651,
    )
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{podman_service}")
        (holder,) = who_holds(29651)
        assert holder.container == localport.Container(
            "docker", inspect(name, "{{.Id}}"), name, IMAGE, "shop", "web", f"{address}:80", True
        )
        assert (
            f"by docker container {name} (compose project shop, service web, image {IMAGE}), "
            f"which publishes it and forwards to {address}:80"
        ) in explain(29651, [holder])

        # Without the API, docker-proxy's command line still says where it forwards to.
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        (holder,) = who_holds(29651)
        assert holder.container == localport.Container("docker", inner_address=f"{address}:80")
        assert (
            f"by a docker container at {address}:80, whose port forwarder docker-proxy "
            f"(PID {proxy.pid}) holds it; which container could not be learned "
            f"(`docker ps --filter publish=29651` as {holder.username} names it)"
        ) in explain(29651, [holder])
        # Which container to stop is unknown: kill refuses, and leaves the forwarder alone.
        refused = cli("kill", "29651", "--yes")
        assert refused.returncode == 4
        assert "stops a container only when it can tell which one" in refused.stderr
        assert proxy.poll() is None
    finally:
        end(proxy)


# -- rootless podman ----------------------------------------------------------------------------


@pytest.fixture
def rootless(podman: str) -> Iterator[dict[str, str]]:
    """The environment of rootless podman as user nobody, in a home of its own; skipped where
    rootless podman cannot run (here, as a rule, because /dev/net/tun is root's alone)."""
    if os.getuid() != 0:
        pytest.skip("needs root, to run a rootless container as another user")
    home = Path(tempfile.mkdtemp(prefix="lp-rootless-"))
    runtime_dir = home / "run"
    runtime_dir.mkdir(mode=0o700)
    (home / "containers.conf").write_text(CONTAINERS_CONF)
    for path in (home, runtime_dir, home / "containers.conf"):
        os.chown(path, 65534, 65534)
    environment = {
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "CONTAINERS_CONF": str(home / "containers.conf"),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
    }
    try:
        yield environment
    finally:
        as_nobody(environment, "rm", "-a", "-f", "-t", "0")
        pause = runtime_dir / "libpod" / "tmp" / "pause.pid"
        if pause.exists():  # rootless podman's pause process keeps its user namespace
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pause.read_text()), signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(home)], check=False, timeout=120)


def as_nobody(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PODMAN, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
    )


def test_a_rootless_container_is_named_through_rootlessport(
    rootless: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    script = (
        f"set -e; r=$(mktemp -d); mkdir -p $r/bin $r/www; cp {busybox} $r/bin/busybox; "
        "echo hi > $r/www/index.html; "
        # Owned by root inside: a single-uid user namespace maps nobody to root, and no more.
        f"tar --numeric-owner --owner=0 --group=0 -C $r -c . | {PODMAN} import - {IMAGE}; "
        "rm -rf $r"
    )
    imported = subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=rootless,
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
    )
    if imported.returncode != 0:
        pytest.skip(f"rootless podman cannot import an image here: {imported.stderr[-300:]}")
    name = f"lp-test-{secrets.token_hex(4)}"
    started = as_nobody(
        rootless,
        *("run", "-d", "--name", name, "--label=com.docker.compose.service=web"),
        *("-p", "127.0.0.1:29660:80", IMAGE, "/bin/busybox", "httpd", "-f", "-p", "80"),
        *("-h", "/www"),
    )
    if started.returncode != 0:
        pytest.skip(f"rootless podman cannot run a container here: {started.stderr[-300:]}")
    localport.wait_until_listening(29660, timeout=60)
    (holder,) = who_holds(29660)
    assert holder.process_name == "rootlessport"
    assert holder.username == "nobody"
    assert holder.container is not None
    assert (holder.container.name, holder.container.service) == (name, "web")
    assert holder.container.answered, "podman, run as nobody, did not answer"
    assert "which publishes it and forwards to port 80 inside it" in explain(29660, [holder])
    # Another user's container: refused without --any-user, stopped with it.
    refused = cli("kill", "29660", "--yes")
    assert refused.returncode == 4
    assert f"podman container {name} (service web, image {IMAGE}) belongs to nobody" in (
        refused.stderr
    )
    stopped = cli("kill", "29660", "--yes", "--any-user", "--timeout", "1")
    assert stopped.returncode == 0, stopped.stderr
    assert localport.is_free(29660)
    state = as_nobody(rootless, "inspect", "--format", "{{.State.Status}}", name)
    assert state.stdout.strip() == "exited"


# -- impostors: a forwarder is recognised by a name and a command line anyone can give -----------


def forwarder_imitation(argv: list[str], port: int, *, nobody: bool = False) -> Any:
    """A process with *argv* as its command line, listening on 127.0.0.1:*port*; with
    *nobody*, it becomes user nobody first (root only)."""
    code = DOCKER_PROXY.replace('int(sys.argv[sys.argv.index("-host-port") + 1])', str(port))
    if nobody:  # after the imports: nobody may not read this interpreter's files
        become = "import os; os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        code = code.replace("import socket, sys\n", "import socket, sys\n" + become)
    process = subprocess.Popen(
        [argv[0], "-c", code, *argv[1:]],
        executable=sys.executable,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        # Python finds its library from argv[0], which names another program here.
        env={**os.environ, "PYTHONHOME": sys.base_prefix},
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def end(process: Any) -> None:
    process.kill()
    process.wait(30)
    process.stdin.close()
    process.stdout.close()


def test_a_forwarder_command_line_with_hostile_values_names_no_container() -> None:
    process = forwarder_imitation(
        [
            *("conmon", "--cid", "../../../etc/passwd", "-n", "web;rm -rf /"),
            *("--exit-command-arg", "--root", "--exit-command-arg", "relative/path"),
        ],
        29670,
    )
    try:
        (holder,) = who_holds(29670)
        assert holder.container == localport.Container("podman")
        assert "which container could not be learned" in explain(29670, [holder])
        refused = cli("kill", "29670", "--yes")
        assert refused.returncode == 4
        assert "stops a container only when it can tell which one" in refused.stderr
        assert process.poll() is None
    finally:
        end(process)


def test_another_users_imitation_of_docker_proxy_does_not_reach_roots_runtime(
    container: Any, podman_service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root, to run a process as user nobody")
    name = container(29672)
    process = forwarder_imitation(
        [
            *("docker-proxy", "-proto", "tcp", "-host-port", "29673"),
            *("-container-ip", address_of(name), "-container-port", "80"),
        ],
        29673,
        nobody=True,
    )
    try:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{podman_service}")
        (holder,) = who_holds(29673)
        assert holder.username == "nobody"
        # root's runtime is not asked about nobody's process: nothing names the container.
        assert holder.container == localport.Container(
            "docker", inner_address=f"{address_of(name)}:80"
        )
        assert cli("kill", "29673", "--yes", "--any-user").returncode == 4
        assert inspect(name, "{{.State.Status}}") == "running"
    finally:
        end(process)
