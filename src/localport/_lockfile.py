"""Lock files: opened by localport itself, locked with filelock's descriptor primitive.

Holding a port's lock file *is* the reservation: the kernel drops the lock the moment the
holder dies, even on ``SIGKILL``, so no stale state can block anyone. The file is opened here
and locked with :func:`filelock.lock_descriptor` (``flock`` on Unix, ``LockFileEx`` on
Windows), not through :class:`filelock.FileLock`, whose per-acquire bookkeeping (fork gates,
``realpath``, ``mkdir -p``, an exclusive create before the reopen, a release run twice) cost
about 40 times the lock itself. What ``FileLock`` checked, this module checks:

- the path is opened without following a symbolic link someone planted there
  (``O_NOFOLLOW``), without blocking on a FIFO (``O_NONBLOCK``), and never leaks into a
  started program (``O_CLOEXEC``); it is created only when missing, and never truncated;
- a file that is not a regular file or has another hard link (a link to a file elsewhere) is
  refused (``OSError``). In a shared directory another user's lock file is used: its owner
  could delete it while you hold it, which the reservation's claim detects (see
  :meth:`localport._registry.Registry.claim`), but refusing it would keep that port from
  everyone else for good;
- every held descriptor is referenced from here, and a forked child closes its copies without
  unlocking them: ``flock`` belongs to the open file description the two processes share, so
  a child's unlock would free its parent's reservation.

The record (pid, process start time, name, protocol, host, times) is JSON written through the
locked descriptor, padded with spaces so a shorter record needs no ``ftruncate``; readers
parse the first JSON value and ignore what follows. It describes the holder and is never
trusted alone to grant a port.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from typing import Any

#: Reads must never block on a FIFO or follow a link someone planted at a lock file's path.
_NO_SURPRISES = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_READ_FLAGS = os.O_RDONLY | _NO_SURPRISES
_LOCK_FLAGS = os.O_RDWR | _NO_SURPRISES | getattr(os, "O_CLOEXEC", 0)
#: What opening something other than a regular file for writing fails with.
_NOT_A_FILE = frozenset({errno.EISDIR, errno.ENXIO, errno.EOPNOTSUPP})
RECORD_LIMIT = 4096
_RECORD_BLOCK = 512
# Built once: json.dumps() with non-default options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
_DECODER = json.JSONDecoder()


class LockedPort:
    """A lock file this process holds: its locked descriptor and its path."""

    __slots__ = ("fd", "path", "pid")

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.pid = os.getpid()

    def intact(self) -> bool:
        """Whether the locked file is still the one at its path: not unlinked (no links left)
        and not replaced (the path names the same device and inode). ``True`` once released
        elsewhere or unknowable (the path cannot be checked for another reason)."""
        try:
            held = os.fstat(self.fd)
        except OSError:
            return True
        if held.st_nlink == 0:
            return False
        try:
            there = os.lstat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            return True
        return (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Let go of the lock and close the descriptor (the file stays: lock files are never
        unlinked). Does nothing in a forked child."""
        if os.getpid() != self.pid or not _HELD.forget(self):
            return
        from filelock import unlock_descriptor

        try:
            unlock_descriptor(self.fd)
        finally:
            os.close(self.fd)


class _Held:
    """Every lock file this process holds, so that a forked child can close its copies."""

    def __init__(self) -> None:
        self._locks: set[LockedPort] = set()
        self._mutex = threading.Lock()

    def add(self, locked: LockedPort) -> None:
        with self._mutex:
            self._locks.add(locked)

    def forget(self, locked: LockedPort) -> bool:
        with self._mutex:
            if locked not in self._locks:
                return False
            self._locks.discard(locked)
            return True

    def close_in_child(self) -> None:
        # A mutex held by another thread at fork time would never be released in the child.
        self._mutex = threading.Lock()
        for locked in self._locks:
            with contextlib.suppress(OSError):
                os.close(locked.fd)  # close, never unlock: the lock is the parent's
        self._locks.clear()


_HELD = _Held()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_HELD.close_in_child)


def open_lock_file(path: str) -> int | None:
    """Open *path* to lock it; ``None`` when it does not exist yet."""
    try:
        fd = os.open(path, _LOCK_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno in _NOT_A_FILE:  # a directory or a socket planted at the path
            raise PermissionError(
                errno.EPERM, "refusing lock file: not a regular file", path
            ) from error
        raise
    _check_or_close(fd, path)
    return fd


def create_lock_file(path: str, *, shared: bool) -> int:
    """Create *path* (or open it, if another process just did) to lock it.

    :param shared: the directory is shared: the file is made so that every co-user can lock
        it (mode 0666 whatever the umask), else private to you (0600).
    """
    mode = 0o666 if shared else 0o600
    try:
        fd = os.open(path, _LOCK_FLAGS | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        existing = open_lock_file(path)
        if existing is None:  # created and gone again: lock files are never unlinked
            raise FileNotFoundError(errno.ENOENT, "lock file vanished", path) from None
        return existing
    if shared and hasattr(os, "fchmod"):
        try:
            # Others lock it too, so they need to open it read-write whatever our umask says.
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
    return fd


def _check_or_close(fd: int, path: str) -> None:
    try:
        info = os.fstat(fd)
        reason = ""
        if not stat.S_ISREG(info.st_mode):
            reason = "it is not a regular file"
        elif info.st_nlink > 1:
            reason = "it has another hard link"
        if reason:
            raise PermissionError(errno.EPERM, f"refusing lock file: {reason}", path)
    except BaseException:
        os.close(fd)
        raise


def lock(fd: int, path: str) -> LockedPort | None:
    """Lock *fd* without waiting; ``None`` (and *fd* closed) when another holder has it."""
    from filelock import lock_descriptor  # tens of ms to import: only once a lock is needed

    # Referenced before it is locked: a fork from another thread in between must find it
    # there, or the child would keep an uncounted copy of a held lock.
    held = LockedPort(fd, path)
    _HELD.add(held)
    try:
        locked = lock_descriptor(fd, blocking=False)
    except BaseException:
        _HELD.forget(held)
        os.close(fd)
        raise
    if not locked:
        _HELD.forget(held)
        os.close(fd)
        return None
    return held


# -- records -------------------------------------------------------------------------------------


def write_record(fd: int, record: dict[str, Any]) -> None:
    """Write *record* at the start of the file, padded to a whole block with spaces."""
    data = _ENCODER.encode(record).encode()
    size = -(-max(len(data), 1) // _RECORD_BLOCK) * _RECORD_BLOCK
    os.pwrite(fd, data.ljust(size), 0)


def read_record_fd(fd: int) -> dict[str, Any] | None:
    try:
        return parse_record(os.pread(fd, RECORD_LIMIT, 0))
    except OSError:
        return None


def read_record(path: str) -> dict[str, Any] | None:
    """The record at *path*, read without the lock: a description, maybe stale or partial."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:
        return None
    try:
        return parse_record(os.read(fd, RECORD_LIMIT))
    except OSError:
        return None
    finally:
        os.close(fd)


def parse_record(data: bytes) -> dict[str, Any] | None:
    """The first JSON object in *data* (what follows it is padding or an older record's tail)."""
    try:
        record, _ = _DECODER.raw_decode(data.decode(errors="replace").lstrip())
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None
