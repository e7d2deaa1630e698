"""``launch_services()``: several services that know each other's ports, started together.

The engine of ``localport up``, usable from any launcher. In order:

1. every argument and command is checked, and every ``{port:NAME}`` resolved, before
   anything is reserved or started;
2. each *server* (a command that mentions its own port) gets a sticky port named after it,
   scoped to the project directory, so a restart gets the same ports and another checkout
   of the project gets its own;
3. every service is started with its placeholders filled and, for every server, ``NAME_PORT``
   and ``NAME_URL`` in its environment (``PORT`` for its own);
4. the servers are waited for together, each until it listens on its port; one that exits,
   listens elsewhere or never listens stops everything.

Each reservation is held until its server exits, so nothing takes a port in between.
"""

from __future__ import annotations

import os  # noqa: TC003 - the API reference evaluates os.PathLike in signatures
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import _platform
from ._arguments import (
    check_bool,
    check_directory,
    check_environment,
    check_scope,
    check_seconds,
    normalize_host,
)
from ._child import Child, child_environment
from ._errors import PlaceholderError, ServerStartError
from ._launch import check_stop_if, recorded_addresses
from ._placeholders import (
    Address,
    environment_names,
    expand,
    is_server,
    referenced_names,
    wants_fd,
)
from ._readiness import Failure, Readiness
from ._reserve import reserve
from ._service import Service, Services

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._reservation import Reservation

_POLL = 0.02
_NAME_LIMIT = 64


def launch_services(
    services: Mapping[str, str | Sequence[str]],
    *,
    scope: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    ready_timeout: float = 30.0,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    output: Callable[[str, str], None] | None = None,
    port_range: tuple[int, int] | str | None = None,
    lock_dir: str | os.PathLike[str] | None = None,
    reuse_address: bool = True,
    stop_if: Callable[[], bool] | None = None,
) -> Services:
    """Start several services that know each other's ports; return once every server listens.

    A command that mentions its own port (``{port}``, ``{url}``, ``{fd}``, ``$PORT`` or
    ``${PORT}``) is a *server*: it gets a sticky port named after it (scoped to *scope*),
    ``PORT``, and is waited for. Every other command is a *worker*: no port, no wait. Every
    command may use ``{port}``, ``{url}``, ``{host}``, ``{fd}`` (see :func:`launch`) and
    another server's ``{port:NAME}`` and ``{url:NAME}``; every service gets ``NAME_PORT``
    and ``NAME_URL`` for every server (``API_PORT`` for ``api``). A name that is not a
    server here is looked up among the names recorded in *scope* (a server started
    separately). The output of each goes to *output* as ``(name, line)``.

    .. versionadded:: 0.2.0

    :param services: name to command: a str is a shell command line (``/bin/sh -c``, as a
        Procfile's); a sequence is the program and its arguments.
    :param scope: the project directory the servers' sticky ports belong to (see
        :func:`project_directory`); ``None`` makes the names global to the lock directory.
    :param host: the address the servers bind.
    :param ready_timeout: seconds for every server to listen.
    :param cwd: their working directory.
    :param env: their base environment (default: this process's).
    :param output: called with ``(name, line)`` for each line a service prints, from a
        reading thread; default: the lines are only kept (:attr:`Service.output_tail`).
    :param port_range: the range to pick from, as for :func:`reserve`.
    :param lock_dir: the lock directory, as for :func:`reserve`.
    :param reuse_address: as for :func:`launch`.
    :param stop_if: called while waiting; when it says True, everything is stopped and
        :class:`ServerStartError` raised (see :func:`launch`).
    :raises ServerStartError: a service could not be started, or a server exited, listened
        elsewhere or did not listen in time; everything started is stopped and every port
        released. Its ``service`` names the service.
    :raises TypeError, ValueError: bad arguments or placeholders, before anything happens.
    """
    commands = _check_services(services)
    timeout = check_seconds(ready_timeout, "ready_timeout")
    directory = check_directory(cwd, "cwd")
    base = check_environment(env)
    checked_scope = check_scope(scope)
    host = normalize_host(host)
    reuse = check_bool(reuse_address, "reuse_address")
    check_stop_if(stop_if)
    servers = [name for name, command in commands.items() if is_server(_text(command))]
    others = _resolve_others(commands, servers, checked_scope, lock_dir)
    reservations: dict[str, Reservation] = {}
    try:
        for name in servers:
            reservations[name] = reserve(
                name=name,
                scope=checked_scope,
                host=host,
                port_range=port_range,
                lock_dir=lock_dir,
                reuse_address=reuse,
            )
    except BaseException:
        for reservation in reservations.values():
            reservation.release()
        raise
    addresses = {
        **others,
        **{n: Address(r.port, r.url(), r.host) for n, r in reservations.items()},
    }
    starter = _Starter(addresses, host=host, cwd=directory, base=base, output=output)
    started = starter.start_all(commands, reservations)
    group = Services([service for service, _ in started], checked_scope)
    try:
        _wait_for_servers(group, {s.name: r for s, r in started if r}, timeout, stop_if)
    except BaseException:
        group.stop()
        raise
    return group


def _text(command: str | Sequence[str]) -> str:
    return command if isinstance(command, str) else " ".join(command)


def _check_services(services: object) -> dict[str, str | list[str]]:
    if not isinstance(services, Mapping) or not services:
        msg = f"services must be a non-empty mapping of name to command, got {services!r}"
        raise TypeError(msg)
    checked: dict[str, str | list[str]] = {}
    for name, command in services.items():
        if not isinstance(name, str) or not name or len(name) > _NAME_LIMIT or "\x00" in name:
            msg = f"a service name must be 1 to {_NAME_LIMIT} characters, got {name!r}"
            raise ValueError(msg)
        if isinstance(command, str):
            if not command.strip() or "\x00" in command:
                msg = f"service {name!r}: the command must be non-empty text without NUL"
                raise ValueError(msg)
            checked[name] = command
        elif (
            isinstance(command, (list, tuple))
            and command
            and all(isinstance(part, str) and "\x00" not in part for part in command)
        ):
            checked[name] = list(command)
        else:
            msg = f"service {name!r}: the command must be a str or a list of str, got {command!r}"
            raise TypeError(msg)
    return checked


def _resolve_others(
    commands: Mapping[str, str | list[str]],
    servers: Sequence[str],
    scope: str | None,
    lock_dir: str | os.PathLike[str] | None,
) -> dict[str, Address]:
    """The addresses of names the commands refer to that are not servers here: each one's
    recorded port in *scope*. :raises PlaceholderError: a name nothing recorded."""
    wanted: dict[str, str] = {}
    for name, command in commands.items():
        for reference in referenced_names(_text(command)):
            if reference not in servers:
                wanted.setdefault(reference, name)
    found = recorded_addresses(list(wanted), scope=scope, lock_dir=lock_dir)
    for reference, user in wanted.items():
        if reference not in found:
            where = "is not a server here (its command uses no port)"
            if reference not in commands:
                where = "is no service here, and no port is recorded for that name"
            msg = f"service {user!r} names {reference!r} in a placeholder, which {where}"
            raise PlaceholderError(msg, reference)
    return found


@dataclass(frozen=True)
class _Starter:
    """What every service is started with: the servers' addresses, and where output goes."""

    addresses: Mapping[str, Address]
    host: str
    cwd: str | None
    base: Mapping[str, str] | None
    output: Callable[[str, str], None] | None

    def start_all(
        self, commands: Mapping[str, str | list[str]], reservations: Mapping[str, Reservation]
    ) -> list[tuple[Service, Readiness | None]]:
        """Start every service in order, each with what tells whether it is ready (``None``
        for a worker); on any failure stop those started and release every port."""
        started: list[tuple[Service, Readiness | None]] = []
        try:
            for name, command in commands.items():
                started.append(self.start(name, command, reservations.get(name)))
        except BaseException:
            for service, _ in reversed(started):
                service.stop()
            for reservation in reservations.values():
                reservation.release()
            raise
        return started

    def environment(self, reservation: Reservation | None) -> dict[str, str]:
        extra: dict[str, str] = {}
        for name, address in self.addresses.items():
            port_variable, url_variable = environment_names(name)
            extra[port_variable], extra[url_variable] = str(address.port), address.url
        if reservation is not None:
            extra["PORT"] = str(reservation.port)
        environment = child_environment(self.base, extra)
        if reservation is None:
            environment.pop("PORT", None)  # a worker has no port, whatever the shell had
        return environment

    def fill(
        self, name: str, command: str | list[str], own: Address | None, fd: int | None
    ) -> list[str]:
        """The program and arguments to run, placeholders filled (a str runs in the shell)."""
        others, host = self.addresses, self.host
        try:
            if isinstance(command, str):
                line = expand(command, own=own, others=others, fd=fd, host=host)
                return [*_platform.system.shell, line]
            return [expand(part, own=own, others=others, fd=fd, host=host) for part in command]
        except PlaceholderError as error:
            msg = f"service {name!r}: {error}"
            raise PlaceholderError(msg, error.name) from None

    def start(
        self, name: str, command: str | list[str], reservation: Reservation | None
    ) -> tuple[Service, Readiness | None]:
        own = self.addresses[name] if reservation is not None else None
        listener = reservation.listen() if reservation and wants_fd(_text(command)) else None
        output = self.output
        sink = None if output is None else (lambda line: output(name, line))
        try:
            fd = None if listener is None else listener.fileno()
            argv = self.fill(name, command, own, fd)
            try:
                child = Child(
                    argv,
                    cwd=self.cwd,
                    env=self.environment(reservation),
                    sink=sink,
                    pass_fds=() if fd is None else (fd,),
                )
            except OSError as error:
                port = 0 if reservation is None else reservation.port
                reason = f"could not be started: {error.strerror}: {argv[0]!r}"
                raise ServerStartError(port, reason, None, (), service=name) from error
        finally:
            if listener is not None:
                listener.close()  # the server has its own copy now
        service = Service(name, child, reservation, _text(command))
        if reservation is None:
            return service, None
        return service, Readiness(child, reservation.port, reservation.host, "{port}")


def _wait_for_servers(
    group: Services,
    waiting: dict[str, Readiness],
    timeout: float,
    stop_if: Callable[[], bool] | None,
) -> None:
    """Wait until every server listens; raise for the first that cannot."""
    deadline = time.monotonic() + timeout
    while waiting:
        for name, readiness in list(waiting.items()):
            state = readiness.look()
            if state is True:
                del waiting[name]
            elif isinstance(state, Failure):
                _fail(group, name, state)
        exited = next((s for s in group.values() if s.port is None and s.poll() is not None), None)
        if exited is not None:
            _fail(group, exited.name, Failure(f"exited with code {exited.poll()}", exited.poll()))
        if stop_if is not None and stop_if():
            first = next(iter(waiting))
            _fail(group, first, Failure("was stopped before it listened"))
        if time.monotonic() >= deadline and waiting:
            name, readiness = next(iter(waiting.items()))
            _fail(group, name, readiness.timed_out(timeout))
        if waiting:
            time.sleep(_POLL)


def _fail(group: Services, name: str, failure: Failure) -> None:
    service = group[name]
    group.stop()
    raise ServerStartError(
        service.port or 0,
        failure.reason,
        failure.exit_code,
        service.output_tail,
        service=name,
    )
