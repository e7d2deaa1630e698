"""Reading the registry without taking any lock: what is reserved, by whom, and for how long.

A reader that tried each lock and let go would make a concurrent ``reserve()`` of that port
fail, so readers never lock. On Linux the kernel's table of held locks (``/proc/locks``) says
which lock files are held, by inode; a record on its own is only a description, trusted where
the system cannot say (another process's liveness and start time are checked then).

A lease (``release(lease=...)``) holds no lock: its lock file's modification time is set to the
end of the lease, so a listing reads only the records of files that are held or whose time
lies in the future, not all 16,000 of a well-used directory.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from . import _platform
from ._registry import info_from_record, lease_live

if TYPE_CHECKING:
    from ._registry import Registry, ReservationInfo


def lock_files(registry: Registry) -> list[tuple[int, os.DirEntry[str]]]:
    """The lock files of *registry*, by port."""
    found = []
    try:
        with os.scandir(registry.path) as entries:
            for entry in entries:
                port = registry.port_of(entry.name)
                if port is not None:
                    found.append((port, entry))
    except OSError:
        return []
    found.sort(key=lambda item: item[0])
    return found


def mark_lease(fd: int, until: float) -> None:
    """Set the lock file's modification time to the end of its lease (see above)."""
    if os.utime in os.supports_fd:
        # Another user's file cannot be dated ahead: the lease holds, a listing may miss it.
        with contextlib.suppress(OSError):
            os.utime(fd, (time.time(), until))


def record_process_alive(record: dict[str, Any]) -> bool:
    """Whether the process a record names still runs (the same one: PID and start time)."""
    pid = record.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
        return False
    recorded = record.get("process_started")
    started = float(recorded) if isinstance(recorded, (int, float)) else None
    return _platform.system.same_process(pid, started)


def _record_says_taken(record: dict[str, Any] | None, now: float) -> bool:
    if record is None:
        return False
    if record.get("released") is not None:
        return lease_live(record, now)
    return record_process_alive(record)


def is_reserved(registry: Registry, port: int, now: float) -> bool:
    """Whether a live reservation or lease covers *port*."""
    held = _platform.system.held_lock_inodes()
    if held is None:
        return _record_says_taken(registry.read_record(port), now)
    try:
        info = os.lstat(registry.lock_path(port))
    except OSError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return True  # a planted symlink or other oddity: reserve() cannot use this port
    if info.st_ino in held:
        # The lock is the truth. Its record may still describe an earlier, released
        # reservation while a new holder is midway through taking the port.
        return True
    record = registry.read_record(port)
    return record is not None and lease_live(record, now)


def describe(registry: Registry, port: int) -> ReservationInfo | None:
    """What the port's record says, live or not: for explaining a refusal."""
    record = registry.read_record(port)
    return None if record is None else info_from_record(port, record, registry.lock_path(port))


def reservation_at(registry: Registry, port: int) -> ReservationInfo | None:
    """The live reservation (or lease) of *port*."""
    now = time.time()
    # The record first: only a port whose record describes a live holder or lease is worth
    # reading /proc/locks for, which grows with every lock on the machine.
    record = registry.read_record(port)
    if record is None or (record.get("released") is not None and not lease_live(record, now)):
        return None  # never used, released, or locked by a holder not yet described
    if not is_reserved(registry, port, now):
        return None
    return info_from_record(port, record, registry.lock_path(port))


def live(registry: Registry) -> list[ReservationInfo]:
    """Every live reservation (and live lease) in *registry*, by port."""
    now = time.time()
    held = _platform.system.held_lock_inodes()
    result = []
    for port, entry in lock_files(registry):
        if held is not None and entry.inode() not in held:
            # Not held: only a lease can make it live, and a lease dates its file ahead.
            try:
                if entry.stat(follow_symlinks=False).st_mtime <= now:
                    continue
            except OSError:
                continue
        record = registry.read_record(port)
        if record is None:
            continue  # never used, or a reservation still being made
        released = record.get("released") is not None
        if held is not None:
            alive = not released and entry.inode() in held
        else:
            alive = not released and record_process_alive(record)
        if alive or (released and lease_live(record, now)):
            info = info_from_record(port, record, entry.path)
            if info is not None:
                result.append(info)
    return result
