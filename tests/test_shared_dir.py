"""A lock directory shared between users: accepted only where no co-user can subvert it.

The other users are real: children started through ``setpriv`` as uid 65534 (``nobody``) and
65533, so the kernel's permission checks are the ones that apply. Shared directories live
directly under ``/tmp`` (the per-test directories are private to root, so another user could
not reach them). Ports 29810-29829 (see the plan in conftest.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import localport
from conftest import Child

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SETPRIV = shutil.which("setpriv")
USER_A = 65534  # nobody
USER_B = 65533


def _why_not_as_other_users() -> str:
    """Why this suite cannot start this Python as another user; empty when it can."""
    if SETPRIV is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "acting as another user needs root and setpriv"
    # A Python installed in a home only root may enter (pyenv's in /root) does not start as
    # another user: its shared library or standard library cannot be read.
    probe = [sys.executable, "-c", "import localport._reserve"]
    result = subprocess.run(
        [SETPRIV, f"--reuid={USER_A}", f"--regid={USER_A}", "--clear-groups", *probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "LOCALPORT_DIR": "/nonexistent"},
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
        return f"{sys.executable} does not run as uid {USER_A}: {lines[-1]}"
    return ""


_WHY_NOT = _why_not_as_other_users()
needs_other_users = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT)
pytestmark = needs_other_users


def as_user(uid: int) -> list[str]:
    assert SETPRIV is not None
    return [SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def run_as(uid: int, code: str, *args: str, lock_dir: Path | None = None) -> str:
    """Run *code* as *uid* (with *lock_dir* as its ``LOCALPORT_DIR``); its stdout."""
    result = subprocess.run(
        [*as_user(uid), sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "LOCALPORT_DIR": str(lock_dir or "/nonexistent")},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def spawn_as() -> Iterator[Callable[..., Child]]:
    """Start a long-lived child as another user; each is ended by its PID at teardown."""
    children: list[Child] = []

    def start(uid: int, code: str, *args: str, lock_dir: Path) -> Child:
        process = subprocess.Popen(
            [*as_user(uid), sys.executable, "-c", textwrap.dedent(code), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LOCALPORT_DIR": str(lock_dir)},
        )
        children.append(Child(process))
        return children[-1]

    yield start
    for child in children:
        child.kill()
        for stream in (child.process.stdin, child.process.stdout, child.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def top() -> Iterator[Path]:
    """A fresh root-owned directory directly under /tmp, removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="localport-shared-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def shared_dir(parent: Path, mode: int = 0o1777, owner: int = 0) -> Path:
    path = parent / "locks"
    path.mkdir()
    os.chown(path, owner, owner)
    path.chmod(mode)
    return path


# -- 2. which shared directories are accepted ----------------------------------------------------


def test_a_sticky_directory_owned_by_another_user_is_refused_since_its_owner_deletes_anything(
    top: Path,
) -> None:
    top.chmod(0o755)
    shared = shared_dir(top, owner=USER_A)
    (shared / "port-29810.lock").write_text("{}")
    # What the refusal prevents: the directory's owner deletes a file that is not its own.
    run_as(USER_A, "import os, sys; os.unlink(sys.argv[1])", str(shared / "port-29810.lock"))

    with pytest.raises(localport.LockDirError) as info:
        localport.reserve(29810, lock_dir=shared)
    assert info.value.lock_dir == str(shared)
    assert f"it belongs to uid {USER_A}" in info.value.reason
    assert list(shared.iterdir()) == []


def test_a_directory_under_a_parent_others_can_write_is_refused_naming_that_parent(
    top: Path,
) -> None:
    top.chmod(0o777)  # writable by everyone, not sticky
    shared = shared_dir(top)
    # What the refusal prevents: another user moves the whole lock directory aside.
    run_as(USER_A, "import os, sys; os.rename(sys.argv[1], sys.argv[1] + '.x')", str(shared))
    (top / "locks.x").rename(shared)

    with pytest.raises(localport.LockDirError) as info:
        localport.reserve(29811, lock_dir=shared)
    assert f"the directory {top} above it is writable by others (mode 0777)" in info.value.reason
    assert list(shared.iterdir()) == []


def test_a_directory_under_a_parent_another_user_owns_is_refused(top: Path) -> None:
    middle = top / "middle"
    middle.mkdir(mode=0o755)
    os.chown(middle, USER_A, USER_A)
    shared = shared_dir(middle)

    with pytest.raises(localport.LockDirError, match=f"{middle} above it belongs to uid {USER_A}"):
        localport.reserve(29812, lock_dir=shared)
    with pytest.raises(localport.LockDirError):
        localport.reservations(lock_dir=shared)


def test_a_symbolic_link_above_the_directory_is_checked_where_it_leads(top: Path) -> None:
    unsafe = top / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    shared_dir(unsafe)
    top.chmod(0o755)
    link = top / "link"
    link.symlink_to(unsafe)

    with pytest.raises(localport.LockDirError, match=f"directory {unsafe} above it is writable"):
        localport.reserve(29813, lock_dir=link / "locks")


@pytest.mark.parametrize("parent_mode", [0o755, 0o1777], ids=["plain", "sticky-like-tmp"])
def test_a_sticky_directory_of_root_under_safe_parents_is_accepted_for_every_user(
    top: Path, parent_mode: int
) -> None:
    top.chmod(parent_mode)
    shared = shared_dir(top)
    code = "import localport, sys; print(localport.reserve(int(sys.argv[1])).port)"
    assert run_as(USER_A, code, "29814", lock_dir=shared) == "29814"
    with localport.reserve(29815, lock_dir=shared) as mine:
        assert mine.port == 29815


# -- 3. lock files every co-user can lock ----------------------------------------------------------


RESERVE_AND_RELEASE = """
    import os, sys
    import localport
    os.umask(0o077)  # a strict umask must not make the file private
    reservation = localport.reserve(int(sys.argv[1]))
    print(oct(os.stat(reservation.lock_path).st_mode & 0o777))
    reservation.release()
"""


def test_a_port_another_user_reserved_before_can_be_reserved_by_number(top: Path) -> None:
    top.chmod(0o755)
    shared = shared_dir(top)
    port = 29816
    assert run_as(USER_A, RESERVE_AND_RELEASE, str(port), lock_dir=shared) == "0o666"
    assert (shared / f"port-{port}.lock").stat().st_uid == USER_A

    # Another unprivileged user, then root: both get the port by number.
    assert run_as(USER_B, RESERVE_AND_RELEASE, str(port), lock_dir=shared) == "0o666"
    with localport.reserve(port, lock_dir=shared) as reservation:
        assert reservation.port == port
    # And a walk over just that port takes it too.
    with localport.reserve(port_range=(port, port), lock_dir=shared) as walked:
        assert walked.port == port


HOLD = """
    import json, os, sys
    import localport
    reservation = localport.reserve(int(sys.argv[1]), guard=False)
    print(json.dumps(os.getpid()), flush=True)
    for line in sys.stdin:
        print(json.dumps(reservation.compromised), flush=True)
"""


def test_a_port_another_user_holds_is_refused_and_listed(
    top: Path, spawn_as: Callable[..., Child]
) -> None:
    top.chmod(0o755)
    shared = shared_dir(top)
    port = 29817
    holder = spawn_as(USER_A, HOLD, str(port), lock_dir=shared)
    pid = holder.read()

    with pytest.raises(localport.PortInUseError):
        localport.reserve(port, guard=False, lock_dir=shared)
    code = "import localport; print([(i.port, i.pid) for i in localport.reservations()])"
    assert run_as(USER_B, code, lock_dir=shared) == str([(port, pid)])


def test_a_file_owner_deleting_a_file_you_hold_cannot_take_your_port(
    top: Path, spawn_as: Callable[..., Child]
) -> None:
    # The one thing the sticky bit leaves a co-user: deleting its own lock file, which you
    # may be holding. The claim keeps the port yours, and the reservation says what happened.
    top.chmod(0o755)
    shared = shared_dir(top)
    port = 29818
    assert run_as(USER_A, RESERVE_AND_RELEASE, str(port), lock_dir=shared) == "0o666"
    holder = spawn_as(USER_B, HOLD, str(port), lock_dir=shared)
    holder.read()

    take = """
        import os, sys
        import localport
        os.unlink(sys.argv[2])
        try:
            localport.reserve(int(sys.argv[1]), guard=False)
        except localport.PortInUseError as error:
            print("refused:", error)
    """
    out = run_as(USER_A, take, str(port), str(shared / f"port-{port}.lock"), lock_dir=shared)
    assert out.startswith("refused:")
    assert "deleted or replaced" in out
    holder.send()
    assert holder.read() is True
    assert [(i.port, i.compromised) for i in localport.reservations(lock_dir=shared)] == [
        (port, True)
    ]


def test_spawn_as_runs_as_the_user_it_names(spawn_as: Callable[..., Any], top: Path) -> None:
    child = spawn_as(
        USER_B, "import json, os; print(json.dumps([os.getuid(), os.getgid()]))", lock_dir=top
    )
    assert child.read() == [USER_B, USER_B]


def test_a_lock_file_another_user_keeps_private_spoils_only_that_port(top: Path) -> None:
    # Not made by localport: mode 0600, so no co-user can open it to lock it (EACCES).
    top.chmod(0o755)
    shared = shared_dir(top)
    port, other = 29823, 29824
    private = shared / f"port-{port}.lock"
    run_as(
        USER_A,
        "import os, sys; os.close(os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o600))",
        str(private),
    )
    code = """
        import sys
        import localport
        low, high = int(sys.argv[1]), int(sys.argv[2])
        print(localport.reserve(port_range=(low, high)).port)
        try:
            localport.reserve(low)
        except localport.LockDirError as error:
            print(error.reason)
    """
    walked, refused = run_as(USER_B, code, str(port), str(other), lock_dir=shared).splitlines()
    assert walked == str(other)
    assert f"port-{port}.lock cannot be used" in refused
    assert "Permission denied" in refused
