"""The one place that asks which operating system this is.

Everything that differs between systems (where sockets and their processes are found, process
start times, held file locks, the kernel's ephemeral range, the default lock directory, socket
options, process groups) is a method of :class:`~localport._platform.portable.Portable`,
overridden by :class:`~localport._platform.linux.Linux` and
:class:`~localport._platform.windows.Windows`. One instance, :data:`system`, is chosen here
once; the rest of localport asks it and never tests ``sys.platform`` itself. Tests of another
system's path replace :data:`system` (``monkeypatch.setattr(_platform, "system", Portable())``).
"""

from __future__ import annotations

import sys

from .portable import Portable, ProcessFacts, SocketRecord


def _choose() -> Portable:
    name = sys.platform  # a variable, so that type checkers keep every branch
    if name.startswith("linux"):
        from .linux import Linux

        return Linux()
    if name == "win32":
        from .windows import Windows

        return Windows()
    return Portable()


#: The answers for the system this process runs on.
system: Portable = _choose()

__all__ = ["Portable", "ProcessFacts", "SocketRecord", "system"]
