"""The ``localport`` command's rough edges: closed pipes, every error path, ``--json``
everywhere (failures included), hidden internal commands, each command's own usage and help.

Every command runs as a real subprocess of ``python -m localport``. Fixed ports come from
30200-30399 and nothing here listens on them unless a test says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from helpers import LISTENING_CHILD, localport_popen

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipes and signals")

#: Ports nothing listens on (no test here binds them).
NOBODY = 30301
#: The fields of a process, wherever one appears in JSON.
PROCESS = {"pid", "cmdline", "command", "user", "uid", "started"}
PYTHON = sys.executable
#: A server for `run`, on the port it is given.
SERVER = (PYTHON, "-m", "http.server", "{port}", "--bind", "127.0.0.1")


def run(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "localport", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The command failed with *code*, saying one line on stderr (after a usage for 2)."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "nothing said on stderr"
    assert lines[-1].startswith("localport: ")
    if not lines[0].startswith("usage:"):
        assert len(lines) == 1, result.stderr
    return lines[-1]


def json_error(result: subprocess.CompletedProcess[str], code: int) -> dict[str, Any]:
    """The command failed with *code*, and printed a JSON error object on stdout."""
    line = assert_one_line(result, code)
    error: dict[str, Any] = json.loads(result.stdout)["error"]
    assert error["code"] == code
    assert isinstance(error["type"], str)
    assert error["type"]
    assert line.endswith(error["message"])
    return error


@pytest.fixture
def procfile(tmp_path: Path) -> Path:
    path = tmp_path / "Procfile"
    path.write_text(f"web: {PYTHON} -m http.server {{port}} --bind 127.0.0.1\n")
    return path


def popen(*arguments: str, stdout: Any = subprocess.PIPE) -> Any:
    """``localport ARGUMENTS`` in the background (see :func:`helpers.localport_popen`)."""
    return localport_popen(*arguments, stdout=stdout)


def into_a_closed_pipe(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``localport ARGUMENTS | head -1`` where head is gone before a byte is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [PYTHON, "-m", "localport", *arguments],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=60,
            check=False,
            cwd=cwd,
        )
    finally:
        os.close(write_end)


# --- closed pipes ------------------------------------------------------------------------

CLOSED_PIPE_COMMANDS = [
    ("--help",),
    ("--version",),
    ("list", "--help"),
    ("reserve",),
    ("reserve", "--json"),
    ("list", "--all", "--json"),
    ("list", "--all"),
    ("who", str(NOBODY), "--json"),
    ("who", str(NOBODY)),
    ("kill", str(NOBODY), "--json"),
    ("release", str(NOBODY), "--json"),
    ("wait", str(NOBODY), "--timeout", "0.05", "--json"),
    ("wait", str(NOBODY), "--free", "--json"),
    ("ports", "--json"),
    ("ports",),
    ("run", "--json", "--", "/nonexistent/program"),
    ("up", "--json", "-f", "/nonexistent/Procfile"),
    ("frobnicate", "--json"),
]


@pytest.mark.parametrize("arguments", CLOSED_PIPE_COMMANDS, ids=" ".join)
def test_a_reader_gone_before_the_output_ends_the_command_with_141(
    arguments: tuple[str, ...], tmp_path: Path
) -> None:
    """`localport ... | head -1` where head is gone before a byte is written."""
    result = into_a_closed_pipe(*arguments, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert result.returncode == 141, result.stderr


@pytest.mark.parametrize(
    "arguments", [("who", "{port}", "--json"), ("list", "--all", "--json"), ("--help",)]
)
def test_a_reader_that_reads_one_line_and_leaves(arguments: tuple[str, ...], spawn: Any) -> None:
    """`localport who 8000 --json | head -1`: 0 when everything fit in the pipe first."""
    port = spawn(LISTENING_CHILD).read()
    with popen(*(a.format(port=port) for a in arguments)) as process:
        assert process.stdout is not None
        assert process.stdout.readline()
        process.stdout.close()
        process.wait(60)
        assert process.stderr is not None
        stderr = process.stderr.read()
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert process.returncode in (0, 141), stderr


def test_run_whose_reader_is_gone_stops_its_server_and_exits_141(tmp_path: Path) -> None:
    port = 30302
    result = into_a_closed_pipe("run", "--json", "--port", str(port), "--", *SERVER, cwd=tmp_path)
    assert "Traceback" not in result.stderr
    assert result.returncode == 141, result.stderr
    assert run("who", str(port)).returncode == 1  # the server was stopped


def test_up_whose_reader_is_gone_stops_its_services_and_exits_141(procfile: Path) -> None:
    result = into_a_closed_pipe("up", "--json", "-f", str(procfile), cwd=procfile.parent)
    assert "Traceback" not in result.stderr
    assert result.returncode == 141, result.stderr
    [service] = json.loads(run("ports", "--json", "-f", str(procfile)).stdout)["services"]
    assert service["state"] != "listening"


# --- every error path: one line, the documented code --------------------------------------


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (("reserve", "99999"), 2),
        (("reserve", "--host", "foo"), 2),
        (("reserve", "--host", "10.9.9.9"), 2),
        (("reserve", "--host", "192.0.2.77", "--hold", "5"), 2),
        (("reserve", "--name", ""), 2),
        (("reserve", "--hold", "0"), 2),
        (("who", "http"), 2),
        (("who",), 2),
        (("list", "--bogus"), 2),
        (("kill", "0"), 2),
        (("kill", str(NOBODY), "--signal", "NOPE"), 2),
        (("kill", str(NOBODY)), 1),
        (("release", str(NOBODY)), 1),
        (("run",), 2),
        (("run", "--ready-timeout", "0", "--", "true"), 2),
        (("run", "--env", "1X", "--", "true"), 2),
        (("run", "--host", "10.9.9.9", "--", "true"), 2),
        (("run", "--", "/nonexistent/program"), 5),
        (("run", "--", PYTHON, "-c", "raise SystemExit(3)"), 5),
        (("up", "-f", "/nonexistent/Procfile"), 2),
        (("ports", "-f", "/nonexistent/Procfile"), 2),
        (("ports", "--format", "yaml"), 2),
        (("wait", str(NOBODY), "--timeout", "0.05"), 8),
        (("wait", str(NOBODY), "--udp"), 2),
        (("wait", str(NOBODY), "--host", "nowhere"), 2),
        (("frobnicate",), 2),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else str(value),
)
def test_every_failure_is_one_line_and_its_code(
    arguments: tuple[str, ...], code: int, tmp_path: Path
) -> None:
    assert_one_line(run(*arguments, cwd=tmp_path), code)
    if "--" not in arguments:
        json_error(run(*arguments, "--json", cwd=tmp_path), code)


def test_a_host_that_is_not_here_names_the_option_and_what_is_allowed() -> None:
    line = assert_one_line(run("reserve", "--host", "10.9.9.9"), 2)
    assert "--host '10.9.9.9'" in line
    assert "allowed: localhost, 127.0.0.1" in line
    error = json_error(run("reserve", "--host", "10.9.9.9", "--json"), 2)
    assert error["type"] == "AddressNotAvailableError"
    assert error["host"] == "10.9.9.9"
    assert "argument --host" in assert_one_line(run("wait", "1", "--host", "nowhere"), 2)


@pytest.mark.parametrize("arguments", [("reserve",), ("list",), ("release", str(NOBODY))])
def test_an_unusable_lock_directory_is_exit_6(arguments: tuple[str, ...], tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)  # world-writable without the sticky bit: refused
    result = run(*arguments, "--json", env={"LOCALPORT_DIR": str(unsafe)})
    error = json_error(result, 6)
    assert error["type"] == "LockDirError"


def test_a_bad_range_is_a_usage_error() -> None:
    assert_one_line(run("reserve", env={"LOCALPORT_RANGE": "abc"}), 2)


def test_a_busy_port_gives_command_line_advice_and_its_holders(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    line = assert_one_line(run("reserve", str(port)), 3)
    assert "reserve()" not in line
    assert "`localport reserve`" in line
    error = json_error(run("reserve", str(port), "--json"), 3)
    assert error["type"] == "PortInUseError"
    assert error["port"] == port
    [holder] = error["holders"]
    assert holder["pid"] == child.pid
    assert set(holder) >= PROCESS
    assert holder["command"] == "python -c"


def test_a_full_range_gives_command_line_advice(spawn: Any) -> None:
    port = spawn(LISTENING_CHILD).read()
    result = run("reserve", "--json", env={"LOCALPORT_RANGE": f"{port}-{port}"})
    error = json_error(result, 3)
    assert error["type"] == "NoFreePortError"
    assert error["port_range"] == [port, port]
    assert "port_range" not in error["message"]
    assert "LOCALPORT_RANGE" in error["message"]


def test_a_busy_port_for_run_is_exit_3(spawn: Any) -> None:
    port = spawn(LISTENING_CHILD).read()
    assert_one_line(run("run", "--port", str(port), "--", "true"), 3)


def test_kill_without_a_terminal_is_refused_as_json(spawn: Any) -> None:
    port = spawn(LISTENING_CHILD).read()
    error = json_error(run("kill", str(port), "--json"), 4)
    assert error["type"] == "Refused"


def test_release_of_what_is_not_a_hold_is_refused(spawn: Any) -> None:
    child = spawn(
        """
        import json, sys, localport
        with localport.reserve() as reservation:
            print(json.dumps(reservation.port), flush=True)
            sys.stdin.read()
        """
    )
    port = child.read()
    error = json_error(run("release", str(port), "--json"), 4)
    assert error["port"] == port
    assert error["holder"]["pid"] == child.pid


def test_an_unexpected_exception_is_one_line_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from localport.cli import _main, _show

    def broken(arguments: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(_show, "list_command", broken)
    assert _main.main(["list", "--json"]) == 70
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert "RuntimeError: boom" in captured.err
    assert json.loads(captured.out)["error"]["code"] == 70


# --- hidden internal commands, each command's usage and help ------------------------------


def test_internal_commands_are_named_nowhere() -> None:
    for arguments in (("frobnicate",), ("--help",), ("reserve", "--bogus")):
        result = run(*arguments)
        assert "_hold" not in result.stdout + result.stderr
    assert "choose from reserve, who" in run("frobnicate").stderr


def test_the_internal_holder_is_still_callable() -> None:
    # Its report goes to descriptor 1 here, and it holds the port for a moment only.
    result = run("_hold", "--seconds", "0.1", "--report-fd", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["holder_pid"] > 0


@pytest.mark.parametrize("command", ["reserve", "who", "list", "kill", "release", "wait"])
def test_a_bad_option_shows_the_commands_own_usage(command: str) -> None:
    port = [str(NOBODY)] if command in ("who", "kill", "release", "wait") else []
    result = run(command, *port, "--bogus")
    assert_one_line(result, 2)
    assert result.stderr.startswith(f"usage: localport {command} ")
    assert "unrecognized arguments: --bogus" in result.stderr


def test_every_option_of_every_command_has_help() -> None:
    from localport.cli._parser import INTERNAL_COMMANDS, build_parser, command_parser

    parser = build_parser()
    for name in ("reserve", "who", "list", "kill", "release", "run", "up", "ports", "wait"):
        assert name not in INTERNAL_COMMANDS
        for action in command_parser(parser, name)._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("command", ["reserve", "who", "run", "wait"])
def test_a_commands_help_lists_its_own_exit_codes(command: str) -> None:
    help_text = run(command, "--help").stdout
    assert "exit codes:" in help_text
    assert "`localport --help` lists every code" in help_text
    assert "nothing to report or act on" not in help_text  # the global table's line
    full = run("--help").stdout
    assert "nothing to report or act on" in full
    assert "141" in full


# --- --json on every command: one process schema --------------------------------------------


def test_who_and_list_describe_processes_the_same_way(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    [holder] = json.loads(run("who", str(port), "--json").stdout)["holders"]
    listing = json.loads(run("list", "--all", "--json").stdout)
    [listed] = [h for h in listing["listening"] if h["pid"] == child.pid]
    for process in (holder, listed):
        assert set(process) >= PROCESS
        assert process["cmdline"][0] == PYTHON
        assert process["command"] == "python -c"


def test_reserve_hold_list_and_release_as_json() -> None:
    report = json.loads(run("reserve", "--hold", "60", "--json").stdout)
    pid = report["holder_pid"]
    try:
        [listed] = json.loads(run("list", "--json").stdout)["reservations"]
        assert set(listed) >= PROCESS
        assert listed["pid"] == pid
        assert isinstance(listed["cmdline"], list)
        assert listed["command"] == "localport reserve --hold"
        released = run("release", str(report["port"]), "--json")
        assert released.returncode == 0, released.stderr
        answer = json.loads(released.stdout)
        assert answer["released"] is True
        assert answer["port"] == report["port"]
        assert answer["holder"]["pid"] == pid
        assert set(answer["holder"]) >= PROCESS
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_kill_dry_run_describes_the_process(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    report = json.loads(run("kill", str(port), "--dry-run", "--json").stdout)
    [action] = report["actions"]
    assert action["kind"] == "process"
    assert set(action) >= PROCESS | {"signal", "grace"}
    assert action["pid"] == child.pid
    assert isinstance(action["cmdline"], list)


def test_wait_as_json(spawn: Any) -> None:
    port = spawn(LISTENING_CHILD).read()
    result = run("wait", str(port), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "port": port,
        "host": "127.0.0.1",
        "proto": "tcp",
        "state": "listening",
    }
    error = json_error(run("wait", str(port), "--free", "--timeout", "0.05", "--json"), 8)
    assert error["type"] == "WaitTimeoutError"
    assert error["waited_for"] == "free"


def test_run_prints_one_line_of_json_once_ready(tmp_path: Path) -> None:
    with popen("run", "--json", "--name", "web", "--", *SERVER) as process:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert set(ready) >= PROCESS | {"port", "host", "url", "name"}
        assert ready["name"] == "web"
        assert ready["command"] == "python -m http.server"
        assert ready["cmdline"][-3] == str(ready["port"])
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        assert process.stdout.read() == ""  # the server's own output went to stderr


def test_up_prints_one_line_of_json_once_ready(procfile: Path) -> None:
    with popen("up", "--json", "-f", str(procfile)) as process:
        assert process.stdout is not None
        [web] = json.loads(process.stdout.readline())["services"]
        assert set(web) >= PROCESS | {"name", "port", "url"}
        assert web["name"] == "web"
        assert web["command"] == "python -m http.server"
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_ports_json_is_format_json(procfile: Path) -> None:
    plain = json.loads(run("ports", "--json", "-f", str(procfile)).stdout)
    assert plain == json.loads(run("ports", "--format", "json", "-f", str(procfile)).stdout)
    assert [service["name"] for service in plain["services"]] == ["web"]


def test_the_python_api_keeps_its_own_advice() -> None:
    """The command line's advice is set for the duration of a command, not for the API."""
    from localport import AddressNotAvailableError, NoFreePortError
    from localport._errors import advice
    from localport.cli._shared import CLI_ADVICE

    error = NoFreePortError((30390, 30390), 1, time_wait=1)
    assert "reuse_address=True" in str(error)
    assert "widen port_range" in str(error)
    token = advice.set(CLI_ADVICE)
    try:
        assert "LOCALPORT_REUSEADDR=1" in str(error)
        assert "port_range" not in str(error)
        assert "--host '10.9.9.9'" in str(AddressNotAvailableError("10.9.9.9"))
    finally:
        advice.reset(token)
    assert "for host '10.9.9.9'" in str(AddressNotAvailableError("10.9.9.9"))
