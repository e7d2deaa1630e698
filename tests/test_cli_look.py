"""How the ``localport`` command reads: the COMMAND column, reservation rows, colour, the
spinner of ``run``, and what ``kill`` and ``run`` say. Real subprocesses, real servers on
127.0.0.1; colour on a real pseudo-terminal."""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers import LISTENING_CHILD

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX ptys and signals")

LOCALPORT = [sys.executable, "-m", "localport"]
FLASK_APP = Path(__file__).parent / "servers" / "flask_app.py"
ESC = "\x1b["
READY = re.compile(r"localport: ready: http://127\.0\.0\.1:(\d+) \(pid (\d+)\)")


def run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOCALPORT, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def on_a_pty(
    *arguments: str, env: dict[str, str] | None = None, timeout: float = 60.0
) -> tuple[int, str]:
    """``localport ARGUMENTS`` with stdin, stdout and stderr on a new pseudo-terminal: its
    exit code and everything it wrote there (``\\r\\n`` line ends)."""
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [*LOCALPORT, *arguments],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "TERM": "xterm", **(env or {})},
        start_new_session=True,
    )
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(controller, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(1.0):
                    continue
                try:
                    data = os.read(controller, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                output += data
        code = process.wait(10)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        os.close(controller)
    return code, output.decode(errors="replace")


@contextlib.contextmanager
def background_run(*arguments: str) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """``localport run ARGUMENTS`` once ready: the process, its port and its server's PID.
    Both are ended by PID if they outlive the test."""
    process = subprocess.Popen(
        [*LOCALPORT, "run", *arguments],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server_pid = None
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        ready = READY.search(line)
        assert ready, line
        server_pid = int(ready.group(2))
        yield process, int(ready.group(1)), server_pid
    finally:
        for pid in (server_pid, process.pid):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def table_rows(text: str) -> list[list[str]]:
    """The rows of the first table in *text*, cells split on two or more spaces."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


# -- the COMMAND column and reservation rows ---------------------------------------------------


def test_a_venv_flask_under_run_is_named_and_kill_and_run_say_what_happened() -> None:
    flask = str(Path(sys.executable).parent / "flask")
    command = [flask, "--app", str(FLASK_APP), "run", "--port", "{port}"]
    with background_run("--name", "web", "--", *command) as (process, port, server_pid):
        who = run("who", str(port))
        assert who.returncode == 0, who.stderr
        header, *rows = table_rows(who.stdout)
        by_pid = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
        assert by_pid[str(server_pid)]["COMMAND"] == "flask run"
        assert by_pid[str(server_pid)]["STATE"] == "LISTEN"
        launcher = by_pid[str(process.pid)]
        assert launcher["STATE"] == "RESERVED"
        assert launcher["ADDRESS"] == "reserved as 'web'"
        assert launcher["COMMAND"] == "localport run: flask run"
        assert ESC not in who.stdout  # piped: no colour

        wide = run("who", str(port), "--wide").stdout
        assert f"{flask} --app {FLASK_APP} run --port {port}" in wide

        holders = json.loads(run("who", str(port), "--json").stdout)["holders"]
        server = next(h for h in holders if h["pid"] == server_pid)
        assert server["command"] == "flask run"
        assert server["cmdline"][1:] == [flask, "--app", str(FLASK_APP), "run", "--port", str(port)]

        listed = run("list")
        assert table_rows(listed.stdout)[0] == ["PORT", "PROTO", "NAME", "PID", "AGE", "COMMAND"]
        [row] = table_rows(listed.stdout)[1:]
        assert row[2:4] == ["web", str(process.pid)]
        assert row[5] == "localport run: flask run"
        [reservation] = json.loads(run("list", "--json").stdout)["reservations"]
        assert reservation["command"] == "localport run: flask run"
        assert reservation["cmdline"][-7:] == ["--", *command]

        killed = run("kill", str(port), "--yes")
        assert killed.returncode == 0, killed.stderr
        assert killed.stderr == f"localport: stopped PID {server_pid}; port {port} is free\n"
        assert process.wait(30) == 128 + signal.SIGTERM
        assert process.stderr is not None
        said = process.stderr.read()
    assert f"localport: the server (pid {server_pid}) was stopped by SIGTERM\n" in said


def test_a_hold_reservation_row_names_the_reservation() -> None:
    report = json.loads(run("reserve", "--hold", "60", "--json").stdout)
    try:
        who = run("who", str(report["port"]))
        header, row = table_rows(who.stdout)
        cells = dict(zip(header, row, strict=True))
        pid = report["holder_pid"]
        assert cells["ADDRESS"] == f"reserved by localport reserve --hold (pid {pid})"
        assert cells["COMMAND"] == "localport reserve --hold"
        [held] = json.loads(run("list", "--json").stdout)["reservations"]
        assert held["command"] == "localport reserve --hold"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(report["holder_pid"], signal.SIGKILL)


# -- colour --------------------------------------------------------------------------------------


@pytest.fixture
def listener(spawn: Any) -> int:
    child = spawn(LISTENING_CHILD)
    port: int = child.read()
    return port


def test_states_are_coloured_on_a_terminal(listener: int) -> None:
    code, output = on_a_pty("who", str(listener), env={"NO_COLOR": ""})
    assert code == 0
    assert f"{ESC}32mLISTEN{ESC}0m" in output


@pytest.mark.parametrize(
    ("arguments", "env"),
    [
        ((), {"NO_COLOR": "1"}),
        ((), {"TERM": "dumb"}),
        (("--color", "never"), {}),
    ],
)
def test_no_colour_on_a_terminal_when_told(
    listener: int, arguments: tuple[str, ...], env: dict[str, str]
) -> None:
    code, output = on_a_pty(*arguments, "who", str(listener), env=env)
    assert code == 0
    assert "LISTEN" in output
    assert ESC not in output


def test_colour_always_colours_a_pipe_and_auto_does_not(listener: int) -> None:
    assert ESC not in run("who", str(listener)).stdout
    coloured = run("--color", "always", "who", str(listener), env={"NO_COLOR": "1"})
    assert f"{ESC}32mLISTEN{ESC}0m" in coloured.stdout


def test_the_colour_choice_may_follow_the_command(listener: int) -> None:
    coloured = run("who", str(listener), "--color", "always", env={"NO_COLOR": "1"})
    assert f"{ESC}32mLISTEN{ESC}0m" in coloured.stdout
    code, output = on_a_pty("--color", "always", "who", str(listener), "--color", "never")
    assert code == 0
    assert "LISTEN" in output
    assert ESC not in output  # the later choice wins


def test_up_prefixes_follow_the_same_colour_choice(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("worker: echo hello from the worker\n")
    plain = run("up", "-f", str(tmp_path / "Procfile"))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == "worker | hello from the worker\n"
    coloured = run("--color", "always", "up", "-f", str(tmp_path / "Procfile"))
    assert coloured.stdout == f"{ESC}36mworker |{ESC}0m hello from the worker\n"


def test_run_on_a_terminal_clears_the_spinner_and_shows_failing_output_once() -> None:
    # The pauses give the spinner time to be drawn; the test holds whether it was or not.
    failing = "import sys, time; time.sleep(0.5); print('cannot start: no config'); "
    failing += "time.sleep(0.5); sys.exit(7)"
    code, output = on_a_pty("run", "--", sys.executable, "-c", failing, env={"NO_COLOR": ""})
    assert code == 5
    assert output.count("cannot start: no config") == 1
    # No line shares the terminal with the spinner: each is written on a cleared line.
    assert not re.search(r"waiting for the server to listen \([\d.]+ s\)[^\r\n]", output)
    assert "exited with code 7 before listening" in output


def test_run_on_a_terminal_colours_its_ready_line_and_says_why_it_ended() -> None:
    server = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [*LOCALPORT, "run", "--", *server],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "TERM": "xterm", "NO_COLOR": ""},
        start_new_session=True,
    )
    os.close(terminal)
    output = ""
    try:
        ready = None
        while ready is None:
            output += os.read(controller, 65536).decode(errors="replace")
            ready = re.search(r"ready: \S+ \(pid (\d+)\)", output)
        os.kill(process.pid, signal.SIGTERM)  # passed on to the server
        assert process.wait(30) == 128 + signal.SIGTERM
        with contextlib.suppress(OSError):
            while chunk := os.read(controller, 65536):
                output += chunk.decode(errors="replace")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
        os.close(controller)
    assert f"{ESC}32mlocalport: ready: http://127.0.0.1:" in output
    server_pid = ready.group(1)
    assert (
        f"localport: the server (pid {server_pid}) was stopped by SIGTERM, which localport run "
        "passed on"
    ) in output


# -- kill ------------------------------------------------------------------------------------


def test_kill_says_when_it_had_to_send_kill(spawn: Any) -> None:
    ignore_term = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    stubborn = spawn(ignore_term + textwrap.dedent(LISTENING_CHILD))
    port = stubborn.read()
    result = run("kill", str(port), "--yes", "--timeout", "0.5", "--json")
    assert result.returncode == 0, result.stderr
    assert (
        f"localport: PID {stubborn.pid} did not stop after TERM within 0.5 s: sent KILL\n"
        in result.stderr
    )
    [action] = json.loads(result.stdout)["actions"]
    assert action["killed"] is True
    stubborn.process.wait(10)
    assert stubborn.process.returncode == -signal.SIGKILL


def test_kill_of_a_process_that_stops_on_term_does_not_escalate(spawn: Any) -> None:
    child = spawn(LISTENING_CHILD)
    port = child.read()
    result = run("kill", str(port), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert "KILL" not in result.stderr
    [action] = json.loads(result.stdout)["actions"]
    assert action["killed"] is False
    child.process.wait(10)
    assert child.process.returncode == -signal.SIGTERM
