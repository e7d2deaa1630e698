"""A started program: its process group, its output, and stopping it without leftovers.

Shared by :func:`localport.launch` (one server) and :func:`localport.launch_services`
(servers and workers). Each program runs in a process group of its own, so a stop reaches
whatever it started (a reloader's worker, a shell's child), and its output (stdout and
stderr together) is read line by line by a thread that keeps the last lines for error
messages and passes every line to a *sink*.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
from typing import TYPE_CHECKING

from . import _platform
from ._ending import EndsOnExit

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

TAIL_LINES = 20


class Child:
    """One started program and the thread that reads its output."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        cwd: str | None,
        env: Mapping[str, str],
        sink: Callable[[str], None] | None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        """Start *command*; *sink* is called with each line of its output, without the
        newline, from the reading thread.

        :raises OSError: it could not be started (no such program, not executable, no such
            *cwd*).
        """
        system = _platform.system
        self.process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=system.process_groups,
            pass_fds=tuple(pass_fds),
        )
        #: Set when :meth:`stop` had to escalate to the kill signal.
        self.killed = False
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._reader = threading.Thread(
            target=self._copy_output,
            args=(sink,),
            name=f"localport-{self.process.pid}",
            daemon=True,
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to exit by itself; what it left in its group is ended too."""
        code = self.process.wait(timeout)
        self._end_group()
        return code

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM to the process group, the kill signal after *timeout* seconds.

        :returns: the exit code (negative: the signal that ended it).
        """
        system = _platform.system
        if self.process.poll() is None:
            system.signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                system.signal_group(self.process, system.kill_signal)
                self.process.wait()
        self._end_group()
        return self.process.returncode

    def _end_group(self) -> None:
        # Children that outlived the program (a reloader's worker) go with its group.
        _platform.system.signal_group(self.process, _platform.system.kill_signal)
        self._reader.join(5)
        # A descendant outside the process group (it called setsid) may still hold the pipe:
        # closing it under the reader thread would block, so the reader is left to see EOF.
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()

    def tree(self) -> set[int]:
        """The program's PID and its descendants' (only the PID where that cannot be read)."""
        import psutil

        pid = self.process.pid
        try:
            return {pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))}
        except psutil.Error:
            return {pid}

    def _copy_output(self, sink: Callable[[str], None] | None) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in iter(stdout.readline, b""):
                line = raw.decode(errors="replace").rstrip("\r\n")
                self.tail.append(line)
                if sink is not None:
                    try:
                        sink(line)
                    except Exception:  # noqa: BLE001, S112 - a caller's sink must not stop
                        # the reading: the program would block once its pipe filled up.
                        continue


class StoppedOnExit(EndsOnExit):
    """Ended by ``stop()``."""

    __slots__ = ()

    def stop(self, timeout: float = 5.0) -> object:
        raise NotImplementedError

    def _end(self) -> None:
        self.stop()


class StartedProgram:
    """What a started :class:`~localport.Server` and :class:`~localport.Service` show of their
    program."""

    def __init__(self, child: Child) -> None:
        self._child = child

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The process that was started."""
        return self._child.process

    @property
    def pid(self) -> int:
        """Its PID: on POSIX the leader of a new session, whose process group holds it and
        everything it starts."""
        return self._child.pid

    @property
    def output_tail(self) -> tuple[str, ...]:
        """The last lines it printed (stdout and stderr together)."""
        return tuple(self._child.tail)

    @property
    def killed(self) -> bool:
        """Whether stopping it took the kill signal (it did not exit after SIGTERM in time).

        .. versionadded:: 0.2.0
        """
        return self._child.killed

    def poll(self) -> int | None:
        """The exit code once it has exited, else ``None``."""
        return self._child.poll()


def child_environment(base: Mapping[str, str] | None, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment a program gets: *base* (default: this process's), then *extra*, and
    ``PYTHONUNBUFFERED=1`` unless set, so a Python server's lines appear as it prints them
    instead of in 8 KiB blocks when its output is a pipe."""
    environment = dict(os.environ if base is None else base)
    environment.update(extra)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    return environment
