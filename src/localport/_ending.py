"""One context-manager base for everything that holds something until it is ended: a
reservation (released) and a started server or group of services (stopped)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self


class EndsOnExit:
    """A context manager whose exit calls :meth:`_end`: ``release()`` or ``stop()``."""

    __slots__ = ()

    def _end(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._end()
