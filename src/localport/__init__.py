"""Reserve free local ports safely across processes, and say who holds a busy one.

>>> from localport import reserve
>>> with reserve() as reservation:
...     49152 <= reservation.port <= 65535
True
"""

from __future__ import annotations

from importlib import metadata as _metadata

from ._errors import LocalportError, LockDirError, NoFreePortError, PortInUseError
from ._holders import Holder, listening, who_holds
from ._registry import ReservationInfo
from ._reserve import (
    Reservation,
    ReservationGroup,
    is_free,
    reservations,
    reserve,
    reserve_many,
)

try:
    __version__ = _metadata.version("localport")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Holder",
    "LocalportError",
    "LockDirError",
    "NoFreePortError",
    "PortInUseError",
    "Reservation",
    "ReservationGroup",
    "ReservationInfo",
    "__version__",
    "is_free",
    "listening",
    "reservations",
    "reserve",
    "reserve_many",
    "who_holds",
]
