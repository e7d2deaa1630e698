from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
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
