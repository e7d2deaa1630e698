"""The lock directory: where it is, and whether it is safe to meet other processes in.

The default is private to the user (``$XDG_RUNTIME_DIR/localport``, else
``<tempdir>/localport-<uid>``, mode 0700). ``LOCALPORT_DIR`` (or ``lock_dir=``) names a shared
one, which others may write to only if the sticky bit keeps them from deleting or renaming
lock files they do not own: a lock file replaced while held would let a second process lock
a new inode at the same path, and both would own the port.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass

from . import _platform
from ._errors import LockDirError

LOCK_DIR_ENV = "LOCALPORT_DIR"

#: Lock directories whose parents passed :func:`_check_parents` in this process. A verdict
#: stands: each of those directories belongs to you or root and no one else may rename its
#: entries, so only you or root could change it since (and a reserve() per test should not
#: pay a walk up to ``/`` each time).
_SAFE_PARENTS: set[str] = set()


@dataclass(frozen=True)
class LockDir:
    """A checked lock directory."""

    path: str
    #: Named by the caller or ``LOCALPORT_DIR`` (others may use it), not the private default.
    shared: bool


def open_lock_dir(lock_dir: str | None, *, write: bool = True) -> LockDir:
    """Resolve (argument, ``LOCALPORT_DIR``, default) and check it.

    For a reader (*write* false) a missing directory is left missing: it holds no
    reservations, and a read creates nothing. A writer's is created, and must be writable.
    """
    shared = True
    path = lock_dir if lock_dir is not None else _from_environment()
    if path is None:
        shared = False
        path = default_lock_dir()
    path = os.path.abspath(path)
    try:
        _check_directory(path, private=not shared)
    except FileNotFoundError:
        if not write:
            return LockDir(path, shared)
        try:
            _make_directory(path)
        except OSError as error:
            raise LockDirError(path, f"it cannot be created: {error.strerror}") from error
        _check_directory(path, private=not shared)
    except LockDirError:
        raise
    except OSError as error:  # too long a name, a file where a parent should be...
        raise LockDirError(path, f"it cannot be used: {error.strerror or error}") from error
    if _platform.system.posix_permissions and path not in _SAFE_PARENTS:
        try:
            _check_parents(path)
        except LockDirError:
            raise
        except OSError as error:
            reason = f"the directories above it cannot be checked: {error.strerror or error}"
            raise LockDirError(path, reason) from error
    if write and not os.access(path, os.W_OK | os.X_OK):
        # Otherwise every lock file fails to be made and a walk ends "all ports busy".
        raise LockDirError(path, "you cannot create files in it (its mode, or a read-only disk)")
    if _platform.system.posix_permissions:
        _SAFE_PARENTS.add(path)
    return LockDir(path, shared)


def _from_environment() -> str | None:
    """``LOCALPORT_DIR``: ``~`` expanded; a relative path is refused, not made under the current
    directory, where each command would find another one."""
    text = os.environ.get(LOCK_DIR_ENV, "")
    if not text:
        return None
    path = os.path.expanduser(text)
    if not os.path.isabs(path) or "\x00" in path:
        raise LockDirError(
            text, f"{LOCK_DIR_ENV} must be an absolute path (such as /tmp/shared-ports)"
        )
    return path


def default_lock_dir() -> str:
    """The private per-user lock directory used when neither argument nor setting names one."""
    return _platform.system.default_lock_dir()


def _check_directory(path: str, *, private: bool) -> None:
    """Refuse a lock directory another user could tamper with."""
    info = os.lstat(path)  # FileNotFoundError: the caller creates it
    if stat.S_ISLNK(info.st_mode):
        raise LockDirError(
            path, "it is a symbolic link; remove it, localport creates the directory"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise LockDirError(path, "it is not a directory; remove it or set LOCALPORT_DIR elsewhere")
    if not _platform.system.posix_permissions:
        return
    uid = os.getuid()
    loose = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if private:
        if info.st_uid != uid:
            raise LockDirError(
                path,
                f"it belongs to uid {info.st_uid}, not to you (uid {uid}); someone may have "
                "planted it: remove it, or point LOCALPORT_DIR at a directory you own",
            )
        if info.st_mode & 0o077 or info.st_mode & 0o700 != 0o700:
            raise LockDirError(
                path,
                f"its mode is {stat.S_IMODE(info.st_mode):04o}, but a private lock directory "
                f"must be 0700; run: chmod 700 {path}",
            )
        return
    # A shared directory (LOCALPORT_DIR or lock_dir=): others may create lock files in it, but
    # they must not be able to delete or rename ours (that splits a lock across two inodes).
    if info.st_uid not in (uid, 0):
        raise LockDirError(
            path,
            f"it belongs to uid {info.st_uid}, who could delete or replace the lock files you "
            "hold; use a directory owned by you or by root (such as one made with: "
            "sudo install -d -m 1777 DIR)",
        )
    if loose and not info.st_mode & stat.S_ISVTX:
        raise LockDirError(
            path,
            "it is writable by others without the sticky bit, so another user could delete or "
            f"replace lock files; run: chmod 1777 {path} (or 1770 with a shared group), or use "
            "a directory of your own",
        )


def _check_parents(path: str) -> None:
    """Refuse a lock directory that another user could move away, through a directory above it.

    Whoever may rename entries of a parent could rename the lock directory (or a directory
    between) aside, with the files we hold, and put a new one in its place. Every directory
    from ``/`` down, on the path as written and, where it passes a symbolic link, as resolved,
    must belong to you or root and, if others may write to it, be sticky (as ``/tmp`` is).
    """
    uid = os.getuid()
    checked = []
    for directory in _parents(os.path.dirname(path)):
        info = os.lstat(directory)
        if stat.S_ISLNK(info.st_mode):  # then check where the path really leads, too
            resolved = os.path.realpath(os.path.dirname(path))
            checked += [(above, os.stat(above)) for above in _parents(resolved)]
            break
        checked.append((directory, info))
    for directory, info in checked:
        reason = ""
        if info.st_uid not in (uid, 0):
            reason = f"belongs to uid {info.st_uid}"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            reason = f"is writable by others (mode {stat.S_IMODE(info.st_mode):04o}) and not sticky"
        if reason:
            raise LockDirError(
                path,
                f"the directory {directory} above it {reason}, so another user could move the "
                "lock directory away and put another in its place; use a directory whose "
                "parents only you or root can change",
            )


def _parents(directory: str) -> list[str]:
    """*directory* and every directory above it, up to ``/``."""
    chain = [directory]
    while True:
        above = os.path.dirname(directory)
        if above == directory:
            return chain
        chain.append(above)
        directory = above


def _make_directory(path: str) -> None:
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
