"""Which process holds a socket, and what that process is.

On Linux both questions are answered from ``/proc`` directly: a socket's inode appears as the
link target ``socket:[INODE]`` of one of its holder's ``/proc/PID/fd`` entries. The scan starts
with the PIDs most likely to hold it (the one localport recorded, then processes of the
socket's owner, newest first) and stops at the first match. Elsewhere psutil answers.
A process of another user whose file descriptors cannot be read is simply not found: the
caller reports the socket's uid and says that root can see more.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._registry import process_start_time

if TYPE_CHECKING:
    from collections.abc import Iterable

_LINUX = sys.platform.startswith("linux")


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    name: str | None
    cmdline: tuple[str, ...]
    uid: int | None
    username: str | None
    started: float | None


def pids_of_inodes(
    inodes: Iterable[int], *, hints: Iterable[int] = (), uid: int | None = None
) -> dict[int, int]:
    """Map socket inodes to the PID holding each, as far as this process may look.

    :param hints: PIDs to look in first (the PID localport recorded for the port).
    :param uid: the sockets' owner: its processes are scanned before everyone else's.
    """
    wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
    found: dict[int, int] = {}
    if not wanted or not _LINUX:
        return found
    scanned: set[int] = set()
    for pid in _scan_order(hints, uid):
        if pid in scanned:
            continue
        scanned.add(pid)
        _scan(pid, wanted, found)
        if len(found) == len(wanted):
            break
    return found


def _scan_order(hints: Iterable[int], uid: int | None) -> Iterable[int]:
    """PIDs in the order to search them: hints, then the socket owner's processes, then the
    rest; within each, small descriptor tables first.

    One process with thousands of connections would otherwise be read through on every call
    (16,000 ``readlink`` calls: about 50 ms) before the server behind the port. ``stat`` of
    ``/proc/PID/fd`` gives the owner and, on Linux 6.2 and later, the number of descriptors;
    where that number is 0 (older kernels), the newest process comes first, as the holder of
    a contested port is most often a recently started server.
    """
    yield from hints
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    own = os.getpid()
    ranked = []
    for pid in pids:
        try:
            info = os.stat(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's process we may not look into
        ranked.append((info.st_uid != uid, pid == own, info.st_size, -pid, pid))
    ranked.sort()
    yield from (entry[-1] for entry in ranked)


def _scan(pid: int, wanted: dict[str, int], found: dict[int, int]) -> None:
    directory = f"/proc/{pid}/fd"
    try:
        descriptors = os.listdir(directory)
    except OSError:
        return  # gone, or another user's process and we are not root
    for descriptor in descriptors:
        try:
            target = os.readlink(f"{directory}/{descriptor}")
        except OSError:
            continue
        inode = wanted.get(target)
        if inode is not None and inode not in found:
            found[inode] = pid
            if len(found) == len(wanted):
                return


def socket_pids_everywhere() -> dict[int, int]:
    """Every socket inode this process can see, mapped to its holder (Linux)."""
    found: dict[int, int] = {}
    if not _LINUX:
        return found
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return found
    for pid in pids:
        directory = f"/proc/{pid}/fd"
        try:
            descriptors = os.listdir(directory)
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(f"{directory}/{descriptor}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.setdefault(int(target[8:-1]), pid)
    return found


def facts(pid: int) -> ProcessFacts | None:
    """Name, command line, owner and start time of *pid*; ``None`` if it is gone."""
    if _LINUX:
        return _linux_facts(pid)
    return _psutil_facts(pid)


def _linux_facts(pid: int) -> ProcessFacts | None:
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
    name = cmdline_text = None
    with contextlib.suppress(OSError), open(f"/proc/{pid}/comm", "rb") as file:
        name = file.read().decode(errors="replace").rstrip("\n")
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as file:
        cmdline_text = file.read().decode(errors="replace")
    cmdline = tuple(part for part in (cmdline_text or "").split("\0") if part)
    return ProcessFacts(
        pid=pid,
        name=name,
        cmdline=cmdline,
        uid=owner,
        username=username(owner),
        started=process_start_time(pid),
    )


def _psutil_facts(pid: int) -> ProcessFacts | None:
    import psutil

    try:
        process = psutil.Process(pid)
        with process.oneshot():
            name = process.name()
            try:
                cmdline = tuple(process.cmdline())
            except psutil.AccessDenied:
                cmdline = ()
            try:
                user: str | None = process.username()
            except psutil.AccessDenied:
                user = None
            try:
                uid: int | None = process.uids().real
            except (psutil.AccessDenied, AttributeError):
                uid = None  # Windows has no uids
            started = process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return ProcessFacts(pid, None, (), None, None, None)
    return ProcessFacts(pid, name, cmdline, uid, user, started)


@functools.lru_cache(maxsize=256)
def username(uid: int) -> str | None:
    """The login name of *uid*, or ``None`` where there is none (or no pwd module)."""
    try:
        import pwd
    except ImportError:  # Windows
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
