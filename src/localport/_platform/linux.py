"""The Linux answers: sock_diag netlink for sockets, ``/proc`` for processes and locks.

Which process holds a socket is found in ``/proc/PID/fd`` (:mod:`.procfd`). A process of
another user whose descriptors cannot be read is simply not found: the caller reports the
socket's uid and says that root can see more.

Where netlink is refused (a sandbox, a kernel without ``inet_diag``) the portable psutil
answers stand in.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import socket
from typing import TYPE_CHECKING

from . import procfd, sockdiag
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
        return procfd.pids_of_inodes(inodes, hints=hints, uid=uid)

    def socket_pids_everywhere(self) -> dict[int, int]:
        return procfd.socket_inodes_of(procfd.all_pids())

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

    def same_process(self, pid: int, started: float | None) -> bool:
        """Start times here are boot time plus clock ticks (10 ms), read the same way each
        time: they must agree within 5 ms. (A second of slack let `kill` signal a PID reused
        within a second.)"""
        if not self.pid_alive(pid):
            return False
        now = self.process_start_time(pid)
        return started is None or now is None or abs(now - started) < 0.005

    def namespace_parents(self, pid: int) -> set[int]:
        """Same ``/proc/PID/ns/net`` link, same namespace; our own namespace is not asked
        about (every process would answer)."""
        return _namespace_parents(pid)

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

    def claim(self, name: str) -> socket.socket | None:
        return _claim(name)

    def claims(self, prefix: str) -> dict[str, int] | None:
        return _claims(prefix)

    def read_open_file(self, pid: int, name: str) -> bytes | None:
        return _read_open_file(pid, name)

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


def _namespace_parents(pid: int) -> set[int]:
    try:
        wanted = os.readlink(f"/proc/{pid}/ns/net")
        if wanted == os.readlink("/proc/self/ns/net"):
            return set()
    except OSError:
        return set()
    return {_parent(other) for other in procfd.all_pids() if _in_namespace(other, wanted)} - {0}


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


def _claim(name: str) -> socket.socket | None:
    """An abstract Unix socket name: no file that anyone could delete, freed by the kernel
    when its last descriptor closes (the process's death included)."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return None  # no descriptor left, or no Unix sockets: reserve without a claim
    try:
        sock.bind("\0" + name)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise FileExistsError(error.errno, "claimed by a live reservation", name) from None
        return None  # no Unix sockets here (a sandbox): reserve without a claim
    return sock


def _claims(prefix: str) -> dict[str, int] | None:
    """From ``/proc/net/unix``, where an abstract name is shown with a leading ``@``."""
    try:
        with open("/proc/net/unix", "rb") as file:
            data = file.read()
    except OSError:
        return None
    wanted = ("@" + prefix).encode()
    found: dict[str, int] = {}
    for line in data.split(b"\n"):
        if wanted not in line:
            continue
        # "Num RefCount Protocol Flags Type St Inode Path"
        fields = line.split(None, 7)
        if len(fields) == 8 and fields[7].startswith(wanted) and fields[6].isdigit():
            found[fields[7][1:].decode(errors="replace")] = int(fields[6])
    return found


def _read_open_file(pid: int, name: str) -> bytes | None:
    """Through ``/proc/PID/fd``, whose links still open a file after it was deleted (their
    target then ends in `` (deleted)``); only for one's own processes, or as root."""
    directory = f"/proc/{pid}/fd"
    try:
        descriptors = os.listdir(directory)
    except OSError:
        return None
    for descriptor in descriptors:
        try:
            target = os.readlink(f"{directory}/{descriptor}")
        except OSError:
            continue
        if target.removesuffix(" (deleted)").rsplit("/", 1)[-1] != name:
            continue
        try:
            fd = os.open(f"{directory}/{descriptor}", os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            return os.read(fd, 4096)
        except OSError:
            continue
        finally:
            os.close(fd)
    return None
