"""The portable answers, through psutil and POSIX calls: macOS, the BSDs, and the fallback.

:class:`Portable` is also the base of the Linux and Windows classes, which override only what
their system answers better or differently. Every method answers one question about the
operating system; nothing outside :mod:`localport._platform` asks which system this is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Iterable

    from .._arguments import SocketProto


@dataclass(frozen=True)
class SocketRecord:
    """One socket, as the kernel (sock_diag) or psutil reports it."""

    family: socket.AddressFamily
    proto: SocketProto
    state: str
    local: tuple[str, int]
    remote: tuple[str, int] | None
    uid: int | None
    inode: int
    #: Known up front on the psutil path; on Linux found from the inode later.
    pid: int | None = None
    #: For IPv6 sockets: whether IPV6_V6ONLY is set (``None`` when not reported).
    v6only: bool | None = None


@dataclass(frozen=True)
class ProcessFacts:
    """What can be learned about a process (fields ``None`` where it cannot)."""

    pid: int
    name: str | None
    cmdline: tuple[str, ...]
    uid: int | None
    username: str | None
    started: float | None


#: A test for sockets worth reporting, or ``None`` for all of them.
Keep: TypeAlias = "Callable[[SocketRecord], bool] | None"


class Portable:
    """Answers through psutil and POSIX calls."""

    name = "portable"
    #: Whether directories have POSIX owners and modes worth checking.
    posix_permissions = True
    #: Whether a started server can get a session (and process group) of its own.
    process_groups = True
    #: Whether a command given as one string is split with POSIX shell rules.
    posix_shell_words = True
    #: The signal that cannot be ignored (SIGKILL where it exists).
    kill_signal: signal.Signals = getattr(signal, "SIGKILL", signal.SIGTERM)
    #: What runs a command line in the system's shell (a Procfile line), before the line.
    shell: tuple[str, ...] = ("/bin/sh", "-c")

    def __init__(self) -> None:
        self._own_start: tuple[int, float | None] | None = None

    # -- sockets -----------------------------------------------------------------------------

    def sockets(
        self, port: int | None, proto: SocketProto, *, listening_only: bool = False, keep: Keep
    ) -> list[SocketRecord]:
        """The sockets of *proto* on local *port* (every port when ``None``) that *keep*
        accepts. TCP connections and ``TIME_WAIT`` leftovers count only where no socket
        listens on or is bound to the port (see :func:`localport.who_holds`)."""
        return _psutil_sockets(port, proto, listening_only=listening_only, keep=keep)

    def listeners(self, port: int) -> list[SocketRecord] | None:
        """TCP sockets listening on *port*, asked without connecting; ``None`` where the
        system cannot say (the caller connects instead)."""
        return None

    def bound_sockets(self, port: int, proto: SocketProto) -> list[SocketRecord] | None:
        """Every socket of *proto* on *port* in any state, bound-only ones included, asked
        without binding; ``None`` where the system cannot list them all (the caller probes)."""
        return None

    def pids_of_inodes(
        self, inodes: Iterable[int], *, hints: Iterable[int] = (), uid: int | None = None
    ) -> dict[int, int]:
        """Map socket inodes to the PID holding each (psutil gives PIDs directly: none here)."""
        return {}

    def socket_pids_everywhere(self) -> dict[int, int]:
        """Every socket inode this process can see, mapped to its holder."""
        return {}

    # -- processes ---------------------------------------------------------------------------

    def process_facts(self, pid: int) -> ProcessFacts | None:
        """Name, command line, owner and start time of *pid*; ``None`` if it is gone."""
        return _psutil_facts(pid)

    def process_start_time(self, pid: int) -> float | None:
        """When process *pid* started, in seconds since the epoch (``None`` if unknowable)."""
        try:
            import psutil

            return float(psutil.Process(pid).create_time())
        except Exception:  # noqa: BLE001 - psutil raises a zoo of errors for gone processes
            return None

    def own_start_time(self) -> float | None:
        """This process's start time, computed once per process (a fork gets its own)."""
        pid = os.getpid()
        if self._own_start is None or self._own_start[0] != pid:
            self._own_start = (pid, self.process_start_time(pid))
        return self._own_start[1]

    def pid_alive(self, pid: int) -> bool:
        """Whether a process *pid* exists (ours or anyone's)."""
        return _pid_alive(pid)

    def same_process(self, pid: int, started: float | None) -> bool:
        """Whether *pid* still names the process started at *started* (not a new one with
        its number): known start times must agree within a second (psutil rounds them)."""
        if not self.pid_alive(pid):
            return False
        now = self.process_start_time(pid)
        return started is None or now is None or abs(now - started) < 1.0

    def username(self, uid: int) -> str | None:
        """The login name of *uid*, or ``None`` where there is none."""
        return username(uid)

    def namespace_parents(self, pid: int) -> set[int]:
        """Parents of the other processes in *pid*'s network namespace: how a rootless
        container's port forwarder leads to the container's ``conmon``. Linux only."""
        return set()

    def signal_group(self, process: subprocess.Popen[bytes], signum: int) -> None:
        """Send *signum* to a started server's whole process group."""
        with contextlib.suppress(OSError):  # gone already, or not ours to signal
            os.killpg(process.pid, signum)

    # -- files, ranges and sockets -----------------------------------------------------------

    def lock_holders(self, device: int, inode: int) -> set[int] | None:
        """The PIDs the kernel says hold a ``flock`` on the file *device*/*inode*; ``None``
        where the system does not say (the caller then has only the lock file's record)."""
        return None

    def held_lock_inodes(self) -> set[int] | None:
        """Inodes of every file with a held ``flock``, read without taking any lock;
        ``None`` where the system does not publish them."""
        return None

    def claim(self, name: str) -> socket.socket | None:
        """Hold claim *name* while the socket is open (``Registry.claim``); ``None``: none."""

    def claims(self, prefix: str) -> dict[str, int] | None:
        """Live claims whose name starts with *prefix* (name -> socket inode), or ``None``."""

    def read_open_file(self, pid: int, name: str) -> bytes | None:
        """The start of a file *name* that *pid* holds open, even deleted; ``None`` if unknown."""

    def kernel_ephemeral_range(self) -> tuple[int, int] | None:
        """The range the kernel hands out as automatic source ports, where it says.

        ``None`` here: on macOS and Windows the whole of 49152-65535 is that range, which is
        why the guard socket matters more there.
        """
        return None

    def default_lock_dir(self) -> str:
        """``$XDG_RUNTIME_DIR/localport`` when that is set, else ``<tempdir>/localport-<uid>``."""
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
            return os.path.join(runtime, "localport")
        import tempfile  # only here: it imports random, shutil and more

        return os.path.join(tempfile.gettempdir(), f"localport-{os.getuid()}")

    def set_probe_options(self, sock: socket.socket, *, reuse: bool) -> None:
        """Options of a probe socket: plain, or ``SO_REUSEADDR`` when *reuse*."""
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def set_shared_address(self, sock: socket.socket) -> None:
        """Let a server bind beside this socket (guards, and handed-over server sockets)."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    except (OSError, OverflowError):
        return False
    return True


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


def _psutil_sockets(
    port: int | None, proto: SocketProto, *, listening_only: bool, keep: Keep
) -> list[SocketRecord]:
    import psutil

    try:
        connections = psutil.net_connections(kind=proto)
    except psutil.AccessDenied:
        return []  # macOS without root: nothing can be said about other processes' sockets
    found = []
    for connection in connections:
        if not connection.laddr or (port is not None and connection.laddr.port != port):
            continue
        if proto == "tcp":
            status = connection.status
        else:
            status = "CONNECTED" if connection.raddr else "BOUND"
        if status == "NONE":
            status = "BOUND"
        if listening_only and proto == "tcp" and status != "LISTEN":
            continue
        remote = (connection.raddr.ip, connection.raddr.port) if connection.raddr else None
        item = SocketRecord(
            family=socket.AddressFamily(connection.family),
            proto=proto,
            state=status,
            local=(connection.laddr.ip, connection.laddr.port),
            remote=remote,
            uid=None,
            inode=0,
            pid=connection.pid,
        )
        if keep is None or keep(item):
            found.append(item)
    if proto == "tcp":
        serving = [s for s in found if s.state in ("LISTEN", "BOUND")]
        return serving or found
    return found


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
