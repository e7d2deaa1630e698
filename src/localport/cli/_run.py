"""``localport run``: one dev server on a reserved port, in the foreground."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

from .._launch import Server, launch
from ._render import say
from ._shared import EXIT_USAGE, CommandError

if TYPE_CHECKING:
    import argparse


class _Interrupted(BaseException):
    """A signal that arrived while the server was starting.

    A ``BaseException``, as ``KeyboardInterrupt`` is, and for the same reason: it must unwind
    ``launch()`` (which stops the server on its way out) through any ``except Exception`` that
    guards a diagnostic on the way.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run_command(arguments: argparse.Namespace) -> int:
    command = list(arguments.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CommandError(
            "run needs a command after --, e.g. localport run -- flask run --port {port}",
            EXIT_USAGE,
        )
    # Signals are handled from before the server starts: one that arrives while it starts
    # stops it (it runs in a session of its own, so the terminal's signals do not reach it).
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    target: list[Server] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not target:
            raise _Interrupted(signum)
        with contextlib.suppress(OSError):
            os.killpg(target[0].pid, signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    try:
        spinner = _Spinner(sys.stderr) if sys.stderr.isatty() else None
        try:
            with spinner or contextlib.nullcontext():
                server = launch(
                    command,
                    name=arguments.name,
                    port=arguments.port,
                    host=arguments.host,
                    env_var=["PORT", *arguments.env],
                    ready_timeout=arguments.ready_timeout,
                    echo=sys.stdout,
                )
        except _Interrupted as interrupted:  # launch() stopped the server on its way out
            return 128 + interrupted.signum
        target.append(server)
        say(f"ready: {server.url} (pid {server.pid})")
        try:
            code = server.wait()
        finally:
            server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


class _Spinner:
    """A spinner with the elapsed time on a terminal, while the server starts."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> _Spinner:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._out.write("\r\033[K")
        self._out.flush()

    def _spin(self) -> None:
        frames = "|/-\\"
        index = 0
        while not self._stop.wait(0.1):
            elapsed = time.monotonic() - self._started
            self._out.write(
                f"\r{frames[index % 4]} waiting for the server to listen ({elapsed:.1f} s)"
            )
            self._out.flush()
            index += 1
