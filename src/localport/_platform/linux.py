"""The Linux answers: sock_diag netlink for sockets, ``/proc`` for processes and locks.

Which process holds a socket: a socket's inode appears as the link target ``socket:[INODE]``
of one of its holder's ``/proc/PID/fd`` entries. The scan starts with the PIDs most likely to
hold it (the one localport recorded, then processes of the socket's owner, small descriptor
tables first) and stops at the first match. A process of another user whose descriptors
cannot be read is simply not found: the caller reports the socket's uid and says that root
can see more.

Where netlink is refused (a sandbox, a kernel without ``inet_diag``) the portable psutil
answers stand in.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import TYPE_CHECKING

from . import sockdiag
from .portable import Portable, ProcessFacts, SocketRecord, username

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._arguments import SocketProto
    from .portable import Keep

_KERNEL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


class Linux(Portable):
    """Answers from the kernel: sock_diag and ``/proc``."""

    name = "linux"

    def __init__(self) -> None:
        super().__init__()
        self._boot_time: float | None = None

    # -- sockets -----------------------------------------------------------------------------

    def sockets(
        self, port: int | None, proto: SocketProto, *, listening_only: bool = False, keep: Keep
    ) -> list[SocketRecord]:
        """TCP is asked in phases: listeners, then bound sockets, then connections and
        TIME_WAIT, each only when the one before found nothing that *keep* accepts. A
        listening server is so named in well under a millisecond however many connections
        the machine has, and connections are reported only where they are what holds the port.
        """
        try:
            if proto == "udp":
                return [s for s in sockdiag.query(port, proto) if keep is None or keep(s)]
            found: list[SocketRecord] = []
            phases = sockdiag.TCP_PHASES[:1] if listening_only else sockdiag.TCP_PHASES
            for states in phases:
                found = [
                    s for s in sockdiag.query(port, proto, states=states) if keep is None or keep(s)
                ]
                if found:
                    break
        except OSError:
            # No netlink here: psutil reads /proc/net instead.
            return super().sockets(port, proto, listening_only=listening_only, keep=keep)
        return found

    def listeners(self, port: int) -> list[SocketRecord] | None:
        try:
            return sockdiag.query(port, "tcp", states=sockdiag.TCP_PHASES[0])
        except OSError:
            return None

    def bound_sockets(self, port: int, proto: SocketProto) -> list[SocketRecord] | None:
        if proto == "tcp" and not sockdiag.lists_bound_sockets():
            return None  # a kernel before 6.5 leaves bound-only TCP sockets out
        try:
            return sockdiag.query(port, proto)
        except OSError:
            return None

    def pids_of_inodes(
        self, inodes: Iterable[int], *, hints: Iterable[int] = (), uid: int | None = None
    ) -> dict[int, int]:
        """:param hints: PIDs to look in first (the PID localport recorded for the port).
        :param uid: the sockets' owner: its processes are scanned before everyone else's."""
        wanted = {f"socket:[{inode}]": inode for inode in inodes if inode}
        found: dict[int, int] = {}
        if not wanted:
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

    def socket_pids_everywhere(self) -> dict[int, int]:
        return _socket_inodes_of(_all_pids())

    # -- processes ---------------------------------------------------------------------------

    def process_facts(self, pid: int) -> ProcessFacts | None:
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
            started=self.process_start_time(pid),
        )

    def namespace_parents(self, pid: int) -> set[int]:
        """Same ``/proc/PID/ns/net`` link, same namespace; our own namespace is not asked
        about (every process would answer)."""
        try:
            wanted = os.readlink(f"/proc/{pid}/ns/net")
            if wanted == os.readlink("/proc/self/ns/net"):
                return set()
        except OSError:
            return set()
        return {_parent(other) for other in _all_pids() if _in_namespace(other, wanted)} - {0}

    def process_start_time(self, pid: int) -> float | None:
        try:
            with open(f"/proc/{pid}/stat", "rb") as file:
                data = file.read()
            # The command name may hold spaces and parentheses: fields resume after the last ")".
            ticks = int(data[data.rindex(b")") + 2 :].split()[19])
            if self._boot_time is None:
                with open("/proc/stat", "rb") as file:
                    for line in file:
                        if line.startswith(b"btime "):
                            self._boot_time = float(line.split()[1])
                            break
            if self._boot_time is None:
                return None
            return self._boot_time + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    # -- files and ranges --------------------------------------------------------------------

    def held_lock_inodes(self) -> set[int] | None:
        """From ``/proc/locks``: reading it takes no lock, so listing reservations never makes a
        concurrent ``reserve()`` fail the way "try the lock and let go" would."""
        holders = _flock_holders()
        return None if holders is None else {inode for _, _, inode in holders}

    def lock_holders(self, device: int, inode: int) -> set[int] | None:
        holders = _flock_holders()
        if holders is None:
            return None
        return holders.get((os.major(device), os.minor(device), inode), set())

    @functools.cache  # noqa: B019 - one instance lives as long as the process
    def kernel_ephemeral_range(self) -> tuple[int, int] | None:
        """Read once per process: it only orders candidates, so a change made while we run
        costs nothing worse than a less preferred first pick."""
        try:
            # Bytes, not text: a text read imports a codec module on first use (about 1 ms).
            with open(_KERNEL_RANGE_FILE, "rb") as file:
                low_text, high_text = file.read().split()
            return int(low_text), int(high_text)
        except (OSError, ValueError):
            return None


def _all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _in_namespace(pid: int, namespace: str) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/net") == namespace
    except OSError:
        return False


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
        return int(data[data.rindex(b")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _scan_order(hints: Iterable[int], uid: int | None) -> Iterable[int]:
    """PIDs in the order to search them: hints, then the socket owner's processes, then the
    rest; within each, small descriptor tables first.

    One process with thousands of connections would otherwise be read through on every call
    (16,000 ``readlink`` calls: about 50 ms) before the server behind the port. ``stat`` of
    ``/proc/PID/fd`` gives the owner and, on Linux 6.2 and later, the number of descriptors;
    where that number is 0 (older kernels), higher PIDs (most often newer processes) come
    first, as the holder of a contested port is most often a recently started server.
    """
    yield from hints
    own = os.getpid()
    ranked = []
    for pid in _all_pids():
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


def _socket_inodes_of(pids: Iterable[int]) -> dict[int, int]:
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


def _flock_holders() -> dict[tuple[int, int, int], set[int]] | None:
    """(major, minor, inode) -> PIDs holding a ``flock`` on that file, from ``/proc/locks``;
    ``None`` if unreadable."""
    try:
        with open("/proc/locks", "rb") as file:
            lines = file.read().split(b"\n")
    except OSError:
        return None
    holders: dict[tuple[int, int, int], set[int]] = {}
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 2800 fe:00:2146466 0 EOF"; a waiter's line has "->"
        # in the second field and holds nothing.
        fields = line.split()
        if len(fields) < 6 or fields[1] != b"FLOCK":
            continue
        place = fields[5].split(b":")
        if len(place) != 3 or not place[2].isdigit() or not fields[4].isdigit():
            continue
        try:
            key = (int(place[0], 16), int(place[1], 16), int(place[2]))
        except ValueError:
            continue
        holders.setdefault(key, set()).add(int(fields[4]))
    return holders
