"""Load tests: a SIGKILL storm, and 64 processes cycling on a narrow range.

Both run a supervisor in a private network namespace (``unshare -n``, loopback brought up)
where the system permits one, else on the machine's loopback with this module's fixed ports
(31000-31009 and 31100-31179; see the plan in conftest.py). The supervisor forks its workers
(a fork costs a millisecond, a new interpreter fifty) and runs in a session of its own, which
the test kills as a whole at the end.

Overlapping holds are seen by a witness independent of localport: while a worker believes it
holds port P it binds an abstract Unix socket named after P, which the kernel lets only one
live process bind and frees when that process dies, SIGKILL included. A second grant of P
while the first holder lives makes the second witness bind fail.

Marked ``load`` (``-m load`` selects them, ``-m "not load"`` leaves them out); they run by
default, each bounded to well under a minute.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest

pytestmark = pytest.mark.load

STORM_RANGE = (31000, 31009)
LOAD_RANGE = (31100, 31179)

COMMON = """
    import errno, json, os, random, signal, socket, sys, time
    import localport

    NONCE = sys.argv[1]

    def witness(port):
        # Only one live process can bind this name: a second grant of the port shows here.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"\\0localport-test-witness-{NONCE}-{port}")
        except OSError as error:
            sock.close()
            if error.errno == errno.EADDRINUSE:
                return None
            raise
        return sock

    def cycle(port_range, guard, pause, tally):
        try:
            reservation = localport.reserve(port_range=port_range, guard=guard)
        except localport.NoFreePortError:
            tally["no_free"] += 1
            return
        port = reservation.port
        mark = witness(port)
        if mark is None:
            tally["overlaps"].append(port)
        server = socket.socket()
        try:
            server.bind(("127.0.0.1", port))
            server.listen()
        except OSError as error:
            tally["bind_failures"].append([port, error.errno])
        tally["grants"] += 1
        time.sleep(random.uniform(0, pause))
        server.close()
        if mark is not None:
            mark.close()
        reservation.release()

    def new_tally():
        return {"grants": 0, "no_free": 0, "overlaps": [], "bind_failures": []}
"""

STORM = (
    COMMON
    + """
    low, high, seconds, wanted_kills = (float(a) for a in sys.argv[2:6])
    port_range = (int(low), int(high))
    report_r, report_w = os.pipe()

    def worker(index):
        os.close(report_r)
        random.seed(os.getpid())
        tally = new_tally()
        deadline = time.monotonic() + seconds + 5
        while time.monotonic() < deadline:
            cycle(port_range, guard=index % 2 == 0, pause=0.004, tally=tally)
            # After every cycle, in one write (atomic on a pipe): a SIGKILL loses nothing.
            os.write(report_w, (json.dumps(tally) + "\\n").encode())
            tally = new_tally()
        os._exit(0)

    def start(index):
        pid = os.fork()
        if pid == 0:
            worker(index)
        return pid

    steady = start(0)  # the concurrent reserver nobody kills
    workers = {index: start(index) for index in range(1, 9)}
    os.close(report_w)
    kills = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and kills < wanted_kills:
        time.sleep(random.uniform(0.002, 0.03))
        index = random.choice(list(workers))
        os.kill(workers[index], signal.SIGKILL)
        os.waitpid(workers[index], 0)
        kills += 1
        workers[index] = start(index)
    for pid in [*workers.values(), steady]:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    total = new_tally()
    with os.fdopen(report_r) as reports:
        for line in reports:
            part = json.loads(line)
            total["grants"] += part["grants"]
            total["no_free"] += part["no_free"]
            total["overlaps"] += part["overlaps"]
            total["bind_failures"] += part["bind_failures"]
    free_after = []
    for port in range(port_range[0], port_range[1] + 1):
        with localport.reserve(port, guard=False) as again:
            free_after.append(again.port)
    print(json.dumps({"kills": kills, "total": total, "free_after": free_after}), flush=True)
"""
)

LOAD = (
    COMMON
    + """
    low, high, processes, cycles = (int(a) for a in sys.argv[2:6])
    report_r, report_w = os.pipe()
    start_r, start_w = os.pipe()
    pids = []
    for index in range(processes):
        pid = os.fork()
        if pid == 0:
            os.close(report_r)
            os.close(start_w)
            random.seed(os.getpid())
            os.read(start_r, 1)  # every worker starts at once
            tally = new_tally()
            for _ in range(cycles):
                cycle((low, high), guard=index % 2 == 0, pause=0.002, tally=tally)
            os.write(report_w, (json.dumps(tally) + "\\n").encode())
            os._exit(0)
        pids.append(pid)
    os.close(report_w)
    os.close(start_r)
    os.write(start_w, b"g" * processes)
    total = new_tally()
    with os.fdopen(report_r) as reports:
        for line in reports:
            part = json.loads(line)
            total["grants"] += part["grants"]
            total["no_free"] += part["no_free"]
            total["overlaps"] += part["overlaps"]
            total["bind_failures"] += part["bind_failures"]
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    print(json.dumps({"total": total, "statuses": statuses}), flush=True)
"""
)


def _namespace_prefix() -> list[str]:
    """Run in a private network namespace with loopback up, where this system permits it."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        return []
    probe = subprocess.run(
        [unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        return []  # not permitted here: the machine's loopback, and our fixed ports
    return [unshare, "-n", "sh", "-c", f'{ip} link set lo up && exec "$0" "$@"']


def _supervise(code: str, *args: object, timeout: float) -> dict[str, object]:
    command = [
        *_namespace_prefix(),
        sys.executable,
        "-c",
        textwrap.dedent(code),
        uuid.uuid4().hex,
        *(str(a) for a in args),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        # The supervisor and every worker it forked share its process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    assert process.returncode == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def test_a_sigkill_storm_leaves_no_overlapping_holds_and_every_port_free() -> None:
    low, high = STORM_RANGE
    result = _supervise(STORM, low, high, 12, 200, timeout=90)

    total = result["total"]
    assert isinstance(total, dict)
    assert total["overlaps"] == [], "a port was held by two live processes at once"
    assert total["bind_failures"] == [], "a reserved port could not be bound"
    assert total["grants"] > 0, "no worker ever got a port"
    kills = result["kills"]
    assert isinstance(kills, int)
    assert kills >= 50, f"only {kills} SIGKILLs happened"
    assert result["free_after"] == list(range(low, high + 1))


def test_sixty_four_processes_cycling_on_a_narrow_range_never_double_grant() -> None:
    low, high = LOAD_RANGE
    processes, cycles = 64, 100
    result = _supervise(LOAD, low, high, processes, cycles, timeout=110)

    total = result["total"]
    assert isinstance(total, dict)
    assert result["statuses"] == [0] * processes
    assert total["overlaps"] == [], "a port was held by two live processes at once"
    assert total["bind_failures"] == [], "a reserved port could not be bound"
    assert total["no_free"] == 0  # 80 ports for 64 holders: never all taken
    assert total["grants"] == processes * cycles
