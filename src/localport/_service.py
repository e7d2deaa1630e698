"""What :func:`localport.launch_services` returns: each started :class:`Service`, and the
:class:`Services` together, which stop newest first."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._child import StartedProgram, StoppedOnExit

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ._child import Child
    from ._reservation import Reservation


class Service(StartedProgram):
    """One service started by :func:`launch_services`: a server (with a port) or a worker."""

    def __init__(
        self, name: str, child: Child, reservation: Reservation | None, command: str
    ) -> None:
        super().__init__(child)
        self._name = name
        self._reservation = reservation
        self._command = command

    @property
    def name(self) -> str:
        """Its name, the key of :class:`Services` and the sticky name of its port."""
        return self._name

    @property
    def command(self) -> str:
        """The command as given, placeholders unfilled."""
        return self._command

    @property
    def port(self) -> int | None:
        """Its port, or ``None`` for a worker (a command that uses no port)."""
        return None if self._reservation is None else self._reservation.port

    @property
    def url(self) -> str | None:
        """``http://HOST:PORT`` for a server, else ``None``."""
        return None if self._reservation is None else self._reservation.url()

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM to its process group, the kill signal after *timeout* seconds; its port is
        released. :returns: its exit code (negative: the signal that ended it)."""
        try:
            return self._child.stop(timeout)
        finally:
            if self._reservation is not None:
                self._reservation.release()

    def __repr__(self) -> str:
        state = "running" if self.poll() is None else f"exited {self.poll()}"
        where = f" {self.url}" if self.url else ""
        return f"<Service {self._name}{where} pid={self.pid} {state}>"


class Services(Mapping[str, Service], StoppedOnExit):
    """The services :func:`launch_services` started, by name, in the order given.

    A context manager: leaving it stops them all (newest first).
    """

    def __init__(self, services: Sequence[Service], scope: str | None) -> None:
        self._services = {service.name: service for service in services}
        self._scope = scope

    @property
    def scope(self) -> str | None:
        """The project directory their ports are scoped to."""
        return self._scope

    def __getitem__(self, name: str) -> Service:
        return self._services[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._services)

    def __len__(self) -> int:
        return len(self._services)

    def exited(self) -> Service | None:
        """A service that has exited, if any (the first in order)."""
        return next((s for s in self._services.values() if s.poll() is not None), None)

    def wait(self, timeout: float | None = None) -> Service | None:
        """Wait until a service exits by itself and return it (``None`` after *timeout*)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (service := self.exited()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return service

    def stop(self, timeout: float = 5.0) -> dict[str, int]:
        """Stop every service, newest first (see :meth:`Service.stop`).

        :returns: each service's exit code, by name.
        """
        return {
            service.name: service.stop(timeout)
            for service in reversed(list(self._services.values()))
        }

    def __repr__(self) -> str:
        return f"<Services {', '.join(repr(s) for s in self._services.values())}>"
