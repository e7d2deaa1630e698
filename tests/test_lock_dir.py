"""The lock directory: where it is, who may use it, and what a planted file cannot make us do."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from typing import TYPE_CHECKING, Any

import pytest

import localport

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root"
)
NOBODY = 65534


# Fixed ports of these tests' own (see tests/conftest.py): a port picked with bind(0) lies in
# the kernel's ephemeral range, where other tests' outgoing connections may take it between
# one reserve() of the loops below and the next.
READER_PORTS = {
    ("thread", "reservations"): 26600,
    ("thread", "is_free"): 26601,
    ("process", "reservations"): 26602,
    ("process", "is_free"): 26603,
}
PLANTED_PORT = 26604


def mode_of(path: str | os.PathLike[str]) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def make_victim(path: Path) -> tuple[bytes, int]:
    """A file outside the lock directory that nothing may write; returns (content, mtime)."""
    content = b"precious data that localport must never touch\n"
    path.write_bytes(content)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    return content, os.stat(path).st_mtime_ns


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No LOCALPORT_DIR: the default directory lives under this XDG_RUNTIME_DIR."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.delenv("LOCALPORT_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    return runtime


# -- where the directory is ----------------------------------------------------------------------


def test_the_default_directory_is_created_private_under_xdg_runtime_dir(
    runtime_dir: Path,
) -> None:
    default = runtime_dir / "localport"
    assert not default.exists()

    with localport.reserve() as reservation:
        assert default.is_dir()
        assert not default.is_symlink()
        assert mode_of(default) == 0o700
        assert reservation.lock_path is not None
        assert os.path.dirname(reservation.lock_path) == str(default)
        # Private locks are for this user only.
        assert mode_of(reservation.lock_path) & 0o077 == 0
        assert [info.port for info in localport.reservations()] == [reservation.port]


def test_without_xdg_runtime_dir_the_default_is_a_per_user_temp_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCALPORT_DIR")
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    expected = tmp_path / f"localport-{os.getuid()}"

    with localport.reserve() as reservation:
        assert reservation.lock_path is not None
        assert os.path.dirname(reservation.lock_path) == str(expected)
        assert mode_of(expected) == 0o700


def test_a_lock_dir_whose_parents_do_not_exist_is_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "missing" / "parent" / "locks"
    monkeypatch.setenv("LOCALPORT_DIR", str(path))

    with localport.reserve() as reservation:
        assert reservation.lock_path is not None
        assert os.path.dirname(reservation.lock_path) == str(path)
        assert mode_of(path) == 0o700
        assert mode_of(path.parent) == 0o700


# -- directories another user could tamper with ------------------------------------------------


def test_a_lock_dir_that_is_a_symlink_is_refused_and_nothing_is_created_in_its_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "real"
    target.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    monkeypatch.setenv("LOCALPORT_DIR", str(link))

    with pytest.raises(localport.LockDirError, match="symbolic link") as info:
        localport.reserve()
    assert info.value.lock_dir == str(link)
    with pytest.raises(localport.LockDirError, match="symbolic link"):
        localport.reservations()
    assert list(target.iterdir()) == []


def test_a_default_directory_that_is_a_symlink_is_refused(
    runtime_dir: Path, tmp_path: Path
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o700)
    (runtime_dir / "localport").symlink_to(planted, target_is_directory=True)

    with pytest.raises(localport.LockDirError, match="symbolic link"):
        localport.reserve()
    assert list(planted.iterdir()) == []


def test_a_default_directory_that_is_a_file_is_refused(runtime_dir: Path) -> None:
    (runtime_dir / "localport").write_bytes(b"")

    with pytest.raises(localport.LockDirError, match="not a directory"):
        localport.reserve()


@needs_root
def test_a_default_directory_owned_by_another_user_is_refused_naming_the_owner(
    runtime_dir: Path,
) -> None:
    default = runtime_dir / "localport"
    default.mkdir(mode=0o700)
    os.chown(default, NOBODY, NOBODY)

    with pytest.raises(localport.LockDirError) as info:
        localport.reserve()
    message = str(info.value)
    assert f"belongs to uid {NOBODY}" in message
    assert f"not to you (uid {os.getuid()})" in message
    assert str(default) in message
    assert list(default.iterdir()) == []


@pytest.mark.parametrize("mode", [0o755, 0o777, 0o710, 0o500], ids=oct)
def test_a_default_directory_not_exactly_0700_is_refused_with_the_chmod_to_run(
    runtime_dir: Path, mode: int
) -> None:
    default = runtime_dir / "localport"
    default.mkdir()
    default.chmod(mode)

    with pytest.raises(localport.LockDirError) as info:
        localport.reserve()
    assert f"chmod 700 {default}" in str(info.value)
    assert f"{mode:04o}" in str(info.value)
    assert list(default.iterdir()) == []


def test_a_shared_directory_writable_by_all_without_the_sticky_bit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("LOCALPORT_DIR", str(shared))

    with pytest.raises(localport.LockDirError) as info:
        localport.reserve()
    assert "sticky bit" in str(info.value)
    assert f"chmod 1777 {shared}" in str(info.value)
    assert list(shared.iterdir()) == []


@needs_root
@pytest.mark.parametrize("mode", [0o755, 0o1777], ids=["plain", "sticky"])
def test_a_shared_directory_owned_by_another_user_is_refused_sticky_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    os.chown(shared, NOBODY, NOBODY)
    monkeypatch.setenv("LOCALPORT_DIR", str(shared))

    # Its owner may delete any file in it, sticky bit or not.
    with pytest.raises(localport.LockDirError, match=f"it belongs to uid {NOBODY}, who could"):
        localport.reserve()


def test_a_sticky_shared_directory_gets_lock_files_other_users_can_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setenv("LOCALPORT_DIR", str(shared))

    # A common umask that would strip group/other write from a plain open(..., 0o666).
    previous = os.umask(0o022)
    try:
        reservation = localport.reserve()
    finally:
        os.umask(previous)
    with reservation:
        assert reservation.lock_path is not None
        assert os.path.dirname(reservation.lock_path) == str(shared)
        # filelock opens lock files O_RDWR, so other users need read and write to lock them.
        assert mode_of(reservation.lock_path) & 0o066 == 0o066
        assert [info.port for info in localport.reservations()] == [reservation.port]
    assert mode_of(shared) == 0o1777


# -- planted files inside the directory --------------------------------------------------------


def test_a_planted_lock_file_symlink_never_leads_to_a_write_outside_the_lock_dir(
    lock_dir: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    content, mtime = make_victim(victim)
    port = PLANTED_PORT
    planted = lock_dir / f"port-{port}.lock"
    planted.symlink_to(victim)

    with pytest.raises(localport.LockDirError) as explicit:
        localport.reserve(port)
    assert str(planted) in str(explicit.value)
    with pytest.raises(localport.NoFreePortError) as from_range:
        localport.reserve(port_range=(port, port))
    assert from_range.value.port_range == (port, port)

    assert victim.read_bytes() == content
    assert os.stat(victim).st_mtime_ns == mtime
    assert planted.is_symlink()
    assert localport.reservations() == []


def test_a_planted_sticky_name_symlink_is_replaced_and_its_target_left_alone(
    lock_dir: Path, tmp_path: Path
) -> None:
    with localport.reserve(name="web"):
        pass
    records = list(lock_dir.glob("name-*.json"))
    assert len(records) == 1
    record = records[0]
    victim = tmp_path / "victim"
    content, mtime = make_victim(victim)
    record.unlink()
    record.symlink_to(victim)

    with localport.reserve(name="web") as reservation:
        assert victim.read_bytes() == content
        assert os.stat(victim).st_mtime_ns == mtime
        assert not record.is_symlink()
        assert json.loads(record.read_bytes()) == {
            "name": "web",
            "port": reservation.port,
            "scope": None,
            "host": "127.0.0.1",
        }


# -- lock files live forever -----------------------------------------------------------------


def test_lock_files_are_never_unlinked_and_released_ones_are_not_listed() -> None:
    reservation = localport.reserve()
    lock_path = reservation.lock_path
    assert lock_path is not None
    inode = os.lstat(lock_path).st_ino
    assert [info.port for info in localport.reservations()] == [reservation.port]

    reservation.release()

    assert os.path.isfile(lock_path)
    assert localport.reservations() == []
    # Taking the same port again locks the very same inode: the file was never replaced.
    with localport.reserve(reservation.port) as again:
        assert again.lock_path == lock_path
        assert os.lstat(lock_path).st_ino == inode
    assert os.lstat(lock_path).st_ino == inode


# -- readers never disturb writers -----------------------------------------------------------
#
# Reading the registry (listing, is_free) must never make a concurrent reserve() fail
# (docs/architecture.md: readers never take a lock).
# A reader that "tests" a lock by taking it, or binds a port a reserve() is in the middle of
# taking, breaks that. The reader runs in a thread (the GIL interleaves it with the main thread)
# and in a child process (true parallelism), while this process reserves and releases one port.

ITERATIONS = 1000

READERS = [
    pytest.param("reservations", id="reservations"),
    pytest.param("is_free", id="is_free"),
]


def _read_the_registry(what: str, port: int) -> None:
    if what == "is_free":
        localport.is_free(port)
    else:
        localport.reservations()


def _reserve_and_release_repeatedly(port: int) -> None:
    for _ in range(ITERATIONS):
        localport.reserve(port).release()


@pytest.mark.parametrize("what", READERS)
def test_reading_the_registry_in_a_thread_never_makes_a_concurrent_reserve_fail(
    what: str,
) -> None:
    port = READER_PORTS["thread", what]
    stop = threading.Event()
    reading = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                _read_the_registry(what, port)
                reading.set()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
            reading.set()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert reading.wait(60)
        _reserve_and_release_repeatedly(port)
    finally:
        stop.set()
        thread.join()
    assert errors == []


READER = """
import json, sys, threading
import localport

port, what = int(sys.argv[1]), sys.argv[2]
eof = threading.Event()


def wait_for_eof():
    sys.stdin.read()
    eof.set()


def read():
    if what == "is_free":
        localport.is_free(port)
    else:
        localport.reservations()


threading.Thread(target=wait_for_eof, daemon=True).start()
read()
print(json.dumps({"reading": True}), flush=True)
while not eof.is_set():
    read()
"""


@pytest.mark.parametrize("what", READERS)
def test_reading_the_registry_in_another_process_never_makes_a_concurrent_reserve_fail(
    spawn: Any, what: str
) -> None:
    port = READER_PORTS["process", what]
    child = spawn(READER, str(port), what)
    assert child.read() == {"reading": True}
    try:
        _reserve_and_release_repeatedly(port)
    finally:
        child.finish()  # the reader ran without an error the whole time


# -- a lock held mid-reserve -------------------------------------------------------------------
#
# Between taking a port's lock and writing its metadata, a reserve() holds a lock file that still
# describes the previous, released reservation. Only the lock state is truth (docs/architecture.md).

LOCK_HOLDER = """
import json, sys
from filelock import FileLock

# What a reserve() in another process looks like after its lock, before its metadata.
lock = FileLock(sys.argv[1], is_singleton=False, thread_local=False)
lock.acquire(blocking=False)
print(json.dumps({"locked": True}), flush=True)
sys.stdin.readline()
lock.release()
"""


@pytest.fixture
def port_locked_mid_reserve(spawn: Any) -> Iterator[int]:
    """A port this process reserved and released, now locked by a child that wrote nothing."""
    with localport.reserve() as earlier:
        port, lock_path = earlier.port, earlier.lock_path
    assert localport.is_free(port)
    child = spawn(LOCK_HOLDER, lock_path)
    assert child.read() == {"locked": True}
    yield port
    child.finish()


def test_a_port_whose_lock_another_process_holds_is_not_free_even_if_its_file_says_released(
    port_locked_mid_reserve: int,
) -> None:
    assert localport.is_free(port_locked_mid_reserve) is False


def test_a_refusal_never_blames_the_pid_of_a_released_record(
    port_locked_mid_reserve: int,
) -> None:
    with pytest.raises(localport.PortInUseError) as info:
        localport.reserve(port_locked_mid_reserve)
    message = str(info.value)
    assert "reserved by localport" in message
    assert "this process" not in message
    assert f"PID {os.getpid()}" not in message


# -- the lock is the reservation ---------------------------------------------------------------

HOLDER = """
import json, os, sys
import localport

reservation = localport.reserve()
print(json.dumps({"port": reservation.port, "pid": os.getpid()}), flush=True)
sys.stdin.readline()
reservation.release()
"""


def test_a_port_locked_by_another_process_is_reported_reserved_by_that_pid(spawn: Any) -> None:
    child = spawn(HOLDER)
    held = child.read()
    port = held["port"]
    assert held["pid"] == child.pid

    with pytest.raises(localport.PortInUseError) as info:
        localport.reserve(port)
    message = str(info.value)
    assert "reserved by localport" in message
    assert f"PID {child.pid}" in message
    assert info.value.port == port
    listed = [(entry.port, entry.pid) for entry in localport.reservations()]
    assert listed == [(port, child.pid)]

    child.finish()
    assert localport.reservations() == []
