"""Faults degrade per port, not per walk: a full disk, a read-only one.

Each test runs a child in a private mount namespace (``unshare -m``) on a tmpfs of its own,
made tiny (a handful of inodes) or read-only, so the faults are the kernel's own; skipped
where mount namespaces are not permitted. Ports 29860-29879 (see the plan in conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

import pytest

UNSHARE = shutil.which("unshare")


def in_own_mount(setup: str, code: str, *args: str) -> dict[str, Any]:
    """Run *code* after the shell *setup* (``$M`` is a fresh mount point), privately."""
    if UNSHARE is None:
        pytest.skip("needs unshare")
    mount_point = tempfile.mkdtemp(prefix="localport-fault-")
    try:
        script = f'M={mount_point}; {setup} && exec "$0" "$@"'
        child = [sys.executable, "-c", textwrap.dedent(code), mount_point, *args]
        result = subprocess.run(
            [UNSHARE, "-m", "sh", "-c", script, *child],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.rmdir(mount_point)  # the tmpfs was only ever mounted in the child's namespace
    if result.returncode == 97:
        pytest.skip(f"no private tmpfs here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


# Mounting fails without the privilege: the shell exits 97 and the test skips.
TINY_TMPFS = "mount -t tmpfs -o size=1m,nr_inodes=12,mode=0700 none $M || exit 97"

FULL_DISK = """
    import errno, json, os, subprocess, sys
    import localport

    locks = os.path.join(sys.argv[1], "locks")
    os.mkdir(locks, 0o700)
    low, high = 29860, 29869
    for port in (low, low + 1):  # these two get lock files while there is room
        localport.reserve(port, lock_dir=locks).release()
    filled = 0
    while True:  # then every inode left is used up
        try:
            open(os.path.join(sys.argv[1], f"fill-{filled}"), "w").close()
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
            break
        filled += 1

    walked = [localport.reserve(port_range=(low, high), lock_dir=locks) for _ in range(2)]
    try:
        localport.reserve(port_range=(low, high), lock_dir=locks)
        third = "granted"
    except localport.NoFreePortError:
        third = "NoFreePortError"
    try:
        localport.reserve(low + 5, lock_dir=locks)
        explicit = "granted"
    except localport.LockDirError as error:
        explicit = error.reason
    environment = {**os.environ, "LOCALPORT_DIR": locks, "LOCALPORT_RANGE": f"{low}-{high}"}
    command = subprocess.run(
        [sys.executable, "-m", "localport", "reserve"],
        capture_output=True, text=True, env=environment, timeout=60,
    )
    walked[0].release()
    again = localport.reserve(port_range=(low, high), lock_dir=locks).port
    print(json.dumps({
        "filled": filled,
        "walked": sorted(r.port for r in walked),
        "third": third,
        "explicit": explicit,
        "command": [command.returncode, command.stderr],
        "again": again,
    }))
"""


def test_a_full_disk_skips_the_ports_without_lock_files_and_keeps_the_others() -> None:
    report = in_own_mount(TINY_TMPFS, FULL_DISK)

    assert report["filled"] >= 1
    # Both ports whose lock files exist are granted; the other eight cannot get a file.
    assert report["walked"] == [29860, 29861]
    assert report["third"] == "NoFreePortError"
    assert "No space left on device" in report["explicit"]
    code, stderr = report["command"]
    assert code != 0
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert report["again"] in (29860, 29861)


READ_ONLY = """
    import json, os, sys
    import localport

    locks = os.path.join(sys.argv[1], "locks")
    try:
        localport.reserve(port_range=(29870, 29879), lock_dir=locks)
        outcome = "granted"
    except localport.LockDirError as error:
        outcome = error.reason
    print(json.dumps({"outcome": outcome, "files": sorted(os.listdir(locks))}))
"""


def test_a_read_only_lock_directory_is_refused_at_once_saying_so() -> None:
    setup = (
        "mount -t tmpfs -o size=1m,mode=0755 none $M || exit 97; "
        "mkdir -m 0700 $M/locks && touch $M/locks/port-29870.lock && "
        "mount -o remount,ro $M"
    )
    report = in_own_mount(setup, READ_ONLY)

    assert "read-only disk" in report["outcome"]
    assert report["files"] == ["port-29870.lock"]
