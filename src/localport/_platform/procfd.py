"""Which process holds a socket, from ``/proc/PID/fd`` (Linux).

sock_diag gives a socket's inode, never its process: the inode appears as the link target
``socket:[INODE]`` of one of its holder's ``/proc/PID/fd`` entries. Reading every descriptor
of every process costs a ``readlink`` each (a process with 20,000 connections: about 15 ms
to list and 70 ms to read through), so the search:

1. takes the PIDs most likely first: the hints (the PID localport recorded for the port),
   then the socket owner's processes, then the rest; small descriptor tables first;
2. reads a small table through, but searches a large one (over :data:`LARGE` descriptors)
   *by inode* first, without listing it: socket and pipe inodes come from one counter that
   only grows, and a new descriptor most often gets a higher number than older ones, so a
   binary search over descriptor numbers lands on (or next to) the wanted socket in a few
   dozen ``readlink`` calls, wherever it sits in the table;
3. reads the large tables through only when every guided search missed: the answer is never
   worse than before, only slower in that case. The search can miss when descriptors were
   closed and reused out of order, and when the holder moved between CPUs while it made its
   sockets: the kernel hands out inode numbers in per-CPU batches of 1,024, so a socket made
   on a CPU that allocates rarely can get a number older than its neighbours'.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

#: A descriptor table larger than this is searched by inode before it is read through.
LARGE = 256
#: Descriptors read on each side of where the guided search lands.
_WINDOW = 48
#: Descriptors stepped over (closed, or files whose inodes are not comparable) per probe.
_STEP_LIMIT = 32


def all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def pids_of_inodes(
    inodes: Iterable[int], *, hints: Iterable[int] = (), uid: int | None = None
) -> dict[int, int]:
    """Socket inode -> PID for each of *inodes* this process may see (see the module)."""
    wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
    found: dict[int, int] = {}
    if not wanted:
        return found
    scanned: set[int] = set()
    large: list[int] = []
    for pid, size in _scan_order(hints, uid):
        if pid in scanned:
            continue
        scanned.add(pid)
        if (_table_size(pid) if size is None else size) > LARGE:
            for target, inode in wanted.items():
                if inode not in found and _guided(pid, inode, target):
                    found[inode] = pid
            if len(found) < len(wanted):
                large.append(pid)
        else:
            _scan(pid, wanted, found)
        if len(found) == len(wanted):
            return found
    for pid in large:
        _scan(pid, wanted, found)
        if len(found) == len(wanted):
            break
    return found


def socket_inodes_of(pids: Iterable[int]) -> dict[int, int]:
    """Every socket inode of *pids* this process may see, mapped to its holder."""
    found: dict[int, int] = {}
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


def _table_size(pid: int) -> int:
    """How many descriptors *pid* has open (Linux 6.2 and later; 0 where unknown)."""
    try:
        return os.stat(f"/proc/{pid}/fd").st_size
    except OSError:
        return 0


def _scan_order(hints: Iterable[int], uid: int | None) -> Iterable[tuple[int, int | None]]:
    """PIDs in the order to search them, with their table sizes where already known: hints,
    then the socket owner's processes, then the rest; within each, small tables first.

    ``stat`` of ``/proc/PID/fd`` gives the owner and, on Linux 6.2 and later, the number of
    descriptors; where that number is 0 (older kernels), higher PIDs (most often newer
    processes) come first, as the holder of a contested port is most often a recently
    started server.
    """
    yield from ((pid, None) for pid in hints)
    own = os.getpid()
    ranked = []
    for pid in all_pids():
        try:
            info = os.stat(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's process we may not look into
        ranked.append((info.st_uid != uid, pid == own, info.st_size, -pid, pid))
    ranked.sort()
    yield from ((entry[-1], entry[2]) for entry in ranked)


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


def _guided(pid: int, inode: int, target: str) -> bool:
    """Whether *pid* holds socket *inode*, found by a binary search over descriptor numbers
    (step 2 of the module docstring); ``False`` also when the search merely missed."""
    directory = f"/proc/{pid}/fd"
    low, high = 0, _highest_slot(pid)
    while low <= high:
        middle = (low + high) // 2
        descriptor, seen = _comparable_at_or_above(directory, middle, high)
        if seen is None:
            high = middle - 1  # nothing comparable up there: the table ends lower
        elif seen == inode:
            return True
        elif seen < inode:
            low = descriptor + 1
        else:
            high = middle - 1
    for descriptor in range(max(0, low - _WINDOW), low + _WINDOW):
        try:
            if os.readlink(f"{directory}/{descriptor}") == target:
                return True
        except OSError:
            continue
    return False


def _highest_slot(pid: int) -> int:
    """The last slot of *pid*'s descriptor table (``FDSize`` in its status, minus one)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as file:
            for line in file:
                if line.startswith(b"FDSize:"):
                    return int(line.split()[1]) - 1
    except (OSError, ValueError, IndexError):
        pass
    return -1


def _comparable_at_or_above(directory: str, start: int, limit: int) -> tuple[int, int | None]:
    """The first descriptor from *start* (up to *limit*) whose inode comes from the growing
    counter (a socket or a pipe), and that inode; ``(start, None)`` if none within reach."""
    for descriptor in range(start, min(limit, start + _STEP_LIMIT) + 1):
        try:
            target = os.readlink(f"{directory}/{descriptor}")
        except OSError:
            continue  # a closed slot
        if target.startswith(("socket:[", "pipe:[")) and target.endswith("]"):
            number = target[target.index("[") + 1 : -1]
            if number.isdigit():
                return descriptor, int(number)
    return start, None
