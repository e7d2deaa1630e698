"""``launch()``: start a dev server on a reserved port and wait until it listens."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
from typing import IO, TYPE_CHECKING

from . import _platform
from ._arguments import (
    check_bool,
    check_command,
    check_directory,
    check_env_var,
    check_environment,
    check_seconds,
)
from ._errors import LocalportError, ServerStartError, WaitTimeoutError
from ._holders import listening_sockets
from ._reserve import reserve
from ._wait import wait_until_listening

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from types import TracebackType

    from typing_extensions import Self

    from ._reservation import Reservation

_TAIL_LINES = 20


class Server:
    """A server started by :func:`launch`, listening on its reserved port.

    The port stays reserved until the server exits. Use it as a context manager, or call
    :meth:`stop`.
    """

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        reservation: Reservation,
        tail: collections.deque[str],
        reader: threading.Thread,
    ) -> None:
        self._process = process
        self._reservation = reservation
        self._tail = tail
        self._reader = reader

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._reservation.port

    @property
    def host(self) -> str:
        """The address the server was told to bind."""
        return self._reservation.host

    @property
    def url(self) -> str:
        """``http://HOST:PORT``, reachable from this machine."""
        return self._reservation.url()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The server's process."""
        return self._process

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def output_tail(self) -> tuple[str, ...]:
        """The last lines the server printed (stdout and stderr together)."""
        return tuple(self._tail)

    def poll(self) -> int | None:
        """The exit code if the server has exited, else ``None``."""
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the server to exit by itself, and return its exit code.

        Processes it started and left behind in its process group are ended too.
        """
        code = self._process.wait(timeout)
        _platform.system.signal_group(self._process, _platform.system.kill_signal)
        self._finish()
        return code

    def stop(self, timeout: float = 5.0) -> int:
        """Stop the server: SIGTERM to its process group, SIGKILL after *timeout* seconds.

        :returns: its exit code (negative: the signal that ended it).
        """
        system = _platform.system
        if self._process.poll() is None:
            system.signal_group(self._process, signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                system.signal_group(self._process, system.kill_signal)
                self._process.wait()
        # Children that outlived the server (a reloader's worker) go with its group.
        system.signal_group(self._process, system.kill_signal)
        self._finish()
        return self._process.returncode

    def _finish(self) -> None:
        self._reservation.release()
        self._reader.join(5)
        # A descendant outside the process group (it called setsid) may still hold the pipe:
        # closing it under the reader thread would block, so the reader is left to see EOF.
        if self._process.stdout is not None and not self._reader.is_alive():
            self._process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.poll() is None else f"exited {self.poll()}"
        return f"<Server {self.url} pid={self.pid} {state}>"


def expand(arguments: Sequence[str], *, port: int, host: str, url: str) -> list[str]:
    """Replace ``{port}``, ``{host}`` and ``{url}`` in each argument (and nothing else)."""
    values = {"{port}": str(port), "{host}": host, "{url}": url}
    expanded = []
    for argument in arguments:
        text = argument
        for key, value in values.items():
            text = text.replace(key, value)
        expanded.append(text)
    return expanded


def launch(
    cmd: Sequence[str] | str,
    *,
    name: str | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    env_var: str | Sequence[str] | None = "PORT",
    ready_timeout: float = 30.0,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    echo: IO[str] | None = None,
    port_range: tuple[int, int] | str | None = None,
    lock_dir: str | os.PathLike[str] | None = None,
    stop_if: Callable[[], bool] | None = None,
    reuse_address: bool = True,
) -> Server:
    """Start *cmd* as a server on a reserved port and return once it listens there.

    The port is reserved first (lock and guard), ``{port}``, ``{host}`` and ``{url}`` in the
    arguments are replaced, and ``PORT`` (or *env_var*) is set in its environment. The
    reservation is kept until the server exits, so nobody else gets the port meanwhile.

    :param cmd: the command and its arguments (a str is split like a shell would).
    :param name: a sticky name: the server gets the same port on the next run while free.
    :param port: this exact port instead of a picked one.
    :param host: the address the server binds; waiting checks that clients of it get through.
    :param env_var: the environment variable that carries the port (or several), or ``None``.
    :param ready_timeout: seconds to wait for the server to listen.
    :param cwd: its working directory.
    :param env: its environment (default: this process's).
    :param echo: where the server's output goes, line by line (default: discarded, but the
        last lines are kept for :class:`ServerStartError` and :attr:`Server.output_tail`).
    :param port_range: the range to pick from, as for :func:`reserve`.
    :param lock_dir: the lock directory, as for :func:`reserve`.
    :param stop_if: called while waiting for the server to listen; when it says True, the
        server is stopped and :class:`ServerStartError` raised. A launcher that must give up
        on a signal sets a flag in its handler and passes ``lambda: flag``, instead of
        raising from the handler, which could leave a half-started server behind.

        .. versionadded:: 0.2.0
    :param reuse_address: take a port that only TIME_WAIT leftovers hold, as dev servers set
        ``SO_REUSEADDR`` and bind it at once (see :func:`reserve`); pass ``False`` for a
        server that does not.

        .. versionadded:: 0.2.0
    :raises ServerStartError: it exited before listening, or did not listen in time (it is
        then stopped). The error carries its exit code and last output lines.
    :raises PortInUseError: *port* is taken.
    """
    system = _platform.system
    arguments = check_command(cmd, posix=system.posix_shell_words)
    timeout = check_seconds(ready_timeout, "ready_timeout")
    variables = check_env_var(env_var)
    directory = check_directory(cwd, "cwd")
    given_environment = check_environment(env)
    checked_stop_if: object = stop_if  # typed callers cannot get this wrong; untyped ones can
    if checked_stop_if is not None and not callable(checked_stop_if):
        msg = f"stop_if must be a callable returning bool, or None; got {stop_if!r}"
        raise TypeError(msg)
    reservation = reserve(
        port,
        name=name,
        host=host,
        port_range=port_range,
        lock_dir=lock_dir,
        reuse_address=check_bool(reuse_address, "reuse_address"),
    )
    try:
        url = reservation.url()
        command = expand(arguments, port=reservation.port, host=reservation.host, url=url)
        environment = dict(os.environ if given_environment is None else given_environment)
        for variable in variables:
            environment[variable] = str(reservation.port)
        try:
            process = subprocess.Popen(
                command,
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=system.process_groups,
            )
        except OSError as error:  # no such program, not executable, no such cwd
            reason = f"could not be started: {error.strerror}: {command[0]!r}"
            raise ServerStartError(reservation.port, reason, None, ()) from error
    except BaseException:
        reservation.release()
        raise
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    reader = threading.Thread(
        target=_copy_output,
        args=(process, tail, echo),
        name=f"localport-{process.pid}",
        daemon=True,
    )
    reader.start()
    server = Server(process, reservation, tail, reader)
    try:
        _wait_for(server, timeout, variables[0] if variables else None, stop_if)
    except BaseException:
        server.stop()
        raise
    return server


def _copy_output(
    process: subprocess.Popen[bytes], tail: collections.deque[str], echo: IO[str] | None
) -> None:
    assert process.stdout is not None
    with contextlib.suppress(OSError, ValueError):
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            if echo is not None:
                with contextlib.suppress(OSError, ValueError):
                    echo.write(line + "\n")
                    echo.flush()


def _wait_for(
    server: Server, timeout: float, variable: str | None, stop_if: Callable[[], bool] | None
) -> None:
    port, host = server.port, server.host

    def stopped() -> bool:
        return stop_if is not None and stop_if()

    try:
        wait_until_listening(
            port,
            host=host,
            timeout=timeout,
            stop_if=lambda: server.poll() is not None or stopped(),
        )
    except WaitTimeoutError:
        elsewhere = _listens_elsewhere(server)  # while it still runs
        server.stop()
        reason = f"did not listen on it within {timeout:g} s"
        if elsewhere:
            hint = f"{{port}} or ${variable}" if variable else "{port}"
            reason += f"; it listens on {elsewhere} instead: pass {hint} to it"
        raise ServerStartError(port, reason, None, server.output_tail) from None
    if stopped():
        server.stop()
        raise ServerStartError(port, "was stopped before it listened", None, server.output_tail)
    code = server.poll()
    if code is not None:
        server.stop()  # ends what it left running, which may hold its output pipe open
        raise ServerStartError(
            port, f"exited with code {code} before listening", code, server.output_tail
        )
    foreign = _foreign_listener(server)
    if foreign:
        raise ServerStartError(port, foreign, None, server.output_tail)


def _tree(pid: int) -> set[int]:
    """*pid* and its descendants."""
    import psutil

    try:
        process = psutil.Process(pid)
        return {pid, *(child.pid for child in process.children(recursive=True))}
    except psutil.Error:
        return {pid}


def _foreign_listener(server: Server) -> str:
    """A sentence if the port's listener is not the launched process (or its children)."""
    found = listening_sockets(server.port, server.host)
    if not found:
        return ""  # asked by connecting (not Linux): the listener cannot be named
    from ._holders import pids_of

    pids = pids_of(found)
    if not pids or pids & _tree(server.pid):
        return ""  # unknown owner (another user's), or ours
    return (
        f"did not listen on it: PID {min(pids)} does, not the launched command (PID "
        f"{server.pid}); something outside localport bound the port by number"
    )


def _listens_elsewhere(server: Server) -> str:
    """Where the launched command's process tree listens instead, if anywhere (Linux)."""
    from ._holders import listening

    try:
        tree = _tree(server.pid)
        places = sorted(
            {
                f"{holder.address_text}:{holder.local_address[1]}"
                for holder in listening()
                if holder.pid in tree and holder.local_address is not None
            }
        )
    except (OSError, LocalportError):
        return ""
    return ", ".join(places)
