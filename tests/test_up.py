"""``localport up``: a Procfile's services on stable ports, knowing each other's, with real
HTTP servers on loopback; and ``localport ports``, which documents what ``up`` assigned."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import localport

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shells and signals")

SERVERS = Path(__file__).parent / "servers"
PY = shlex.quote(sys.executable)
READY = re.compile(r"^localport: ready: (\S+) (\S+) \(pid (\d+)\)$")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def left_running_in(directory: Path) -> list[int]:
    """PIDs of live processes whose working directory is *directory* (services of `up`)."""
    found = []
    for process in psutil.process_iter(["cwd", "status"]):
        if process.info["cwd"] == str(directory) and process.info["status"] != "zombie":
            found.append(process.pid)
    return found


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - http on loopback
        return json.loads(response.read())


class Up:
    """``localport up ARGS`` in DIRECTORY; its output (stdout and stderr) read line by line.

    At the end of the test it is stopped, and every service PID it reported is killed by its
    process group, should anything have outlived it.
    """

    def __init__(self, directory: Path, *arguments: str, env: dict[str, str] | None = None):
        self.directory = directory
        self.process = subprocess.Popen(
            [sys.executable, "-m", "localport", "up", *arguments],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.pids: dict[str, int] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def next_line(self, timeout: float = 30.0) -> str | None:
        line = self._queue.get(timeout=timeout)
        if line is not None:
            self.lines.append(line)
        return line

    def until(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first line, read already or read now, that matches *pattern* (a regex); fail
        at the end of the output."""
        for seen in self.lines:
            if match := re.search(pattern, seen):
                return match
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(max(0.1, deadline - time.monotonic()))
            assert line is not None, f"no line matched {pattern!r}; output:\n" + self.output
            match = re.search(pattern, line)
            if match:
                return match

    def ready(self, count: int) -> dict[str, tuple[int | None, str | None, int]]:
        """Read the ready lines and the table of *count* services: name to (port, url, pid)."""
        self.until(r"^NAME +PORT +URL +PID$")
        services = {}
        for _ in range(count):
            line = self.next_line()
            assert line is not None, self.output
            name, port, url, pid = line.split()
            services[name] = (
                None if port == "-" else int(port),
                None if url == "-" else url,
                int(pid),
            )
            self.pids[name] = int(pid)
        return services

    def finish(self, timeout: float = 30.0) -> int:
        """Wait for ``up`` to exit, collect the rest of its output, return its exit code."""
        code = self.process.wait(timeout)
        while self.next_line(timeout) is not None:
            pass
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def up() -> Iterator[Any]:
    started: list[Up] = []

    def start(directory: Path, *arguments: str, env: dict[str, str] | None = None) -> Up:
        instance = Up(directory, *arguments, env=env)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.cleanup()


def make_project(path: Path, procfile: str, dotenv: str | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(SERVERS / "service.py", path / "service.py")
    (path / "Procfile").write_text(procfile)
    if dotenv is not None:
        (path / ".env").write_text(dotenv)
    return path


THREE_SERVICES = f"""\
# an API, a web front end that must know the API's URL, and a worker
api: {PY} service.py {{port}}
web: {PY} service.py $PORT --api {{url:api}}
worker: {PY} -c "import time; [print('tick', flush=True) or time.sleep(0.2) for _ in range(10**6)]"
"""


def test_up_starts_servers_that_know_each_other_and_ctrl_c_leaves_nothing(
    tmp_path: Path, up: Any
) -> None:
    project = make_project(tmp_path / "shop", THREE_SERVICES, dotenv="GREETING='hi there'\n")
    running = up(project)
    services = running.ready(3)
    api_port, api_url, _ = services["api"]
    web_port, web_url, _ = services["web"]
    assert services["worker"][:2] == (None, None)
    assert api_port is not None
    assert web_port is not None
    assert api_port != web_port
    assert api_url == f"http://127.0.0.1:{api_port}"
    answer = fetch(f"{web_url}/")
    assert answer["argv"] == ["--api", api_url]
    assert answer["env"]["API_URL"] == api_url
    assert answer["env"]["API_PORT"] == str(api_port)
    assert answer["env"]["WEB_PORT"] == answer["env"]["PORT"] == str(web_port)
    assert answer["env"]["PYTHONUNBUFFERED"] == "1"
    assert fetch(f"{api_url}/")["env"]["PORT"] == str(api_port)
    # Every service's output, prefixed with its padded name; plain on a pipe.
    running.until(r"^worker \| tick$")
    assert f"api    | serving on {api_port}" in running.lines
    assert f"web    | serving on {web_port}" in running.lines
    assert "\x1b[" not in running.output
    running.process.send_signal(signal.SIGINT)
    assert running.finish() == 130
    assert "localport: SIGINT: stopping every service" in running.lines
    assert not [name for name, pid in running.pids.items() if alive(pid)]
    assert left_running_in(project) == []
    assert localport.reservations() == []


def test_a_second_up_gets_the_same_ports_and_another_checkout_other_ones(
    tmp_path: Path, up: Any
) -> None:
    procfile = f"api: {PY} service.py {{port}}\nweb: {PY} service.py {{port}}\n"
    first_checkout = make_project(tmp_path / "one" / "shop", procfile)
    second_checkout = make_project(tmp_path / "two" / "shop", procfile)

    def ports_of(directory: Path) -> dict[str, int | None]:
        running = up(directory)
        services = running.ready(2)
        running.process.send_signal(signal.SIGTERM)
        assert running.finish() == 143
        return {name: port for name, (port, _, _) in services.items()}

    first = ports_of(first_checkout)
    assert ports_of(first_checkout) == first
    second = ports_of(second_checkout)
    assert set(second.values()).isdisjoint(first.values())
    assert ports_of(second_checkout) == second


def test_a_service_exiting_with_code_3_stops_the_others_and_up_exits_3(
    tmp_path: Path, up: Any
) -> None:
    # The quitter waits until the API listens (with `localport wait`), so it exits after up
    # is ready rather than during the start.
    procfile = (
        f"api: {PY} service.py {{port}}\n"
        f"quitter: {PY} -m localport wait $API_PORT && sleep 0.5 && echo bye && exit 3\n"
    )
    running = up(make_project(tmp_path / "shop", procfile))
    services = running.ready(2)
    assert running.finish() == 3
    assert "quitter | bye" in running.lines
    assert "localport: quitter exited with code 3: stopping the other services" in running.lines
    assert not alive(services["api"][2])
    assert left_running_in(running.directory) == []


def test_a_server_that_ignores_its_port_fails_within_seconds(tmp_path: Path, up: Any) -> None:
    procfile = (
        f"api: {PY} service.py {{port}}\n"
        f"web: IGNORED=$PORT {PY} -m http.server 0 --bind 127.0.0.1\n"
    )
    started = time.monotonic()
    running = up(make_project(tmp_path / "shop", procfile), "--ready-timeout", "60")
    code = running.finish()
    assert time.monotonic() - started < 5  # the bound; it takes about one second
    assert code == 5
    failure = [line for line in running.lines if line.startswith("localport: web")]
    assert len(failure) == 1, running.output
    assert re.fullmatch(
        r"localport: web \(port \d+\) listens on 127\.0\.0\.1:\d+, not \d+: its command "
        r"ignores \{port\}",
        failure[0],
    ), failure[0]
    assert "localport: ready" not in running.output
    assert left_running_in(running.directory) == []
    assert localport.reservations() == []


def test_a_server_that_exits_before_listening_stops_everything_with_its_output(
    tmp_path: Path, up: Any
) -> None:
    procfile = (
        f"api: {PY} service.py {{port}}\n"
        f"web: echo starting web on $PORT && echo 'cannot find settings.toml' >&2 && exit 4\n"
    )
    project = make_project(tmp_path / "shop", procfile)
    running = up(project)
    assert running.finish() == 5
    assert "web | cannot find settings.toml" in running.lines
    assert any(
        re.fullmatch(r"localport: web \(port \d+\) exited with code 4 before listening", line)
        for line in running.lines
    ), running.output
    assert left_running_in(project) == []
    assert localport.reservations() == []


def test_a_program_that_does_not_exist_stops_everything_and_leaves_no_reservation(
    tmp_path: Path, up: Any
) -> None:
    procfile = f"api: {PY} service.py {{port}}\nweb: ./no-such-program --port {{port}}\n"
    project = make_project(tmp_path / "shop", procfile)
    running = up(project)
    assert running.finish() == 5
    assert any("web" in line and "exited with code 127" in line for line in running.lines)
    assert left_running_in(project) == []
    assert localport.reservations() == []


def test_sigterm_stops_services_newest_first_and_says_when_it_had_to_kill(
    tmp_path: Path, up: Any
) -> None:
    procfile = (
        f"api: {PY} service.py {{port}}\n"
        "stubborn: trap '' TERM; echo stubborn; while true; do sleep 0.1; done\n"
    )
    project = make_project(tmp_path / "shop", procfile)
    running = up(project, "--timeout", "0.5")
    services = running.ready(2)
    running.until(r"^stubborn +\| stubborn$")
    running.process.send_signal(signal.SIGTERM)
    assert running.finish() == 143
    assert "localport: stubborn did not stop within 0.5 s of SIGTERM: sent SIGKILL" in (
        running.lines
    )
    assert not any("api did not stop" in line for line in running.lines)
    assert not [pid for _, _, pid in services.values() if alive(pid)]
    assert left_running_in(project) == []


def test_a_server_can_take_its_listening_socket_as_fd(tmp_path: Path, up: Any) -> None:
    project = make_project(
        tmp_path / "shop",
        f"api: {PY} -m uvicorn asgi_app:app --fd {{fd}} --log-level warning\n"
        f"web: {PY} service.py fd:{{fd}} --api {{url:api}}\n",
    )
    shutil.copy(SERVERS / "asgi_app.py", project / "asgi_app.py")
    running = up(project)
    services = running.ready(2)
    api_url, web_url = services["api"][1], services["web"][1]
    assert api_url is not None
    assert web_url is not None
    with urllib.request.urlopen(api_url, timeout=10) as response:  # noqa: S310 - loopback
        assert response.read() == b"hello from uvicorn"
    assert fetch(web_url)["argv"] == ["--api", api_url]
    running.process.send_signal(signal.SIGINT)
    assert running.finish() == 130
    assert left_running_in(project) == []


def test_only_the_named_services_start(tmp_path: Path, up: Any) -> None:
    project = make_project(tmp_path / "shop", THREE_SERVICES)
    # web names {url:api}: started alone, it reads api's port from an earlier run's record.
    first = up(project, "api")
    api = first.ready(1)["api"]
    second = up(project, "web")
    web = second.ready(1)["web"]
    assert fetch(f"{web[1]}/")["argv"] == ["--api", api[1]]
    for running in (second, first):
        running.process.send_signal(signal.SIGINT)
        assert running.finish() == 130
    assert left_running_in(project) == []


def test_ports_documents_the_assignments_in_every_format(tmp_path: Path, up: Any) -> None:
    project = make_project(tmp_path / "shop", THREE_SERVICES)

    def ports(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "localport", "ports", *arguments],
            cwd=project / "subdir" if (project / "subdir").is_dir() else project,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    before = json.loads(ports("--format", "json").stdout)
    assert [(s["name"], s["state"], s["recorded"]) for s in before["services"]] == [
        ("api", "not started", False),
        ("web", "not started", False),
    ]
    running = up(project)
    services = running.ready(3)
    (project / "subdir").mkdir()  # ports, like run, finds the project from a subdirectory
    report = json.loads(ports("--format", "json").stdout)
    assert report["scope"] == str(project.resolve())
    by_name = {s["name"]: s for s in report["services"]}
    assert sorted(by_name) == ["api", "web"]  # the worker has no port
    for name in ("api", "web"):
        port, url, _ = services[name]
        assert by_name[name]["port"] == port
        assert by_name[name]["url"] == url
        assert by_name[name]["state"] == "listening"
        assert by_name[name]["recorded"] is True
    env_lines = ports("--format", "env").stdout.splitlines()
    assert env_lines == [
        f"API_PORT={services['api'][0]}",
        f"API_URL={services['api'][1]}",
        f"WEB_PORT={services['web'][0]}",
        f"WEB_URL={services['web'][1]}",
    ]
    markdown = ports("--format", "markdown").stdout.splitlines()
    assert markdown[:2] == ["| Service | Port | URL | State |", "| --- | --- | --- | --- |"]
    assert markdown[2].startswith(f"| api | {services['api'][0]} | <{services['api'][1]}> |")
    table = ports().stdout.splitlines()
    assert table[0].split() == ["NAME", "PORT", "URL", "STATE"]
    assert table[1].split()[:4] == ["api", str(services["api"][0]), services["api"][1], "listening"]
    running.process.send_signal(signal.SIGINT)
    assert running.finish() == 130
    after = json.loads(ports("--format", "json").stdout)
    assert [(s["state"], s["port"]) for s in after["services"]] == [
        ("free", services["api"][0]),
        ("free", services["web"][0]),
    ]


BAD_PROCFILES = {
    "malformed": ("api: ok {port}\nthis line has no colon\n", r"Procfile:2: not a service line"),
    "duplicate": (
        "api: a {port}\n\napi: b {port}\n",
        r"Procfile:3: service 'api' is already defined on line 1",
    ),
    "empty-command": ("api: a {port}\nweb:\n", r"Procfile:2: service 'web' has an empty command"),
    "unknown-port-name": (
        "api: a {port}\nweb: b {port} --api {port:apii}\n",
        r"Procfile:2: service 'web' names 'apii' in \{port:apii\}",
    ),
    "unknown-url-name": (
        "web: b {port} --api {url:nothing}\n",
        r"Procfile:1: service 'web' names 'nothing'",
    ),
    "worker-as-server": (
        "worker: w\nweb: b {port} --w {url:worker}\n",
        r"Procfile:2: service 'web' names 'worker' .* is not a server",
    ),
    "bad-placeholder-form": (
        "web: b {port} {host:api}\n",
        r"Procfile:1: service 'web': \{host:api\}: only \{port:NAME\} and \{url:NAME\}",
    ),
    "no-services": ("# nothing here\n\n", r"Procfile: no services"),
}


@pytest.mark.parametrize("case", sorted(BAD_PROCFILES))
def test_a_bad_procfile_exits_2_naming_file_line_and_name_before_anything_starts(
    tmp_path: Path, lock_dir: Path, case: str
) -> None:
    text, expected = BAD_PROCFILES[case]
    # Each line would leave a marker file if it ever ran.
    project = tmp_path / "shop"
    project.mkdir()
    procfile = "".join(
        line.replace(": ", ": touch ran-$$ && ", 1) for line in text.splitlines(keepends=True)
    )
    (project / "Procfile").write_text(procfile)
    result = subprocess.run(
        [sys.executable, "-m", "localport", "up"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(expected, lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert list(project.glob("ran-*")) == []
    assert list(lock_dir.glob("port-*.lock")) == []  # nothing was reserved


def test_up_without_a_procfile_or_with_an_unknown_service_exits_2(tmp_path: Path) -> None:
    def up_in(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "localport", "up", *arguments],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    missing = up_in(tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "localport: Procfile: no such file (a Procfile lists one service a line, `name: command`)"
    )
    project = make_project(tmp_path / "shop", THREE_SERVICES)
    unknown = up_in(project, "api", "mailer")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "localport: Procfile has no service 'mailer' (it has api, web, worker)"
    )
    other_file = up_in(project, "-f", "Procfile.dev")
    assert other_file.returncode == 2
    assert "Procfile.dev: no such file" in other_file.stderr
    bad_env = make_project(
        tmp_path / "env", THREE_SERVICES, dotenv="GOOD=1\nthis is not a variable\n"
    )
    result = up_in(bad_env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"localport: {os.path.join('.', '.env')}:2: not a `NAME=value` line: this is not a variable"
    )


def test_colour_on_a_terminal_and_none_with_no_color(tmp_path: Path) -> None:
    import pty

    project = make_project(
        tmp_path / "shop", "api: echo hello from api; exec sleep 30 # {port}\nworker: echo hi\n"
    )

    def output_on_a_terminal(env: dict[str, str]) -> str:
        leader, follower = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "localport", "up"],
            cwd=project,
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "TERM": "xterm", **env},
        )
        os.close(follower)
        chunks = []
        try:
            # The worker exits at once: up stops everything and exits (with 5, or 0).
            process.wait(30)
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
            os.close(leader)
        return b"".join(chunks).decode()

    coloured = output_on_a_terminal({})
    assert "\x1b[36mapi    |\x1b[0m hello from api" in coloured
    assert "\x1b[33mworker |\x1b[0m hi" in coloured
    plain = output_on_a_terminal({"NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert "worker | hi" in plain
    assert left_running_in(project) == []


def test_a_worker_that_exits_while_the_servers_start_ends_up_with_its_code(
    tmp_path: Path, up: Any
) -> None:
    project = make_project(tmp_path / "shop", "api: exec sleep 30 # {port}\nonce: exit 6\n")
    running = up(project)
    assert running.finish() == 6
    assert "localport: once exited with code 6: stopping the other services" in running.lines
    assert left_running_in(project) == []
    assert localport.reservations() == []


def test_a_worker_gets_no_port_but_may_use_host_and_other_servers(tmp_path: Path, up: Any) -> None:
    procfile = (
        f"api: {PY} service.py {{port}}\n"
        'worker: echo "port=$(printenv PORT || echo none) host={host} api={url:api}"; '
        "exec sleep 30\n"
    )
    project = make_project(tmp_path / "shop", procfile)
    running = up(project, env={"PORT": "5000"})
    api_url = running.ready(2)["api"][1]
    running.until(rf"^worker \| port=none host=127\.0\.0\.1 api={re.escape(str(api_url))}$")
    running.process.send_signal(signal.SIGINT)
    assert running.finish() == 130


def test_reserve_name_on_the_command_line_is_scoped_to_the_project(tmp_path: Path) -> None:
    project = make_project(tmp_path / "shop", "api: x {port}\n")
    (project / "sub").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "localport", "reserve", "--name", "api", "--json"],
        cwd=project / "sub",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    port = json.loads(result.stdout)["port"]
    with localport.reserve(name="api", scope=project.resolve()) as reservation:
        assert reservation.port == port
