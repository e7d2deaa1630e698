"""``localport run``: one dev server on a reserved port, in the foreground."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, cast

from .._errors import ServerStartError
from .._launch import Server, launch
from .._project import project_directory
from ._process import facts_fields
from ._render import say
from ._shared import EXIT_USAGE, CommandError

if TYPE_CHECKING:
    import argparse


def run_command(arguments: argparse.Namespace) -> int:
    command = list(arguments.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CommandError(
            "run needs a command after --, e.g. localport run -- flask run --port {port}",
            EXIT_USAGE,
        )
    # Signals are handled from before the server starts. Until it listens, the handler only
    # notes the signal and launch() gives up at its next look (stop_if), stopping the server:
    # an exception raised from a handler could land inside subprocess.Popen, after the fork,
    # and leave a server nobody stops. Once it listens, signals go to its process group (it
    # runs in a session of its own, so the terminal's signals do not reach it).
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    pending: list[int] = []
    target: list[Server] = []

    passed_on: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if target:
            passed_on.append(signum)
            with contextlib.suppress(OSError):
                os.killpg(target[0].pid, signum)
        else:
            pending.append(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    try:
        spinner = _Spinner(sys.stderr) if _spinner_wanted(sys.stderr) else None
        try:
            with spinner or contextlib.nullcontext():
                server = launch(
                    command,
                    name=arguments.name,
                    port=arguments.port,
                    host=arguments.host,
                    env_var=["PORT", *arguments.env],
                    ready_timeout=arguments.ready_timeout,
                    # With --json, stdout carries only the JSON line.
                    echo=cast(
                        "IO[str]", _Echo(sys.stderr if arguments.json else sys.stdout, spinner)
                    ),
                    stop_if=lambda: bool(pending),
                    scope=project_directory(),
                )
        except ServerStartError:
            if pending:  # launch() stopped the server because of the signal
                return 128 + pending[0]
            raise
        target.append(server)
        if pending:  # a signal came after launch()'s last look: stop what it started
            server.stop()
            return 128 + pending[0]
        try:
            if arguments.json:
                _print_ready(server, arguments.name)
            else:
                say(f"ready: {server.url} (pid {server.pid})", "good")
            code = server.wait()
        finally:
            server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _say_why(server.pid, code, passed_on)
    return 128 - code if code < 0 else code


def _say_why(pid: int, code: int, passed_on: list[int]) -> None:
    """Why the server ended, unless it exited by itself with 0: its code, or the signal."""
    if code < 0:
        name = _signal_name(-code)
        how = ", which localport run passed on" if -code in passed_on else ""
        say(f"the server (pid {pid}) was stopped by {name}{how}", "warn")
    elif code > 0:
        say(f"the server (pid {pid}) exited with code {code}", "warn")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _spinner_wanted(out: IO[str]) -> bool:
    """A spinner needs a terminal that understands cursor movement."""
    try:
        return out.isatty() and os.environ.get("TERM") != "dumb"
    except (OSError, ValueError):
        return False


class _Echo:
    """The server's output on stdout, written where the spinner's line was: the spinner's
    line is cleared first, and drawn again below on its next turn."""

    def __init__(self, out: IO[str], spinner: _Spinner | None) -> None:
        self._out = out
        self._spinner = spinner

    def write(self, text: str) -> int:
        with self._spinner.lock if self._spinner else contextlib.nullcontext():
            if self._spinner is not None:
                self._spinner.clear()
            written = self._out.write(text)
            self._out.flush()
        return written

    def flush(self) -> None:
        self._out.flush()


def _print_ready(server: Server, name: str | None) -> None:
    """``run --json``: one line about the server that listens, on stdout."""
    import json

    report = {"port": server.port, "host": server.host, "url": server.url, "name": name}
    print(json.dumps({**report, **facts_fields(server.pid)}, sort_keys=True), flush=True)


class _Spinner:
    """A spinner with the elapsed time on a terminal, while the server starts."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._started = time.monotonic()
        #: Held while a line is written: the spinner's, or the server's (see _Echo).
        self.lock = threading.Lock()
        self._shown = False

    def __enter__(self) -> _Spinner:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with self.lock:
            self.clear()

    def clear(self) -> None:
        """Erase the spinner's line, if it is drawn (with :attr:`lock` held)."""
        if self._shown:
            self._out.write("\r\033[K")
            self._out.flush()
            self._shown = False

    def _spin(self) -> None:
        frames = "|/-\\"
        index = 0
        while not self._stop.wait(0.1):
            elapsed = time.monotonic() - self._started
            with self.lock:
                self._out.write(
                    f"\r{frames[index % 4]} waiting for the server to listen ({elapsed:.1f} s)"
                )
                self._out.flush()
                self._shown = True
            index += 1
