"""Which project a command runs in: the directory that scopes its sticky names.

Two checkouts of one project (two clones, or git worktrees side by side) must each keep
their own stable ports for ``api`` and ``web``; a name alone would make them fight over one
port and move each other's URLs. ``localport up`` scopes its names to the Procfile's
directory; ``localport run`` finds the same directory from wherever it is started.
"""

from __future__ import annotations

import os

from ._arguments import check_directory

PROCFILE = "Procfile"


def project_directory(start: str | os.PathLike[str] | None = None) -> str:
    """The project directory of *start* (default: the current directory).

    That is the nearest directory upward that has a ``Procfile``, looking no further up than
    the top of the git checkout or worktree (the nearest directory with a ``.git`` entry);
    else that top; else *start* itself. Symbolic links are resolved. It is what
    ``localport up`` and ``localport run`` use as the scope of sticky names; pass it as
    ``scope=`` to :func:`reserve` or :func:`launch` to share their ports.

    .. versionadded:: 0.2.0

    :param start: the directory to look from.
    :raises TypeError, ValueError: *start* is not a path.
    """
    given = check_directory(start, "start")
    here = os.path.realpath(os.getcwd() if given is None else given)
    directory = here
    while True:
        if os.path.isfile(os.path.join(directory, PROCFILE)):
            return directory
        if os.path.lexists(os.path.join(directory, ".git")):
            return directory  # a Procfile above the checkout belongs to something else
        parent = os.path.dirname(directory)
        if parent == directory:
            return here
        directory = parent
