"""The exceptions localport raises, all of them.

Every error derives from :class:`LocalportError` and also from the builtin a caller would
already catch for the same failure, so ``except OSError`` around a server start keeps working.
Errors cross process boundaries (pytest-xdist ships them from workers to the controller), so
each one pickles with its attributes.

This module imports nothing of localport's own at run time: every other module may raise these.
"""

from __future__ import annotations

import errno
import os
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._holders import Holder


class Advice(NamedTuple):
    """What an error tells its reader to do, in the reader's terms.

    The Python API speaks of arguments (``reserve()`` without a port, ``port_range``); the
    command line speaks of commands and options. Each message takes its advice from
    :data:`advice` when it is said, so the command line sets its own for the duration of a
    command instead of rewriting messages.
    """

    #: What to do instead of waiting for a busy port.
    another_port: str
    #: What to do when the range has no free port.
    widen_range: str
    #: How to take ports that only TIME_WAIT leftovers hold.
    reuse_address: str
    #: How the address a port was asked for is named.
    host_argument: str
    #: Which addresses may be asked for.
    hosts_allowed: str


PYTHON_ADVICE = Advice(
    another_port="call reserve() without a port",
    widen_range="widen port_range (or LOCALPORT_RANGE) or release some reservations",
    reuse_address="pass reuse_address=True or set LOCALPORT_REUSEADDR=1",
    host_argument="host",
    hosts_allowed="use 127.0.0.1, ::1, 0.0.0.0, :: or an address of one of its interfaces",
)
#: The advice messages give now: the Python API's, unless a front end set its own.
advice: ContextVar[Advice] = ContextVar("localport_advice", default=PYTHON_ADVICE)


class LocalportError(Exception):
    """Base class of every error localport raises on purpose."""


class PortInUseError(LocalportError, OSError):
    """A port asked for by number is taken.

    It is an :class:`OSError` with ``errno.EADDRINUSE``, like the error a plain ``bind()`` gives,
    so code that already handles that keeps working.

    :ivar port: the port that was asked for.
    :ivar holders: who holds it, as :func:`localport.who_holds` reports them (may be empty
        when nothing could be learned).
    """

    def __init__(self, port: int, holders: Sequence[Holder] = (), *, detail: str = "") -> None:
        self._port = port
        self._holders = tuple(holders)
        self._detail = detail
        super().__init__(errno.EADDRINUSE, self._sentence())

    @property
    def port(self) -> int:
        return self._port

    @property
    def holders(self) -> tuple[Holder, ...]:
        return self._holders

    def _sentence(self) -> str:
        text = f"port {self._port} is in use"
        if self._detail:
            text += f" {self._detail}"
        return text

    def __str__(self) -> str:
        return self._sentence()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_port_in_use, (self._port, self._holders, self._detail))


def _rebuild_port_in_use(port: int, holders: tuple[Holder, ...], detail: str) -> PortInUseError:
    return PortInUseError(port, holders, detail=detail)


class NoFreePortError(LocalportError, OSError):
    """Every candidate port in the range was busy or reserved.

    It is an :class:`OSError` with ``errno.EADDRNOTAVAIL``, what the kernel says when it runs out
    of ports to hand out.

    :ivar port_range: the inclusive ``(low, high)`` range that was searched.
    :ivar busy: how many candidates were rejected because something held them.
    :ivar time_wait: how many of those only TIME_WAIT leftovers of closed connections held
        (``reuse_address=True`` takes them; counted where the kernel can say).
    """

    def __init__(
        self, port_range: tuple[int, int], busy: int, *, count: int = 1, time_wait: int = 0
    ) -> None:
        self._port_range = port_range
        self._busy = busy
        self._count = count
        self._time_wait = time_wait
        super().__init__(errno.EADDRNOTAVAIL, self._sentence())

    @property
    def port_range(self) -> tuple[int, int]:
        return self._port_range

    @property
    def busy(self) -> int:
        return self._busy

    @property
    def time_wait(self) -> int:
        return self._time_wait

    def _sentence(self) -> str:
        low, high = self._port_range
        wanted = "free port" if self._count == 1 else f"{self._count} consecutive free ports"
        text = (
            f"no {wanted} left in {low}-{high}: "
            f"{self._busy} of {high - low + 1} ports are in use or reserved"
        )
        said = advice.get()
        if self._time_wait:
            text += (
                f" ({self._time_wait} only by TIME_WAIT leftovers of closed connections, which "
                f"a server that sets SO_REUSEADDR can bind: {said.reuse_address})"
            )
        return f"{text}; {said.widen_range}"

    def __str__(self) -> str:
        return self._sentence()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_no_free_port,
            (self._port_range, self._busy, self._count, self._time_wait),
        )


def _rebuild_no_free_port(
    port_range: tuple[int, int], busy: int, count: int, time_wait: int = 0
) -> NoFreePortError:
    return NoFreePortError(port_range, busy, count=count, time_wait=time_wait)


class AddressNotAvailableError(LocalportError, OSError):
    """The ``host`` a port was asked for is not an address of this machine.

    It is an :class:`OSError` with ``errno.EADDRNOTAVAIL``, the error a ``bind()`` to that
    address gives. ``reserve(host="192.0.2.7")`` raises it once the kernel has said so; no
    port is reserved.

    .. versionadded:: 0.2.0

    :ivar host: the address that was asked for.
    """

    def __init__(self, host: str) -> None:
        self._host = host
        super().__init__(errno.EADDRNOTAVAIL, self._sentence())

    @property
    def host(self) -> str:
        return self._host

    def _sentence(self) -> str:
        said = advice.get()
        return (
            f"cannot reserve a port for {said.host_argument} {self._host!r}: it is not an "
            f"address of this machine ({said.hosts_allowed})"
        )

    def __str__(self) -> str:
        return self._sentence()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._host,))


class LockDirError(LocalportError, OSError):
    """The lock directory is unsafe or unusable.

    :ivar lock_dir: the directory that was refused.
    :ivar reason: why, in words, with what to do about it.
    """

    def __init__(self, lock_dir: str | os.PathLike[str], reason: str) -> None:
        self._lock_dir = os.fspath(lock_dir)
        self._reason = reason
        super().__init__(errno.EPERM, self._sentence())

    @property
    def lock_dir(self) -> str:
        return self._lock_dir

    @property
    def reason(self) -> str:
        return self._reason

    def _sentence(self) -> str:
        return f"refusing lock directory {self._lock_dir}: {self._reason}"

    def __str__(self) -> str:
        return self._sentence()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._lock_dir, self._reason))


class PlaceholderError(LocalportError, ValueError):
    """A placeholder in a command that cannot be filled: a form that does not exist (such as
    ``{host:api}``), or a ``{port:NAME}``/``{url:NAME}`` naming no server.

    :ivar name: the service name it named, if any.

    .. versionadded:: 0.2.0
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self._name = name

    @property
    def name(self) -> str | None:
        return self._name

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self._name))


class ProcfileError(LocalportError, ValueError):
    """A Procfile or ``.env`` file that cannot be used: missing, malformed, a name defined
    twice, an empty command, a placeholder naming no server. The message names the file and
    the line.

    .. versionadded:: 0.2.0
    """


class WaitTimeoutError(LocalportError, TimeoutError):
    """A wait for a port ran out of time.

    :ivar port: the port waited for.
    :ivar timeout: the seconds waited.
    """

    def __init__(self, port: int, timeout: float, what: str) -> None:
        self._port = port
        self._timeout = timeout
        self._what = what
        super().__init__(f"port {port}: {what} within {timeout:g} s")

    @property
    def port(self) -> int:
        return self._port

    @property
    def timeout(self) -> float:
        return self._timeout

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._port, self._timeout, self._what))


class ServerStartError(LocalportError, RuntimeError):
    """A launched server exited, or never listened on its port.

    :ivar port: the port it was given (0 for a service of :func:`launch_services` that has
        no port).
    :ivar returncode: its exit code, or ``None`` if it was still running (and was stopped).
    :ivar output: the last lines it printed.
    :ivar service: the service's name, for :func:`launch_services`; else ``None``.

        .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        port: int,
        reason: str,
        returncode: int | None,
        output: Sequence[str],
        service: str | None = None,
    ) -> None:
        self._port = port
        self._reason = reason
        self._returncode = returncode
        self._output = tuple(output)
        self._service = service
        text = self.summary
        if self._output:
            text += "; its last output:\n" + "\n".join(f"  | {line}" for line in self._output)
        super().__init__(text)

    @property
    def port(self) -> int:
        return self._port

    @property
    def returncode(self) -> int | None:
        return self._returncode

    @property
    def output(self) -> tuple[str, ...]:
        return self._output

    @property
    def service(self) -> str | None:
        return self._service

    @property
    def summary(self) -> str:
        """The message's first sentence, without the output lines.

        .. versionadded:: 0.2.0
        """
        if self._service is None:
            return f"the server for port {self._port} {self._reason}"
        if self._port:
            return f"{self._service} (port {self._port}) {self._reason}"
        return f"{self._service} {self._reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            type(self),
            (self._port, self._reason, self._returncode, self._output, self._service),
        )
