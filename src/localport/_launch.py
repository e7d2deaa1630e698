"""``launch()``: start a dev server on a reserved port and wait until it listens."""

from __future__ import annotations

import os  # noqa: TC003 - the API reference evaluates os.PathLike in signatures
import time
from typing import IO, TYPE_CHECKING

from . import _platform
from ._arguments import (
    check_bool,
    check_command,
    check_directory,
    check_env_var,
    check_environment,
    check_scope,
    check_seconds,
)
from ._child import Child, StartedProgram, StoppedOnExit, child_environment
from ._errors import PlaceholderError, ServerStartError
from ._placeholders import Address, expand, referenced_names, wants_fd
from ._readiness import Failure, Readiness
from ._reservation import LIVE, Reservation
from ._reserve import reserve

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence


_POLL = 0.02


class Server(StartedProgram, StoppedOnExit):
    """A server started by :func:`launch`, listening on its reserved port.

    The port stays reserved until the server exits. Use it as a context manager, or call
    :meth:`stop`.
    """

    def __init__(self, child: Child, reservation: Reservation) -> None:
        super().__init__(child)
        self._reservation = reservation

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

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the server to exit by itself, and return its exit code.

        Processes it started and left behind in its process group are ended too.
        """
        code = self._child.wait(timeout)
        self._reservation.release()
        return code

    def stop(self, timeout: float = 5.0) -> int:
        """Stop the server: SIGTERM to its process group, SIGKILL after *timeout* seconds.

        :returns: its exit code (negative: the signal that ended it).
        """
        code = self._child.stop(timeout)
        self._reservation.release()
        return code

    def __repr__(self) -> str:
        state = "running" if self.poll() is None else f"exited {self.poll()}"
        return f"<Server {self.url} pid={self.pid} {state}>"


def recorded_addresses(
    names: Sequence[str], *, scope: str | None, lock_dir: str | os.PathLike[str] | None
) -> dict[str, Address]:
    """The addresses ``{port:NAME}`` and ``{url:NAME}`` stand for: each name's recorded port
    in *scope* (see :func:`localport.reserve`'s sticky names), for the names recorded."""
    if not names:
        return {}
    from ._addresses import url_host
    from ._arguments import check_lock_dir
    from ._registry import Registry

    registry = Registry.open(check_lock_dir(lock_dir), write=False)
    return {
        record.name: Address(
            record.port, f"http://{url_host(record.host)}:{record.port}", record.host
        )
        for record in registry.recorded_names(scope)
        if record.name in names
    }


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
    reservation: Reservation | None = None,
    scope: str | os.PathLike[str] | None = None,
) -> Server:
    """Start *cmd* as a server on a reserved port and return once it listens there.

    The port is reserved first (lock and guard), the placeholders in the arguments are
    replaced, and ``PORT`` (or *env_var*) is set in its environment. The reservation is kept
    until the server exits, so nobody else gets the port meanwhile.

    Placeholders: ``{port}``, ``{host}`` and ``{url}`` (the server's own); ``{fd}``, the
    descriptor of a socket already listening on the port, which the server inherits (uvicorn
    ``--fd {fd}``, gunicorn ``--bind fd://{fd}``: no moment at which the port is unbound);
    ``{port:NAME}`` and ``{url:NAME}``, the port recorded for the sticky name *NAME* in
    *scope* (another server started with ``name=NAME``). The server also gets
    ``PYTHONUNBUFFERED=1`` unless its environment sets it, so its lines arrive as printed.

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
    :param reservation: a reservation you already hold, to start the server on instead of
        reserving one (then *name*, *port*, *host*, *port_range*, *lock_dir* and
        *reuse_address* are not given). The server takes it over: it is released when the
        server stops.

        .. versionadded:: 0.2.0
    :param scope: the project directory of *name* and of ``{port:NAME}``, as for
        :func:`reserve` (see :func:`project_directory`).

        .. versionadded:: 0.2.0
    :raises ServerStartError: it exited before listening, listened somewhere else, or did
        not listen in time (it is then stopped). The error carries its exit code and last
        output lines.
    :raises PortInUseError: *port* is taken.
    :raises ValueError: a placeholder names nothing recorded, or another bad argument.
    """
    system = _platform.system
    arguments = check_command(cmd, posix=system.posix_shell_words)
    timeout = check_seconds(ready_timeout, "ready_timeout")
    variables = check_env_var(env_var)
    directory = check_directory(cwd, "cwd")
    given_environment = check_environment(env)
    checked_scope = check_scope(scope)
    check_stop_if(stop_if)
    reuse = check_bool(reuse_address, "reuse_address")
    if reservation is not None:
        _check_own_reservation(
            reservation, name=name, port=port, host=host, port_range=port_range, lock_dir=lock_dir
        )
    names = list(dict.fromkeys(n for a in arguments for n in referenced_names(a)))
    others = recorded_addresses(names, scope=checked_scope, lock_dir=lock_dir)
    missing = [n for n in names if n not in others]
    if missing:
        where = f"project {checked_scope}" if checked_scope else "the lock directory"
        msg = (
            f"no port is recorded for the name {missing[0]!r} in {where}: start that server "
            f"first, with that name"
        )
        raise PlaceholderError(msg, missing[0])
    if reservation is None and port is not None and LIVE.holding(port) is not None:
        msg = (
            f"port {port} is reserved by this process already: pass that reservation to "
            f"launch(reservation=...) to start the server on it"
        )
        raise ValueError(msg)
    if reservation is None:
        reservation = reserve(
            port,
            name=name,
            host=host,
            port_range=port_range,
            lock_dir=lock_dir,
            reuse_address=reuse,
            scope=checked_scope,
        )
    try:
        child = _start(
            arguments,
            reservation,
            others=others,
            variables=variables,
            cwd=directory,
            env=given_environment,
            sink=None if echo is None else _line_writer(echo),
        )
    except BaseException:
        reservation.release()
        raise
    server = Server(child, reservation)
    hint = f"{{port}} or ${variables[0]}" if variables else "{port}"
    try:
        _wait_for(server, Readiness(child, server.port, server.host, hint), timeout, stop_if)
    except BaseException:
        server.stop()
        raise
    return server


def check_stop_if(stop_if: object) -> None:
    if stop_if is not None and not callable(stop_if):
        msg = f"stop_if must be a callable returning bool, or None; got {stop_if!r}"
        raise TypeError(msg)


def _check_own_reservation(reservation: object, **others: object) -> None:
    if not isinstance(reservation, Reservation):
        msg = f"reservation must be a localport Reservation or None, got {reservation!r}"
        raise TypeError(msg)
    given = [key for key, value in others.items() if value not in (None, "127.0.0.1")]
    if given:
        msg = f"reservation= already says where the server goes: do not pass {given[0]}= too"
        raise ValueError(msg)
    if reservation.released:
        msg = "reservation was released: reserve again"
        raise ValueError(msg)


def _start(
    arguments: Sequence[str],
    reservation: Reservation,
    *,
    others: Mapping[str, Address],
    variables: Sequence[str],
    cwd: str | None,
    env: Mapping[str, str] | None,
    sink: Callable[[str], None] | None,
) -> Child:
    """Fill the placeholders and start the command (with its listening socket for ``{fd}``)."""
    own = Address(reservation.port, reservation.url(), reservation.host)
    listener = reservation.listen() if any(wants_fd(a) for a in arguments) else None
    try:
        fd = None if listener is None else listener.fileno()
        command = [expand(a, own=own, others=others, fd=fd) for a in arguments]
        environment = child_environment(env, dict.fromkeys(variables, str(reservation.port)))
        try:
            return Child(
                command, cwd=cwd, env=environment, sink=sink, pass_fds=() if fd is None else (fd,)
            )
        except OSError as error:  # no such program, not executable, no such cwd
            reason = f"could not be started: {error.strerror}: {command[0]!r}"
            raise ServerStartError(reservation.port, reason, None, ()) from error
    finally:
        if listener is not None:
            listener.close()  # the server has its own copy now


def _line_writer(echo: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        echo.write(line + "\n")
        echo.flush()

    return write


def _wait_for(
    server: Server, readiness: Readiness, timeout: float, stop_if: Callable[[], bool] | None
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        state = readiness.look()
        if state is True:
            return
        if isinstance(state, Failure):
            server.stop()  # ends what it left running, which may hold its output pipe open
            raise ServerStartError(server.port, state.reason, state.exit_code, server.output_tail)
        if stop_if is not None and stop_if():
            server.stop()
            raise ServerStartError(
                server.port, "was stopped before it listened", None, server.output_tail
            )
        if time.monotonic() >= deadline:
            failure = readiness.timed_out(timeout)  # while it still runs
            server.stop()
            raise ServerStartError(server.port, failure.reason, None, server.output_tail)
        time.sleep(_POLL)
