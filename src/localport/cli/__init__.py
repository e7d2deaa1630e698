"""The ``localport`` command.

:func:`main` parses the arguments and maps every failure to one line on stderr and a
documented exit code (see ``localport --help``); each command lives in a module of its own and
is imported only when it runs, so a command pays only for what it uses.
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
