"""The installed version, read only when someone asks.

``importlib.metadata`` costs tens of milliseconds to import, which every ``import localport``
and every command would pay if the version were read up front.
"""

from __future__ import annotations

#: The distribution whose metadata carries the version.
DISTRIBUTION = "localport-reserve"


def installed_version() -> str:
    """The installed version, or ``"0+unknown"`` for a source tree never installed."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
