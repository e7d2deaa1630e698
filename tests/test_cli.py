"""The ``localport`` command, end to end in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import localport
from helpers import LISTENING_CHILD, has_ipv6, localport_popen, needs_root

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")


def run(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localport", *arguments],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def background_run(*arguments: str) -> Any:
    """``localport run ARGUMENTS`` in the background (see :func:`helpers.localport_popen`)."""
    return localport_popen("run", *arguments, stdout=subprocess.DEVNULL)


@pytest.fixture
def holders() -> Any:
    """PIDs of `reserve --hold` holders a test starts; each is ended by PID afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_version_and_help_name_the_exit_codes() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("localport ")
    assert "nothing to report" in run("--help").stdout
    help_text = run("who", "--help").stdout  # its own codes, not the whole table
    assert "exit codes:" in help_text
    assert "nothing holds it" in help_text
    assert "wait: the time ran out" not in help_text


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "localport"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0
    assert result.stdout.startswith("localport ")


def test_reserve_prints_a_port_and_json() -> None:
    result = run("reserve")
    assert result.returncode == 0
    assert 49152 <= int(result.stdout) <= 65535
    report = json.loads(run("reserve", "--json", "--udp", "--name", "cli").stdout)
    assert report["proto"] == "udp"
    assert report["name"] == "cli"
    assert report["url"] == f"http://127.0.0.1:{report['port']}"
    assert report["holder_pid"] is None


def test_reserve_of_a_busy_port_is_one_line_and_exit_3(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    result = run("reserve", str(port))
    assert result.returncode == 3
    assert result.stdout == ""
    assert f"PID {child.pid}" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "arguments",
    [("reserve", "99999"), ("reserve", "http"), ("who",), ("kill", "0"), ("bogus",), ("run",)],
)
def test_bad_arguments_are_a_usage_error(arguments: tuple[str, ...]) -> None:
    result = run(*arguments)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "localport" in result.stderr


def test_a_host_that_is_not_on_this_machine_is_one_line_and_exit_2() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    result = run("reserve", "--host", "192.0.2.77")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "not an address of this machine" in result.stderr


@pytest.mark.parametrize(
    "arguments",
    [("list", "--all", "--json"), ("list", "--all"), ("reserve", "--json")],
)
def test_a_reader_that_goes_away_ends_the_command_quietly(arguments: tuple[str, ...]) -> None:
    """`localport list --all | head -1`: the reader closes the pipe before the output comes."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes a byte
    try:
        result = subprocess.run(
            [sys.executable, "-m", "localport", *arguments],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141


def test_reserve_hold_returns_at_once_and_keeps_the_port(holders: list[int]) -> None:
    result = run("reserve", "--hold", "60", "--json", "--name", "held")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    holders.append(report["holder_pid"])
    port = report["port"]
    listed = json.loads(run("list", "--json").stdout)["reservations"]
    assert [(r["port"], r["pid"], r["name"]) for r in listed] == [
        (port, report["holder_pid"], "held")
    ]
    assert run("reserve", str(port)).returncode == 3
    # `localport release` ends it early.
    released = run("release", str(port))
    assert released.returncode == 0, released.stderr
    _wait_for(lambda: _gone(report["holder_pid"]))
    assert json.loads(run("list", "--json").stdout)["reservations"] == []


def test_a_holder_lets_go_once_a_server_listens_on_the_port(holders: list[int]) -> None:
    report = json.loads(run("reserve", "--hold", "60", "--json").stdout)
    holders.append(report["holder_pid"])
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", report["port"]))
        server.listen()
        _wait_for(lambda: _gone(report["holder_pid"]))
    assert localport.reservations() == []


def test_a_holder_lets_go_when_its_time_is_up(holders: list[int]) -> None:
    report = json.loads(run("reserve", "--hold", "0.5", "--json").stdout)
    holders.append(report["holder_pid"])
    _wait_for(lambda: _gone(report["holder_pid"]))


def test_release_refuses_what_is_not_a_hold(spawn: Any) -> None:
    assert run("release", "24990").returncode == 1
    child = spawn(
        """
        import json, sys, localport
        reservation = localport.reserve(port_range=(24991, 24999))
        print(json.dumps(reservation.port), flush=True)
        sys.stdin.read()
        """
    )
    port = child.read()
    result = run("release", str(port))
    assert result.returncode == 4
    assert "not by a `localport reserve --hold` holder" in result.stderr
    assert not _gone(child.pid)


def test_who_names_the_holder_of_a_port(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    result = run("who", str(port))
    assert result.returncode == 0
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:5] == ["PID", "USER", "PROTO", "ADDRESS", "STATE"]
    assert row.split()[:5] == [
        str(child.pid),
        "root" if os.geteuid() == 0 else row.split()[1],
        "tcp",
        f"127.0.0.1:{port}",
        "LISTEN",
    ]
    assert f"kill {child.pid}" in result.stdout
    report = json.loads(run("who", str(port), "--json").stdout)
    assert report["in_use"] is True
    assert report["holders"][0]["pid"] == child.pid
    assert report["holders"][0]["status"] == "LISTEN"
    assert report["holders"][0]["family"] == "IPv4"


def test_who_exits_1_when_nothing_holds_the_port() -> None:
    with localport.reserve(port_range=(24980, 24989)) as reservation:
        port = reservation.port
    result = run("who", str(port))
    assert result.returncode == 1
    assert result.stdout.strip() == f"nothing holds port {port} (tcp)"
    assert json.loads(run("who", str(port), "--json").stdout)["in_use"] is False


def test_who_explains_a_listener_on_ipv6_loopback_only(spawn: Any) -> None:
    if not has_ipv6():
        pytest.skip("no IPv6 loopback")
    child = spawn(
        LISTENING_CHILD.replace('"127.0.0.1"', '"::1"').replace(
            "socket.socket()", "socket.socket(socket.AF_INET6)"
        )
    )
    port = child.read()
    result = run("who", str(port))
    assert result.returncode == 0
    assert f"nothing listens on 127.0.0.1:{port}, but a server listens on [::1]:{port}" in (
        result.stdout
    )


def test_list_all_marks_what_the_network_can_reach(spawn: Any) -> None:
    local = spawn(LISTENING_CHILD)
    local_port = local.read()
    wildcard = spawn(LISTENING_CHILD.replace('"127.0.0.1"', '"0.0.0.0"'))
    wildcard_port = wildcard.read()
    report = json.loads(run("list", "--all", "--json").stdout)
    by_port = {entry["local_address"][1]: entry for entry in report["listening"]}
    assert by_port[local_port]["pid"] == local.pid
    assert by_port[local_port]["reachable_from_network"] is False
    assert by_port[wildcard_port]["reachable_from_network"] is True
    table = run("list", "--all").stdout
    assert "REACHABLE" in table
    assert any(str(wildcard_port) in line and "network" in line for line in table.splitlines())


def test_kill_stops_the_holder_and_reports_the_port_free(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    result = run("kill", str(port), "--yes")
    assert result.returncode == 0, result.stderr
    assert f"port {port} is free" in result.stderr
    child.process.wait(10)
    assert child.process.returncode == -signal.SIGTERM


def test_kill_asks_and_refuses_without_a_terminal(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    result = run("kill", str(port))
    assert result.returncode == 4
    assert "--yes" in result.stderr
    assert not _gone(child.pid)


def test_kill_of_nothing_exits_1() -> None:
    with localport.reserve(port_range=(24970, 24979)) as reservation:
        port = reservation.port
    assert run("kill", str(port), "--yes").returncode == 1


@needs_root
def test_kill_never_touches_another_users_process_without_any_user(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD, "nobody")
    port = child.read()
    refused = run("kill", str(port), "--yes")
    assert refused.returncode == 4
    assert "belongs to nobody" in refused.stderr
    assert "--any-user" in refused.stderr
    assert not _gone(child.pid)
    allowed = run("kill", str(port), "--yes", "--any-user")
    assert allowed.returncode == 0, allowed.stderr
    child.process.wait(10)


def test_run_starts_a_server_prints_its_url_and_passes_sigterm_on(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from localport run")
    server = [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"]
    with background_run("--", *server, "--directory", str(tmp_path)) as process:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert line.startswith("localport: ready: http://127.0.0.1:")
        url, server_pid = line.split()[2], int(line.split("pid ")[1].rstrip(")\n"))
        with urllib.request.urlopen(f"{url}/hello.txt", timeout=10) as response:  # noqa: S310
            assert response.read() == b"hello from localport run"
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 128 + signal.SIGTERM
        _wait_for(lambda: _gone(server_pid))


def test_run_of_a_command_that_crashes_says_so_and_exits_5() -> None:
    result = run(
        "run", "--", sys.executable, "-c", "print('cannot start: no config'); raise SystemExit(7)"
    )
    assert result.returncode == 5
    assert "exited with code 7 before listening" in result.stderr
    assert result.stderr.count("\n") == 1  # one line: the server's output went to stdout
    assert "cannot start: no config" in result.stdout


def test_python_dash_m_localport_is_the_same_command() -> None:
    assert (
        run("--version").stdout
        == subprocess.run(
            [str(Path(sys.executable).parent / "localport"), "--version"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        ).stdout
    )


def test_run_of_a_program_that_does_not_exist_says_so_and_exits_5() -> None:
    result = run("run", "--", "no-such-program-localport-test", "{port}")
    assert result.returncode == 5
    assert "could not be started" in result.stderr
    assert "no-such-program-localport-test" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sigterm_while_the_server_starts_stops_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    slow = (
        "import os, sys, time\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    with background_run("--", sys.executable, "-c", slow) as process:
        _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        server_pid = int(pid_file.read_text())
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 128 + signal.SIGTERM
        _wait_for(lambda: _gone(server_pid))


def test_kill_of_a_run_server_stops_the_server_not_the_launcher() -> None:
    server = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    with background_run("--", *server) as process:
        assert process.stderr is not None
        line = process.stderr.readline()
        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        server_pid = int(line.split("pid ")[1].rstrip(")\n"))
        result = run("kill", str(port), "--yes")
        assert result.returncode == 0, result.stderr
        assert f"stopped PID {server_pid};" in result.stderr
        # The launcher saw its server end and left by itself, with the server's status.
        assert process.wait(20) == 128 + signal.SIGTERM


def test_a_bad_env_name_for_run_is_a_usage_error() -> None:
    result = run("run", "--env", "1BAD", "--", "true")
    assert result.returncode == 2
    assert "environment variable name" in result.stderr
