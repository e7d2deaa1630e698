"""Lock files: what is planted at their paths, their modes, their records, their inheritance.

Real files, real processes, real sockets on the loopback addresses. See
:mod:`localport._lockfile` for the rules these tests hold the lock files to.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import stat
import sys
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

import localport
from localport._ranges import candidates

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

# Ports of these tests' own (tests/conftest.py explains the plan; each test has its own).
HARD_LINK_PORTS = (26700, 26701)
ODD_FILE_PORTS = {"fifo": (26702, 26703), "directory": (26704, 26705)}
CYCLE_RANGE = (26720, 26729)
LONG_NAME_PORTS = {"ascii": 26730, "escaped": 26731}
HELD_RANGE = (26740, 26745)
FORK_PORT = 26750
# About 2,000 lock files need about 2,000 ports nobody else binds. The plan's 24000-27099 has
# no such stretch left (test_concurrency.py holds 25000-26579), so this test goes just above
# it: still outside localport's default range and below the kernel's ephemeral range
# (32768-60999), where no other test and no outgoing connection takes a port.
MANY_RANGE = (27100, 29099)

#: How long a call that could block on a planted FIFO may take before the test calls it a hang.
DEADLINE = 10.0
#: A two-port walk starts at either port; this many walks start at the planted one at least
#: once, except with probability 2**-20.
WALKS = 20


def mode_of(path: str | os.PathLike[str]) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def lock_path(directory: Path, port: int) -> Path:
    return directory / f"port-{port}.lock"


def is_lock_file(file_name: str) -> bool:
    """Whether *file_name* is a lock file's (``port-N.lock``), not a sticky name's record."""
    number = file_name.removeprefix("port-").removesuffix(".lock")
    return f"port-{number}.lock" == file_name and number.isdigit()


@pytest.fixture
def private_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No LOCALPORT_DIR: the private default directory, under an XDG_RUNTIME_DIR of the test's
    own (never the machine's real one, nor anything in /tmp outside the test's directory)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.delenv("LOCALPORT_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime / "localport"


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


class AuditLog:
    """One audit hook for the whole module, installed on first use.

    An audit hook cannot be removed: this one records only inside :meth:`recording`, and only
    the events asked for, and does nothing else for the rest of the process's life.
    """

    def __init__(self) -> None:
        self._installed = False
        self._wanted: frozenset[str] = frozenset()
        self._events: list[tuple[str, tuple[Any, ...]]] | None = None

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        events = self._events
        if events is not None and event in self._wanted:
            events.append((event, args))

    @contextlib.contextmanager
    def recording(self, *events: str) -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
        if not self._installed:
            sys.addaudithook(self._hook)
            self._installed = True
        log: list[tuple[str, tuple[Any, ...]]] = []
        self._wanted = frozenset(events)
        self._events = log
        try:
            yield log
        finally:
            self._events = None


AUDIT = AuditLog()


def bound_ports(events: list[tuple[str, tuple[Any, ...]]]) -> list[int]:
    """The ports of the ``socket.bind`` events among *events* (args: socket, address)."""
    ports = []
    for event, args in events:
        if event == "socket.bind" and isinstance(args[1], tuple):
            ports.append(int(args[1][1]))
    return ports


# -- files planted at a lock file's path -----------------------------------------------------


def make_victim(path: Path) -> tuple[bytes, int]:
    """A file outside the lock directory that nothing may write; returns (content, mtime)."""
    content = b"precious data that localport must never touch\n"
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return content, os.stat(path).st_mtime_ns


def walks_of_a_pair(port: int, other: int) -> set[int | str]:
    """What :data:`WALKS` walks over (port, other) give: ports reserved, or errors' names."""
    outcomes: set[int | str] = set()
    for _ in range(WALKS):
        try:
            reservation = localport.reserve(port_range=(min(port, other), max(port, other)))
        except localport.LocalportError as error:
            outcomes.add(type(error).__name__)
        else:
            outcomes.add(reservation.port)
            reservation.release()
    return outcomes


def test_a_planted_hard_link_is_never_written_through(lock_dir: Path, tmp_path: Path) -> None:
    port, other = HARD_LINK_PORTS
    victim = tmp_path / "victim"
    content, mtime = make_victim(victim)
    planted = lock_path(lock_dir, port)
    os.link(victim, planted)

    with pytest.raises(localport.LockDirError) as explicit:
        localport.reserve(port)
    assert str(planted) in str(explicit.value)
    assert explicit.value.lock_dir == str(lock_dir)
    with pytest.raises(localport.NoFreePortError) as from_range:
        localport.reserve(port_range=(port, port))
    assert from_range.value.port_range == (port, port)
    assert walks_of_a_pair(port, other) == {other}

    assert victim.read_bytes() == content
    assert os.stat(victim).st_mtime_ns == mtime
    assert os.stat(planted).st_ino == os.stat(victim).st_ino
    assert os.stat(victim).st_nlink == 2
    assert localport.reservations() == []


# Tries the three calls once and prints what each gave: run in a child, so that a call blocked
# on the FIFO is a child the test kills, not a test process stuck until pytest-timeout.
THREE_CALLS = """
    import json, sys
    import localport
    port, other = int(sys.argv[1]), int(sys.argv[2])
    outcomes = []
    for port_range in (None, (port, port), (min(port, other), max(port, other))):
        try:
            if port_range is None:
                reservation = localport.reserve(port)
            else:
                reservation = localport.reserve(port_range=port_range)
        except Exception as error:
            outcomes.append(type(error).__name__)
        else:
            outcomes.append(reservation.port)
            reservation.release()
    print(json.dumps(outcomes), flush=True)
"""


def timed(call: Callable[[], object]) -> float:
    """Seconds *call* took, whatever it raised (the caller checks what it raised)."""
    start = time.monotonic()
    with contextlib.suppress(localport.LocalportError):
        result = call()
        if isinstance(result, localport.Reservation):
            result.release()
    return time.monotonic() - start


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_fifo_or_directory_at_a_lock_path_is_refused_without_hanging(
    lock_dir: Path, spawn: Any, kind: str
) -> None:
    port, other = ODD_FILE_PORTS[kind]
    planted = lock_path(lock_dir, port)
    if kind == "fifo":
        os.mkfifo(planted, 0o600)
    else:
        planted.mkdir(mode=0o700)

    # First in a child, with a deadline: nothing here can hang the test process itself.
    child = spawn(THREE_CALLS, str(port), str(other))
    outcomes = child.read(timeout=DEADLINE)
    child.finish()
    assert len(outcomes) == 3, outcomes
    assert outcomes[:2] == ["LockDirError", "NoFreePortError"], outcomes

    # None of them hangs here either; then what each raises, and a walk of two ports.
    assert timed(lambda: localport.reserve(port)) < DEADLINE
    assert timed(lambda: localport.reserve(port_range=(port, port))) < DEADLINE
    with pytest.raises(localport.LockDirError) as explicit:
        localport.reserve(port)
    assert str(planted) in str(explicit.value)
    with pytest.raises(localport.NoFreePortError) as from_range:
        localport.reserve(port_range=(port, port))
    assert from_range.value.port_range == (port, port)
    assert walks_of_a_pair(port, other) == {other}

    assert stat.S_ISFIFO(os.lstat(planted).st_mode) == (kind == "fifo")
    assert planted.is_dir() == (kind == "directory")
    assert localport.reservations() == []


# -- the private lock directory --------------------------------------------------------------


def inodes(directory: Path) -> dict[str, int]:
    """Every file in *directory*, by name, with its inode number."""
    return {name: os.lstat(directory / name).st_ino for name in os.listdir(directory)}


def test_a_deleted_private_lock_dir_is_recreated_0700_and_a_loosened_one_is_refused(
    private_default: Path,
) -> None:
    with localport.reserve() as first:
        assert first.lock_path is not None
        assert os.path.dirname(first.lock_path) == str(private_default)
    shutil.rmtree(private_default)

    # A umask that strips nothing: the mode must come from localport, not from the umask.
    with umask(0), localport.reserve() as second:
        assert second.lock_path is not None
        assert os.path.dirname(second.lock_path) == str(private_default)
        assert private_default.is_dir()
        assert not private_default.is_symlink()
        assert mode_of(private_default) == 0o700
        assert mode_of(second.lock_path) == 0o600

    private_default.chmod(0o755)
    before = inodes(private_default)
    for call in (
        localport.reserve,
        lambda: localport.reserve(second.port),
        localport.reservations,
    ):
        with pytest.raises(localport.LockDirError) as refused:
            call()
        assert refused.value.lock_dir == str(private_default)
        assert "0755" in str(refused.value)
    # Never silently used: nothing was added, replaced or removed, and the mode stays.
    assert inodes(private_default) == before
    assert mode_of(private_default) == 0o755


# -- lock files live forever, private and whole ------------------------------------------------

# Reserves and releases the ports given, explicitly, then walks the range once: another
# process's reserve/release cycle on the same lock files.
CYCLING_CHILD = """
    import json, sys
    import localport
    low, high, *ports = (int(arg) for arg in sys.argv[1:])
    for port in ports:
        localport.reserve(port).release()
    walked = localport.reserve(port_range=(low, high))
    walked.release()
    print(json.dumps(walked.port), flush=True)
"""

#: Events that would truncate, unlink or replace a file (see the audit events table).
DESTRUCTIVE = ("open", "os.truncate", "os.remove", "os.rename", "os.rmdir")


def destructive_events(
    events: list[tuple[str, tuple[Any, ...]]], directory: Path
) -> list[tuple[str, tuple[Any, ...]]]:
    """The events of *events* that truncate, unlink or replace something in *directory*."""
    inside = str(directory) + os.sep

    def in_dir(path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(inside)

    found = []
    for event, args in events:
        if event == "open":
            path, _mode, flags = args
            if in_dir(path) and isinstance(flags, int) and flags & os.O_TRUNC:
                found.append((event, args))
        elif event == "os.truncate" or any(in_dir(arg) for arg in args):
            found.append((event, args))
    return found


def test_lock_files_are_created_0600_and_never_truncated_or_unlinked(
    private_default: Path, spawn: Any
) -> None:
    low, high = CYCLE_RANGE
    explicit = [low, low + 1, low + 2]
    walked = (low + 3, high)  # walks and leases keep off the explicit ports
    seen: dict[str, tuple[int, int]] = {}

    def check() -> None:
        now: dict[str, tuple[int, int]] = {}
        for name in os.listdir(private_default):
            if not is_lock_file(name):
                continue
            info = os.lstat(private_default / name)
            assert stat.S_ISREG(info.st_mode), name
            assert stat.S_IMODE(info.st_mode) == 0o600, (name, oct(info.st_mode))
            assert info.st_nlink == 1, name
            now[name] = (info.st_ino, info.st_size)
        for name, (inode, size) in seen.items():
            assert name in now, f"{name} was unlinked"
            assert now[name][0] == inode, f"{name} was replaced (inode {inode} -> {now[name][0]})"
            assert now[name][1] >= size, f"{name} was truncated ({size} -> {now[name][1]} bytes)"
        for name, (_inode, size) in now.items():
            assert size > 0, f"{name} is empty after a successful reserve/release cycle"
        seen.update(now)

    with umask(0), AUDIT.recording(*DESTRUCTIVE) as events:
        for _ in range(3):
            for port in explicit:
                localport.reserve(port).release()
                check()
            localport.reserve(port_range=walked).release()
            check()
            with localport.reserve_many(3, consecutive=True, port_range=walked):
                check()
            check()
            leased = localport.reserve(port_range=walked)
            leased.release(lease=0.05)
            check()
            child = spawn(CYCLING_CHILD, *map(str, walked), *map(str, explicit))
            assert walked[0] <= child.read() <= walked[1]
            child.finish()
            check()
            time.sleep(0.06)  # the lease ends before the next round's walk
            with localport.reserve(leased.port):
                check()
            check()

    assert destructive_events(events, private_default) == []
    assert len(seen) >= len(explicit)
    assert mode_of(private_default) == 0o700


# -- records ---------------------------------------------------------------------------------

LONG_NAMES = {
    # 200 characters of ASCII: a record of about 400 bytes, within one 512-byte block.
    "ascii": "n" * 200,
    # 200 characters that JSON escapes to 6 bytes each: a record over two blocks, so the short
    # record that follows leaves the old one's tail behind it in the file.
    "escaped": "\u540d" * 200,
}


@pytest.mark.parametrize("variant", sorted(LONG_NAMES))
def test_a_short_record_over_a_long_one_is_read_back_whole(variant: str) -> None:
    port = LONG_NAME_PORTS[variant]
    long_name = LONG_NAMES[variant]
    assert len(long_name) == 200

    with localport.reserve(port, name=long_name) as first:
        assert first.lock_path is not None
        path = first.lock_path
        listed = [(info.port, info.name) for info in localport.reservations()]
        assert listed == [(port, long_name)]
    long_size = os.path.getsize(path)

    with localport.reserve(port, name="short") as second:
        assert second.lock_path == path
        listed = [(info.port, info.name) for info in localport.reservations()]
        assert listed == [(port, "short")]
        with open(path, "rb") as file:
            data = file.read()
        # Padded, not truncated: the file keeps its size.
        assert len(data) == long_size
        if variant == "escaped":
            # The older record's tail really is there for readers to ignore.
            assert long_size > 512
            assert b"\\u540d" in data[512:]

    listed = [(info.port, info.name) for info in localport.reservations()]
    assert listed == []


# -- a held port is never touched ------------------------------------------------------------

HOLDER = """
    import json, sys
    import localport
    held = [localport.reserve(int(port)) for port in sys.argv[1:]]
    print(json.dumps([reservation.port for reservation in held]), flush=True)
    sys.stdin.read()
"""


def test_a_port_another_localport_process_holds_is_never_probed(spawn: Any) -> None:
    low, high = HELD_RANGE
    ports = list(range(low, high + 1))
    free = ports[3]
    held = [port for port in ports if port != free]
    holder = spawn(HOLDER, *map(str, held))
    assert holder.read() == held

    got = set()
    with AUDIT.recording("socket.bind") as events:
        # Walks start anywhere: several of them visit the held ports in several orders.
        for _ in range(10):
            with localport.reserve(port_range=HELD_RANGE) as reservation:
                got.add(reservation.port)
        with pytest.raises(localport.PortInUseError):
            localport.reserve(held[0])
    touched = bound_ports(events)

    assert got == {free}
    assert free in touched  # the hook did see the binds that were made
    assert set(touched) & set(held) == set(), f"held ports were bound: {touched}"
    holder.finish()


# -- a forked child does not keep its parent's port ------------------------------------------

# Reserves a port, then forks a grandchild that prints its PID (its fork hooks have run by
# then) and waits: until its stdin closes, at most 120 s, or the test kills it.
FORKING_CHILD = """
    import json, os, select, sys
    import localport
    reservation = localport.reserve(int(sys.argv[1]))
    if os.fork() == 0:
        print(json.dumps({"grandchild": os.getpid(), "port": reservation.port}), flush=True)
        select.select([sys.stdin], [], [], 120)
        os._exit(0)
    sys.stdin.read()
"""


def end_process(process: psutil.Process) -> None:
    """Kill *process* (not our child: an orphan) and wait until it is dead.

    psutil checks the PID still names the same process (by its start time) before signalling.
    A dead orphan may stay a zombie a while, until its new parent reaps it: dead is enough.
    """
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.01)
    msg = f"process {process.pid} still runs 10 s after SIGKILL"
    raise AssertionError(msg)


def test_a_forked_child_that_outlives_its_parent_does_not_keep_the_port(spawn: Any) -> None:
    port = FORK_PORT
    child = spawn(FORKING_CHILD, str(port))
    said = child.read()
    grandchild = psutil.Process(said["grandchild"])
    try:
        assert said["port"] == port
        assert grandchild.ppid() == child.pid
        with pytest.raises(localport.PortInUseError):
            localport.reserve(port)  # the child holds it

        child.kill()  # SIGKILL, and waited for
        assert grandchild.is_running()
        assert grandchild.status() != psutil.STATUS_ZOMBIE

        # At once: the grandchild's copies of the lock and guard were closed at fork.
        with localport.reserve(port) as again:
            assert again.port == port
    finally:
        end_process(grandchild)


# -- leases among many lock files ------------------------------------------------------------


def test_a_lease_is_listed_among_two_thousand_lock_files(lock_dir: Path) -> None:
    low, high = MANY_RANGE
    made = []
    for port in range(low, high + 1):
        try:
            localport.reserve(port).release()
        except localport.PortInUseError:
            continue  # something on this machine holds it: one lock file fewer
        made.append(port)
    files = [name for name in os.listdir(lock_dir) if is_lock_file(name)]
    assert len(files) >= 1900, f"only {len(files)} lock files"
    assert localport.reservations() == []

    leased_port = made[len(made) // 2]
    reservation = localport.reserve(leased_port)
    before = time.time()
    reservation.release(lease=30)
    after = time.time()

    listed = localport.reservations()
    assert [info.port for info in listed] == [leased_port]
    assert listed[0].lease_until is not None
    assert before + 30 <= listed[0].lease_until <= after + 30
    with pytest.raises(localport.PortInUseError):
        localport.reserve(leased_port)

    # A release without a lease is listed while held, and not once released.
    plain_port = made[len(made) // 3]
    plain = localport.reserve(plain_port)
    assert [info.port for info in localport.reservations()] == sorted([leased_port, plain_port])
    plain.release()
    assert [info.port for info in localport.reservations()] == [leased_port]


# -- the walk order --------------------------------------------------------------------------

WALK_RANGES = [
    pytest.param((30000, 30000), id="1"),
    pytest.param((30000, 30001), id="2"),
    pytest.param((30000, 30002), id="3"),
    pytest.param((30000, 30096), id="97-prime"),
    pytest.param((30000, 30127), id="128-power-of-two"),
    pytest.param((1, 65535), id="all"),
]
SEEDS = [0, 1, 2, 3, 12345, 2**32 + 7]


@pytest.mark.parametrize("port_range", WALK_RANGES)
def test_a_walk_yields_every_port_of_the_range_exactly_once(port_range: tuple[int, int]) -> None:
    low, high = port_range
    for seed in SEEDS:
        order = list(candidates(port_range, None, random.Random(seed)))
        assert len(order) == high - low + 1, seed
        assert sorted(order) == list(range(low, high + 1)), seed


KERNEL_RANGES = [
    pytest.param((30000, 30009), (30003, 30006), id="kernel-inside-range"),
    pytest.param((30000, 30009), (29000, 30004), id="kernel-over-the-low-end"),
    pytest.param((30000, 30009), (30005, 31000), id="kernel-over-the-high-end"),
    pytest.param((30000, 30009), (29000, 31000), id="kernel-covers-range"),
    pytest.param((30000, 30009), (30000, 30009), id="kernel-equals-range"),
    pytest.param((30000, 30009), (40000, 50000), id="kernel-above"),
    pytest.param((30000, 30009), (1000, 2000), id="kernel-below"),
    pytest.param((30000, 30000), (30000, 30000), id="one-port-inside"),
    pytest.param((30000, 30001), (30001, 30001), id="two-ports-one-inside"),
    pytest.param((30000, 30002), (30001, 30001), id="three-ports-middle-inside"),
    pytest.param((30000, 30096), (30010, 30050), id="prime-size"),
    pytest.param((30000, 30127), (30064, 40000), id="power-of-two-size"),
    pytest.param((49152, 65535), (32768, 60999), id="default-and-linux"),
]


@pytest.mark.parametrize(("port_range", "kernel_range"), KERNEL_RANGES)
def test_a_walk_tries_every_port_outside_the_kernel_range_before_any_inside(
    port_range: tuple[int, int], kernel_range: tuple[int, int]
) -> None:
    low, high = port_range
    k_low, k_high = kernel_range
    inside = {port for port in range(low, high + 1) if k_low <= port <= k_high}
    for seed in SEEDS:
        order = list(candidates(port_range, kernel_range, random.Random(seed)))
        assert sorted(order) == list(range(low, high + 1)), seed
        outside_count = high - low + 1 - len(inside)
        assert not inside & set(order[:outside_count]), seed
        assert set(order[outside_count:]) == inside, seed


def test_two_seeds_walk_a_hundred_ports_in_different_orders() -> None:
    port_range = (30000, 30099)
    orders = {tuple(candidates(port_range, None, random.Random(seed))) for seed in SEEDS}
    assert len(orders) == len(SEEDS)
    for order in orders:
        assert sorted(order) == list(range(30000, 30100))
