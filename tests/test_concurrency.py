"""No port is ever handed to two holders: processes, threads, forks, crashes.

Every test runs with the guard on and off: the guard socket alone would make a second
reservation of a port fail its probe, and so hide a broken file lock.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
from collections import Counter
from typing import Any

import pytest

import localport
from localport import PortInUseError, reserve

guard_modes = pytest.mark.parametrize("guard", [True, False], ids=["guard", "lock-only"])

# Every test here has a port range of its own (tests/conftest.py explains the 24000-26999
# plan). Each test has its own lock directory, and processes with different lock directories
# coordinate only through the kernel: a reservation without a guard is invisible to them. A
# test that shared the default range with tests running beside it under xdist could see its
# port taken by one of them, by design, and that would say nothing about localport.
RANGES = {
    ("sixteen", True): (25000, 25499),
    ("sixteen", False): (25500, 25999),
    ("noise", False): (26000, 26499),
    ("thread-release", True): (26500, 26509),
    ("thread-release", False): (26510, 26519),
    ("fork", True): (26520, 26529),
    ("fork", False): (26530, 26539),
    ("sigkill", True): (26540, 26549),
    ("sigkill", False): (26550, 26559),
    ("gc", True): (26560, 26569),
    ("gc", False): (26570, 26579),
}


def _range_env(test: str, guard: bool) -> dict[str, str]:
    low, high = RANGES[test, guard]
    return {"LOCALPORT_RANGE": f"{low}-{high}"}


# Each picker reserves a port, waits 0-20 ms, then binds it plainly, COUNT times, while its
# siblings do the same. It reports the ports and any failed bind, then holds everything until
# the parent closes its stdin, so that every port is held by one process at the same time.
PICKER = """
    import json, random, socket, sys
    import time
    import localport

    count, guard = int(sys.argv[1]), sys.argv[2] == "1"
    print(json.dumps("ready"), flush=True)
    sys.stdin.readline()
    held, servers, failures = [], [], []
    for _ in range(count):
        reservation = localport.reserve(guard=guard)
        held.append(reservation)
        time.sleep(random.uniform(0, 0.02))
        server = socket.socket()
        try:
            server.bind(("127.0.0.1", reservation.port))
            server.listen()
            servers.append(server)
        except OSError as error:
            failures.append([reservation.port, error.errno])
            server.close()
    print(json.dumps({"ports": [r.port for r in held], "failures": failures}), flush=True)
    sys.stdin.read()
    for server in servers:
        server.close()
    for reservation in held:
        reservation.release()
"""

# Opens and closes outgoing connections to its own listener, in batches of 200 held open at
# once, until the parent closes its stdin or it has opened 4,000: every closed connection
# leaves a TIME_WAIT entry, and the kernel's table of those is shared by the whole machine
# (131,072 by default), which other tests need room in.
NOISE = """
    import json, socket, sys, threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    stop = threading.Event()

    def accept():
        accepted = []
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass
            if len(accepted) >= 200:
                for connection in accepted:
                    connection.close()
                accepted.clear()
        for connection in accepted:
            connection.close()

    def wait_for_parent():
        sys.stdin.read()
        stop.set()

    threads = [threading.Thread(target=accept), threading.Thread(target=wait_for_parent)]
    for thread in threads:
        thread.start()
    print(json.dumps("ready"), flush=True)
    opened = 0
    while not stop.is_set() and opened < 4000:
        batch = []
        for _ in range(200):
            client = socket.socket()
            try:
                client.connect(listener.getsockname())
                batch.append(client)
            except OSError:
                client.close()
        opened += len(batch)
        for client in batch:
            client.close()
    for thread in threads:
        thread.join()
    listener.close()
    print(json.dumps(opened), flush=True)
"""


def _run_pickers(
    spawn: Any, processes: int, count: int, *, guard: bool, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    pickers = [spawn(PICKER, str(count), "1" if guard else "0", env=env) for _ in range(processes)]
    for picker in pickers:
        assert picker.read() == "ready"
    for picker in pickers:
        picker.send()
    results = [picker.read(timeout=60) for picker in pickers]
    for picker in pickers:
        picker.finish()
    return results


def _assert_no_port_twice(results: list[dict[str, Any]], expected: int) -> None:
    ports = [port for result in results for port in result["ports"]]
    assert len(ports) == expected
    twice = {port: n for port, n in Counter(ports).items() if n > 1}
    assert not twice, f"ports handed out more than once: {twice}"
    failures = [failure for result in results for failure in result["failures"]]
    assert not failures, f"binds that failed inside a reservation: {failures}"


@guard_modes
def test_sixteen_processes_never_share_a_port(spawn: Any, guard: bool) -> None:
    results = _run_pickers(spawn, 16, 20, guard=guard, env=_range_env("sixteen", guard))
    _assert_no_port_twice(results, 16 * 20)


@guard_modes
def test_a_narrow_range_shared_by_many_processes_never_hands_out_a_port_twice(
    spawn: Any, guard: bool
) -> None:
    # 64 ports, 12 processes x 5: a wide range hides races that a narrow one shows at once.
    # Each variant has its own range: xdist may run both at once, with different lock dirs.
    low = 24700 if guard else 24770
    env = {"LOCALPORT_RANGE": f"{low}-{low + 63}"}
    results = _run_pickers(spawn, 12, 5, guard=guard, env=env)
    _assert_no_port_twice(results, 60)
    assert all(low <= port <= low + 63 for result in results for port in result["ports"])


def _kernel_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as file:
            low, high = (int(part) for part in file.read().split())
    except OSError:
        pytest.skip("needs Linux's /proc/sys/net/ipv4/ip_local_port_range")
    return low, high


@guard_modes
def test_outgoing_connection_noise_never_takes_a_reserved_port(spawn: Any, guard: bool) -> None:
    env = {} if guard else _range_env("noise", guard)
    if guard:
        # Pick inside the kernel's ephemeral range, where the noise's connections get their
        # source ports: only the guard keeps them off a port between reserve and bind.
        low, high = _kernel_range()
        low, high = max(low, 49152), min(high, 65535)
        if low >= high:
            pytest.skip("the kernel's ephemeral range does not overlap 49152-65535")
        env["LOCALPORT_RANGE"] = f"{low}-{high}"
    # Without a guard, only the range policy protects: its range lies outside the kernel's
    # ephemeral range, where the noise's connections never get their source ports.
    noise = [spawn(NOISE) for _ in range(3)]
    for source in noise:
        assert source.read() == "ready"
    results = _run_pickers(spawn, 8, 20, guard=guard, env=env)
    opened = []
    for source in noise:
        source.process.stdin.close()
        opened.append(source.read(timeout=60))
        source.finish()
    assert sum(opened) > 600, f"the noise opened only {opened} connections"
    _assert_no_port_twice(results, 8 * 20)


@guard_modes
def test_sixteen_threads_get_distinct_ports(guard: bool) -> None:
    thread_range = (24850, 24881) if guard else (24890, 24921)  # one range per variant
    barrier = threading.Barrier(16)
    got: list[localport.Reservation] = []
    errors: list[BaseException] = []
    mutex = threading.Lock()

    def pick() -> None:
        try:
            barrier.wait(10)
            reservation = reserve(guard=guard, port_range=thread_range)
            with mutex:
                got.append(reservation)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=pick) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert not errors
        assert len({r.port for r in got}) == 16
    finally:
        for reservation in got:
            reservation.release()


@guard_modes
def test_a_release_from_another_thread_frees_the_port(guard: bool) -> None:
    reservation = reserve(guard=guard, port_range=RANGES["thread-release", guard])
    thread = threading.Thread(target=reservation.release)
    thread.start()
    thread.join(10)
    with reserve(reservation.port, guard=guard) as again:
        assert again.port == reservation.port


PROBE_RESERVED = """
    import json, sys, localport
    try:
        localport.reserve(int(sys.argv[1])).release()
        print(json.dumps("reserved"), flush=True)
    except localport.PortInUseError:
        print(json.dumps("in use"), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@guard_modes
def test_a_forked_child_cannot_release_its_parents_reservation(spawn: Any, guard: bool) -> None:
    reservation = reserve(guard=guard, port_range=RANGES["fork", guard])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: try to release, report, and leave without running atexit
        try:
            reservation.release()
            os.write(write_end, b"released")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 100) == b"released"
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(read_end)
    assert not reservation.released
    checker = spawn(PROBE_RESERVED, str(reservation.port))
    assert checker.read() == "in use"
    checker.finish()
    reservation.release()


@guard_modes
def test_a_holder_killed_with_sigkill_frees_its_port_at_once(spawn: Any, guard: bool) -> None:
    holder = spawn(
        """
        import json, sys, localport
        reservation = localport.reserve(guard=sys.argv[1] == "1")
        print(json.dumps(reservation.port), flush=True)
        sys.stdin.read()
        """,
        "1" if guard else "0",
        env=_range_env("sigkill", guard),
    )
    port = holder.read()
    with pytest.raises(PortInUseError):
        reserve(port, guard=guard)
    os.kill(holder.pid, signal.SIGKILL)
    holder.process.wait(10)
    with reserve(port, guard=guard) as again:
        assert again.port == port


@guard_modes
def test_a_reservation_dropped_by_garbage_collection_stays_held(spawn: Any, guard: bool) -> None:
    holder = spawn(
        """
        import gc, json, sys, localport
        port = localport.reserve(guard=sys.argv[1] == "1").port
        gc.collect()
        print(json.dumps(port), flush=True)
        sys.stdin.read()
        """,
        "1" if guard else "0",
        env=_range_env("gc", guard),
    )
    port = holder.read()
    gc.collect()
    with pytest.raises(PortInUseError, match=f"PID {holder.pid}"):
        reserve(port, guard=guard)
    assert port in {info.port for info in localport.reservations()}
    holder.finish()
    with reserve(port, guard=guard) as again:
        assert again.port == port


def test_the_same_line_in_this_process_keeps_the_port_until_release() -> None:
    port = reserve().port
    gc.collect()
    with pytest.raises(PortInUseError):
        reserve(port)
    (held,) = [
        r for r in gc.get_objects() if isinstance(r, localport.Reservation) and r.port == port
    ]
    held.release()


def test_a_reserved_port_survives_an_explicit_probe_from_another_process(spawn: Any) -> None:
    """Reading the registry and asking is_free() never disturbs a holder's bind."""
    with reserve() as reservation:
        checker = spawn(
            """
            import json, sys, localport
            port = int(sys.argv[1])
            listed = [info.port for info in localport.reservations()]
            print(json.dumps([localport.is_free(port), listed]), flush=True)
            """,
            str(reservation.port),
        )
        free, listed = checker.read()
        checker.finish()
        assert free is False
        assert reservation.port in listed
        with socket.socket() as server:
            server.bind(reservation.address)
