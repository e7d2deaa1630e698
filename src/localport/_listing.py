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
import dataclasses
import os
import stat
import time
from typing import TYPE_CHECKING, Any

from . import _platform
from ._lockfile import parse_record
from ._registry import ReservationInfo, info_from_record, lease_live

if TYPE_CHECKING:
    from ._registry import Registry


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
        return _claimed(registry, port)  # deleted under a live holder, or never made
    if not stat.S_ISREG(info.st_mode):
        return True  # a planted symlink or other oddity: reserve() cannot use this port
    if info.st_ino in held:
        # The lock is the truth. Its record may still describe an earlier, released
        # reservation while a new holder is midway through taking the port.
        return True
    record = registry.read_record(port)
    if record is not None and lease_live(record, now):
        return True
    return _claimed(registry, port)


def _claimed(registry: Registry, port: int) -> bool:
    """Whether a live reservation claims *port* although its lock file is not held: the
    file was deleted or replaced, and :func:`localport.reserve` refuses the port."""
    name = f"{registry.claim_prefix}{port}"
    return name in (_platform.system.claims(name) or {})


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
    info = info_from_record(port, record, registry.lock_path(port))
    if info is None or record.get("released") is not None:
        return info  # a lease: nobody holds the lock
    return _as_the_kernel_says(info)


def _as_the_kernel_says(info: ReservationInfo) -> ReservationInfo | None:
    """*info* naming the PID the kernel's lock table says holds its lock file.

    A record is written by whoever holds the lock, in a shared directory any user, and may
    name any PID: shown by ``who`` or signalled by ``kill`` on its word, it would point at an
    innocent process. Unchanged where the system does not say (not Linux); ``None`` when
    nobody holds the lock (any more).
    """
    try:
        file = os.lstat(info.lock_path)
    except OSError:
        return info
    holders = _platform.system.lock_holders(file.st_dev, file.st_ino)
    if holders is None or info.pid in holders:
        return info
    if not holders:
        return None
    pid = min(holders)
    started = _platform.system.process_start_time(pid)
    return dataclasses.replace(info, pid=pid, process_started=started)


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
            if info is not None and alive and held is not None:
                info = _as_the_kernel_says(info)
            if info is not None:
                result.append(info)
    lost = compromised(registry)
    if lost:
        # A replacement file's holder (if any) is listed too: it is the port's second holder.
        result = sorted([*result, *lost.values()], key=lambda info: info.port)
    return result


def compromised(registry: Registry, port: int | None = None) -> dict[int, ReservationInfo]:
    """Live reservations whose lock file was deleted or replaced, by port (only *port*'s when
    given), found from their claims; empty where claims cannot be listed.

    A claim (see :meth:`Registry.claim`) lives exactly as long as its reservation, so a claimed
    port whose lock file is not held by anyone lost its file. Claims are read before and after
    the lock table, and only a claim seen both times (the same socket) counts: a reservation
    made and released between the two reads is never taken for a lost one.
    """
    system = _platform.system
    prefix = registry.claim_prefix if port is None else f"{registry.claim_prefix}{port}"
    before = system.claims(prefix)
    if not before:
        return {}
    held = system.held_lock_inodes()
    after = system.claims(prefix) or {}
    suspects: dict[int, int] = {}
    for name, inode in before.items():
        number = name[len(registry.claim_prefix) :]
        if after.get(name) != inode or not number.isdigit():
            continue
        claimed = int(number)
        if port is not None and claimed != port:
            continue
        try:
            info = os.lstat(registry.lock_path(claimed))
            intact = stat.S_ISREG(info.st_mode) and held is not None and info.st_ino in held
        except OSError:
            intact = False
        if not intact:
            suspects[inode] = claimed
    if not suspects:
        return {}
    pids = system.pids_of_inodes(suspects)
    return {
        claimed: _lost_reservation(registry, claimed, pids.get(inode))
        for inode, claimed in suspects.items()
    }


def _lost_reservation(registry: Registry, port: int, pid: int | None) -> ReservationInfo:
    """What can be said of a reservation that lost its lock file: its record, read through
    its holder's descriptor where this process may, else placeholders."""
    path = registry.lock_path(port)
    data = None if pid is None else _platform.system.read_open_file(pid, os.path.basename(path))
    record = None if data is None else parse_record(data)
    info = None if record is None else info_from_record(port, record, path)
    if info is not None and (pid is None or info.pid == pid):
        return dataclasses.replace(info, compromised=True)
    return ReservationInfo(
        port=port,
        proto="tcp",
        host="",
        name=None,
        pid=pid or 0,
        process_started=None if pid is None else _platform.system.process_start_time(pid),
        created=0.0,
        lease_until=None,
        guarded=False,
        lock_path=path,
        compromised=True,
    )
