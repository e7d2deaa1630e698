"""The exceptions localport raises.

Every error derives from :class:`LocalportError` and also from the builtin a caller would
already catch for the same failure, so ``except OSError`` around a server start keeps working.
Errors cross process boundaries (pytest-xdist ships them from workers to the controller), so
each one pickles with its attributes.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


class LocalportError(Exception):
    """Base class of every error localport raises on purpose."""


class PortInUseError(LocalportError, OSError):
    """A port asked for by number is taken.

    It is an :class:`OSError` with ``errno.EADDRINUSE``, like the error a plain ``bind()`` gives,
    so code that already handles that keeps working.

    :ivar port: the port that was asked for.
    :ivar holders: what is known about who holds it (may be empty when nothing could be learned).
    """

    def __init__(self, port: int, holders: Sequence[Any] = (), *, detail: str = "") -> None:
        self._port = port
        self._holders = tuple(holders)
        self._detail = detail
        super().__init__(errno.EADDRINUSE, self._sentence())

    @property
    def port(self) -> int:
        return self._port

    @property
    def holders(self) -> tuple[Any, ...]:
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


def _rebuild_port_in_use(port: int, holders: tuple[Any, ...], detail: str) -> PortInUseError:
    return PortInUseError(port, holders, detail=detail)


class NoFreePortError(LocalportError, OSError):
    """Every candidate port in the range was busy or reserved.

    It is an :class:`OSError` with ``errno.EADDRNOTAVAIL``, what the kernel says when it runs out
    of ports to hand out.

    :ivar port_range: the inclusive ``(low, high)`` range that was searched.
    :ivar busy: how many candidates were rejected because something held them.
    """

    def __init__(self, port_range: tuple[int, int], busy: int, *, count: int = 1) -> None:
        self._port_range = port_range
        self._busy = busy
        self._count = count
        super().__init__(errno.EADDRNOTAVAIL, self._sentence())

    @property
    def port_range(self) -> tuple[int, int]:
        return self._port_range

    @property
    def busy(self) -> int:
        return self._busy

    def _sentence(self) -> str:
        low, high = self._port_range
        wanted = "free port" if self._count == 1 else f"{self._count} consecutive free ports"
        return (
            f"no {wanted} left in {low}-{high}: "
            f"{self._busy} of {high - low + 1} ports are in use or reserved; "
            "widen port_range (or LOCALPORT_RANGE) or release some reservations"
        )

    def __str__(self) -> str:
        return self._sentence()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_no_free_port, (self._port_range, self._busy, self._count))


def _rebuild_no_free_port(port_range: tuple[int, int], busy: int, count: int) -> NoFreePortError:
    return NoFreePortError(port_range, busy, count=count)


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
