"""``who_holds()`` under pressure: a holder with thousands of descriptors, TIME_WAIT crowds.

The holder of a socket is found from its inode in ``/proc/PID/fd``; a large descriptor table is
searched by inode before it is read through (localport._platform.procfd). These tests use
real processes with thousands of descriptors and count the ``readlink`` calls the search makes:
work, not time, is what they bound (speed is measured in benchmarks/bench_holders.py).
Ports 29840-29849 (see the plan in conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

import localport
from helpers import leave_time_wait, time_wait_table_full
from localport._platform import procfd

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the /proc descriptor search is Linux's"
)

#: A holder of PAIRS socket pairs whose listener on ``sys.argv[1]`` is its oldest, middle or
#: newest descriptor (``sys.argv[2]``), reserved through localport when ``sys.argv[3]`` is
#: "reserve". With "reused", the pairs of its lowest descriptors are closed before the listener
#: is made, so the listener gets a low descriptor but the newest inode: the guided search
#: misses it and the full read must find it.
HOLDER = """
    import json, os, socket, sys
    import localport
    # On one CPU: the kernel hands out inode numbers in per-CPU batches, so a process that
    # moves between CPUs can make a socket whose number is older than its descriptor (then
    # the table is read through: slower, still right). Pinned, the order is the search's.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    port, position, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    pairs = 1500
    before = {"first": 0, "middle": pairs // 2, "last": pairs}[position]
    held = []
    for _ in range(before):
        held.extend(socket.socketpair())
    if mode == "reused":
        for sock in held[:200]:
            sock.close()
        del held[:200]
    if mode == "reserve":
        reservation = localport.reserve(port)
        server = reservation.listen()
    else:
        server = socket.socket()
        server.bind(("127.0.0.1", port))
        server.listen()
    for _ in range(pairs - before):
        held.extend(socket.socketpair())
    facts = [os.getpid(), server.fileno(), len(os.listdir("/proc/self/fd"))]
    print(json.dumps([*facts, os.fstat(server.fileno()).st_ino]), flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def counted_readlinks(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the ``readlink`` calls made in each ``/proc/PID/fd`` (the real call is made)."""
    calls: dict[str, int] = {}
    real = os.readlink

    def readlink(path: Any, *args: Any, **kwargs: Any) -> Any:
        directory = os.path.dirname(str(path))
        calls[directory] = calls.get(directory, 0) + 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "readlink", readlink)
    return calls


@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("mode", ["plain", "reserve"], ids=["no-hint", "hint"])
def test_the_holder_among_thousands_of_descriptors_is_found_reading_few_of_them(
    spawn: Callable[..., Any], counted_readlinks: dict[str, int], position: str, mode: str
) -> None:
    port = {"first": 29840, "middle": 29841, "last": 29842}[position] + (
        3 if mode == "reserve" else 0
    )
    holder = spawn(HOLDER, str(port), position, mode)
    pid, _, descriptors, _ = holder.read()
    assert descriptors > 3000

    holders = localport.who_holds(port)

    assert pid in {h.pid for h in holders}
    # Reading the holder's table through would take more than 3,000 calls.
    read = counted_readlinks.get(f"/proc/{pid}/fd", 0)
    assert 0 < read < 300, read


def test_a_holder_whose_descriptors_were_reused_is_still_found(
    spawn: Callable[..., Any],
) -> None:
    port = 29846
    holder = spawn(HOLDER, str(port), "last", "reused")
    pid, listener_fd, descriptors, inode = holder.read()
    assert listener_fd < 300  # a reused low descriptor with the newest inode
    assert descriptors > procfd.LARGE
    # The search by inode misses it (it looks among the newest descriptors)...
    assert not procfd._guided(pid, inode, f"socket:[{inode}]")

    # ...and reading the table through still finds it.
    assert pid in {h.pid for h in localport.who_holds(port)}


def test_who_counts_time_wait_leftovers_and_lists_them_only_when_asked() -> None:
    if time_wait_table_full():
        pytest.skip("the kernel's TIME_WAIT table is full: new entries are dropped")
    port = 29847
    for _ in range(3):
        leave_time_wait(port)

    def who(*options: str) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "localport", "who", "--json", str(port), *options],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    # At least ours: a run of this test in the last minute leaves its own too.
    counted = who()
    assert counted["time_wait"] >= 3
    assert counted["holders"] == []
    assert counted["in_use"] is True
    assert "TIME_WAIT" in counted["explanation"]

    listed = who("--time-wait")
    assert listed["time_wait"] >= 3
    assert [h["status"] for h in listed["holders"]] == ["TIME_WAIT"] * listed["time_wait"]

    text = subprocess.run(
        [sys.executable, "-m", "localport", "who", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert text.returncode == 0, text.stderr
    assert "TIME_WAIT leftover(s) of closed connections (--time-wait lists them)" in text.stdout
    assert "TIME_WAIT  " not in text.stdout  # no row of the table is a leftover
