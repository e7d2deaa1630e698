from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


pytest_plugins = ["pytester"]

# Tests that need fixed port numbers, or a range of their own, use 24000-31999: outside
# localport's default range (49152-65535, where every other test picks) and below the
# kernel's default ephemeral range (32768-60999), so neither other xdist workers nor outgoing
# connections ever touch them. Each test (and each variant of one) has its own numbers: tests
# have separate lock directories, which coordinate only through the kernel. Blocks: 24000-29099
# the core tests (reserve, launch, cli, concurrency, lock files...), 29200-29219 any-address,
# 29300-29399 plugin replacement and hostile input, 29600-29799 containers, 29800-29899
# compromised files, shared directories, privileged ranges, fuzz, holder search, faults, kill
# identity, 31000-31199 load tests. Pick a new number with grep.


# The suite must never touch a real lock directory: the user's private default, or the one their
# LOCALPORT_DIR names. Each test points LOCALPORT_DIR at a directory of its own (the lock_dir
# fixture below); before that, for the whole run, the controller points it at a run directory
# that collection, session fixtures, xdist workers and every child inherit. At the end the
# controller checks that the real directories gained no lock file, and fails the run if they did.
_RUN_DIR_KEY = pytest.StashKey[str]()
_WATCH_KEY = pytest.StashKey["dict[str, dict[str, tuple[int, int]]]"]()
_STARTED_KEY = pytest.StashKey[float]()
_LEAKS_KEY = pytest.StashKey["list[str]"]()


def _real_lock_dirs() -> list[str]:
    """The lock directories a test that lost its LOCALPORT_DIR would use."""
    from localport._lockdir import default_lock_dir

    uid = os.getuid() if hasattr(os, "getuid") else 0
    candidates = [
        default_lock_dir(),  # $XDG_RUNTIME_DIR/localport, else <tempdir>/localport-<uid>
        os.path.join(tempfile.gettempdir(), f"localport-{uid}"),  # a child without XDG_RUNTIME_DIR
        os.path.join("/tmp", f"localport-{uid}"),  # a child with neither it nor TMPDIR
    ]
    shared = os.environ.get("LOCALPORT_DIR", "")
    if shared and os.path.isabs(shared):
        candidates.append(shared)
    return list(dict.fromkeys(os.path.realpath(path) for path in candidates))


def _lock_files(directory: str) -> dict[str, tuple[int, int]]:
    """Each lock file in *directory*: its (inode, mtime in ns)."""
    files = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:  # missing (the usual case for the fallbacks) or unreadable
        return {}
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        files[entry.name] = (info.st_ino, info.st_mtime_ns)
    return files


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller set everything up
        return
    config.stash[_WATCH_KEY] = {path: _lock_files(path) for path in _real_lock_dirs()}
    config.stash[_STARTED_KEY] = time.time()
    run_dir = tempfile.mkdtemp(prefix="localport-tests-")
    os.chmod(run_dir, 0o700)
    config.stash[_RUN_DIR_KEY] = run_dir
    os.environ["LOCALPORT_DIR"] = run_dir


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _WATCH_KEY not in config.stash:
        return
    from localport._lockfile import read_record

    started = config.stash[_STARTED_KEY]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    leaks = []
    for directory, before in config.stash[_WATCH_KEY].items():
        for name, identity in _lock_files(directory).items():
            if before.get(name) == identity:
                continue
            path = os.path.join(directory, name)
            record = read_record(path) or {}
            process_started = record.get("process_started")
            if isinstance(process_started, (int, float)) and process_started < started - 1:
                continue  # made by a process older than this run: not one of its own
            with_stat = os.stat(path, follow_symlinks=False) if os.path.lexists(path) else None
            if with_stat is not None and with_stat.st_uid != uid:
                continue  # another user's, in a shared directory
            leaks.append(f"{path} (pid {record.get('pid', '?')})")
    if leaks:
        config.stash[_LEAKS_KEY] = leaks
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    leaks = config.stash.get(_LEAKS_KEY, [])
    if leaks:
        terminalreporter.section("lock files left in a real lock directory", red=True)
        terminalreporter.line(
            f"lock files appeared in a real lock directory during this run ({len(leaks)}): a "
            "test or a child it started did not use its own LOCALPORT_DIR (or another program "
            "reserved ports there meanwhile):",
            red=True,
        )
        for leak in leaks[:20]:
            terminalreporter.line(f"  {leak}")


def pytest_unconfigure(config: pytest.Config) -> None:
    run_dir = config.stash.get(_RUN_DIR_KEY, None)
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(autouse=True)
def lock_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own lock directory; children inherit it through LOCALPORT_DIR."""
    path = tmp_path_factory.mktemp("locks")
    path.chmod(0o700)
    monkeypatch.setenv("LOCALPORT_DIR", str(path))
    monkeypatch.delenv("LOCALPORT_RANGE", raising=False)
    return path


class Child:
    """A Python child process that speaks JSON lines on stdout and is killed by PID at teardown."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self, timeout: float = 30.0) -> Any:
        """The next JSON line the child printed."""
        assert self.process.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                msg = f"child {self.pid} printed nothing within {timeout} s"
                raise TimeoutError(msg)
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            msg = f"child {self.pid} exited with {self.process.returncode}: {stderr}"
            raise AssertionError(msg)
        return json.loads(line)

    def send(self, text: str = "go") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 30.0) -> str:
        """Close stdin (the child's signal to exit) and wait; returns stderr."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        self.process.wait(timeout)
        stderr = self.process.stderr.read() if self.process.stderr else ""
        assert self.process.returncode == 0, stderr
        return stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start ``python -c CODE`` children; every one is ended by its PID when the test ends."""
    children: list[Child] = []

    def start(code: str, *args: str, env: dict[str, str] | None = None) -> Child:
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        child = Child(process)
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
        for stream in (child.process.stdin, child.process.stdout, child.process.stderr):
            if stream is not None:
                stream.close()
