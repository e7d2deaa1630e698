"""Reserve free local ports safely across processes, and say who holds a busy one.

>>> from localport import reserve
>>> with reserve() as reservation:
...     49152 <= reservation.port <= 65535
True

The public names are loaded on first use: the pytest plugin imports this package in every
pytest run of every project that installs localport, and importing everything up front cost
about 35 ms there, ``importlib.metadata`` for ``__version__`` as much again.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._containers import Container
    from ._errors import (
        AddressNotAvailableError,
        LocalportError,
        LockDirError,
        NoFreePortError,
        PlaceholderError,
        PortInUseError,
        ProcfileError,
        ServerStartError,
        WaitTimeoutError,
    )
    from ._holders import Holder, listening, who_holds
    from ._launch import Server, launch
    from ._project import project_directory
    from ._registry import ReservationInfo
    from ._reservation import Reservation, ReservationGroup
    from ._reserve import is_free, reservations, reserve, reserve_many
    from ._service import Service, Services
    from ._services import launch_services
    from ._wait import wait_until_free, wait_until_listening

    __version__: str

_HOMES = {
    "AddressNotAvailableError": "_errors",
    "Container": "_containers",
    "Holder": "_holders",
    "LocalportError": "_errors",
    "LockDirError": "_errors",
    "NoFreePortError": "_errors",
    "PlaceholderError": "_errors",
    "PortInUseError": "_errors",
    "ProcfileError": "_errors",
    "Reservation": "_reservation",
    "ReservationGroup": "_reservation",
    "ReservationInfo": "_registry",
    "Server": "_launch",
    "ServerStartError": "_errors",
    "Service": "_service",
    "Services": "_service",
    "WaitTimeoutError": "_errors",
    "launch": "_launch",
    "launch_services": "_services",
    "project_directory": "_project",
    "wait_until_free": "_wait",
    "wait_until_listening": "_wait",
    "is_free": "_reserve",
    "listening": "_holders",
    "reservations": "_reserve",
    "reserve": "_reserve",
    "reserve_many": "_reserve",
    "who_holds": "_holders",
}

__all__ = [
    "AddressNotAvailableError",
    "Container",
    "Holder",
    "LocalportError",
    "LockDirError",
    "NoFreePortError",
    "PlaceholderError",
    "PortInUseError",
    "ProcfileError",
    "Reservation",
    "ReservationGroup",
    "ReservationInfo",
    "Server",
    "ServerStartError",
    "Service",
    "Services",
    "WaitTimeoutError",
    "__version__",
    "is_free",
    "launch",
    "launch_services",
    "listening",
    "project_directory",
    "reservations",
    "reserve",
    "reserve_many",
    "wait_until_free",
    "wait_until_listening",
    "who_holds",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from ._version import installed_version

        value: Any = installed_version()
    elif name in _HOMES:
        value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    else:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The public surface, plus the module's own dunders; not the helpers imported above.
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})
