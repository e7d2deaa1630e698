"""Benchmark localport against the usual ways of picking a free local port.

Run it from the repository root (the peers are optional; a peer that fails to import is
skipped with a note)::

    python benchmarks/bench_reserve.py                 # full run, a few minutes
    python benchmarks/bench_reserve.py --quick         # smoke run
    python benchmarks/bench_reserve.py --only raw,portpicker --iterations 500
    python benchmarks/bench_reserve.py --sections latency --only localport,raw,portpicker
    python benchmarks/bench_reserve.py --charts docs/images   # + the docs' charts

If ``localport`` is not installed, the script imports it from ``src/`` next to this file.
Options: ``--iterations N`` (latency samples, default 2000), ``--processes P`` and ``--ports K``
(collision run, default 16 and 20), ``--quick`` (200 / 8 / 10, no TIME_WAIT draining),
``--[no-]drain``, ``--only NAME[,NAME]`` with names from: localport, raw, portpicker,
ephemeral_port_reserve, port_for, portend, and ``--sections NAME[,NAME]`` with names from:
latency, busy, collisions (the tables below; default all three), ``--charts DIR`` (also draw
``reserve-latency.svg`` from the latency table and ``reserve-collisions.svg`` from the
collision table into DIR, with ``charts.py``; needs matplotlib, from the ``bench`` extra).

Everything binds loopback addresses only. The machine facts (Python, kernel, CPU count, the
kernel's ephemeral port range, load average and TCP sockets, from ``_common.py``; then
``tcp_tw_reuse``, the tools' versions and the parameters) are printed first, then the tables
of the sections asked for.

1. Latency. Wall time of picking one port, N times in a row in this process: median and p99
   (nearest rank) in microseconds, and the median divided by portpicker's median. For
   localport one sample is ``reserve(lock_dir=...)`` followed by ``release()``; for ``raw`` it
   is ``bind(("127.0.0.1", 0))``, ``getsockname()``, ``close()``; for the peers it is their
   pick function. A few warm-up calls are not counted. localport has two rows:

   - "localport" picks from the default range (49152-65535) in a new, empty lock directory,
     so most picks land on a port that has no lock file yet and create one: the cold case, a
     lock directory's first use of each port.
   - "localport (warm dir)" picks with ``port_range=(low, high)`` from a dedicated range of
     1,000 ports in another lock directory, in which every port of that range was first
     reserved and released once (``port_range=(p, p)``, untimed), so every lock file already
     exists: the warm case, a lock directory in everyday use. The range is the first block of
     1,000 from 64000-64999 down to 52000-52999 that lies outside the kernel's ephemeral range
     (so outgoing connections neither take its ports nor leave TIME_WAIT there) and whose every
     port binds; failing that, the block with the fewest busy ports (a port that does not bind
     when the lock files are made gets none). The range and the count of lock files made are
     printed below the table.

   With drain on (the default without ``--quick``) the section first waits, as the collision
   runs do, until fewer than 100 TCP sockets are in TIME_WAIT (at most 65 s), since a port in
   TIME_WAIT does not bind.

2. Busy-candidate cost (localport only). 200 listeners held by this process on consecutive
   ports at a random base in 61000-64000, and ``reserve(port_range=(base, base + 200))`` whose
   only free port is ``base + 200``. localport starts its walk at a random port of the range
   and wraps around, so a call walks past between 0 and 200 busy ports (100 on average); the
   script counts the failed binds on the busy ports during each call (by wrapping
   ``socket.socket.bind``) and reports, as the median of 20 calls, (time of that call - time
   of a ``reserve`` of the free port alone) / busy ports walked.

3. Collisions. P processes start picking at the same moment (a barrier); each picks K ports
   with one tool, then binds every picked port with a plain ``bind(("127.0.0.1", port))`` and
   ``listen()`` (no ``SO_REUSEADDR``), each after a random 0-20 ms delay, and holds all its
   sockets until every process is done. A localport process holds each reservation until
   its bind is done and all localport processes share one lock directory. "quiet" runs
   alone; "noise" adds 4 processes that each open and close TCP connections to their own
   loopback listener as fast as they can (client closes first, so every connection leaves
   an outgoing port in TIME_WAIT), starting 0.5 s before the picks and stopping when the
   pickers are done (30 s at most). Columns: binds attempted,
   failed binds (any bind or listen error, nearly always EADDRINUSE), failure %, mean time of
   one pick in ms, then two extra columns: "fail w/ REUSEADDR" counts the failed binds that
   also fail when retried with ``SO_REUSEADDR`` (a live socket holds the port; the rest only
   met a TIME_WAIT or a non-listening ``SO_REUSEADDR`` socket, which most servers bind
   through), and "dup picks" counts ports handed out more than once across all processes.
   All quiet runs happen before the noise runs, and before each run the script waits (up to
   65 s; ``--no-drain`` or ``--quick`` skips it) until fewer than 100 TCP sockets
   are in TIME_WAIT, so one run's TIME_WAIT does not leak into the next; the TIME_WAIT count
   at the start and end of each run is printed below the table. The mean pick time excludes
   imports (localport's lazy import of filelock included).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import gc
import importlib
import math
import multiprocessing
import os
import queue
import random
import shutil
import signal
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypedDict, cast

import charts
from _common import (
    DISTRIBUTION,
    LOOPBACK,
    US,
    count_time_wait,
    ephemeral_bounds,
    machine_facts,
    median,
    package_version,
    percentile,
    port_is_free,
    print_facts,
    private_dir,
    read_proc,
    table,
    wait_for_time_wait,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from multiprocessing.context import SpawnContext
    from multiprocessing.process import BaseProcess
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier, Event
    from types import FrameType, ModuleType

TOOLS = ("localport", "raw", "portpicker", "ephemeral_port_reserve", "port_for", "portend")
#: The distribution that installs each tool, for its version; "raw" is plain stdlib.
PEER_MODULES = {
    "localport": DISTRIBUTION,
    "portpicker": "portpicker",
    "ephemeral_port_reserve": "ephemeral-port-reserve",
    "port_for": "port-for",
    "portend": "portend",
}

#: A pick that takes longer than this is a hang: SIGALRM interrupts it.
CALL_GUARD_S = 10.0
BARRIER_TIMEOUT_S = 120.0
WARMUP_CALLS = 20

SECTIONS = ("latency", "busy", "collisions")
#: The latency row that picks from a range whose lock files all exist.
WARM_LABEL = "localport (warm dir)"
WARM_RANGE_SIZE = 1000
#: Candidate starts of the warm range, in the order of preference (outside the kernel's
#: ephemeral range first).
WARM_BLOCK_BASES = range(64000, 51999, -WARM_RANGE_SIZE)

BUSY_PORTS = 200
BUSY_REPS = 20
BUSY_BASE_LOW = 61000
BUSY_BASE_HIGH = 64000

NOISE_PROCESSES = 4
NOISE_MAX_S = 30.0
#: The noise runs this long before the pickers are let go, so they meet it at full speed.
NOISE_WARMUP_S = 0.5
#: Before each collision run, wait (at most this long) for TIME_WAIT to fall below the limit.
DRAIN_MAX_S = 65.0
DRAIN_LIMIT = 100
MAX_BIND_DELAY_S = 0.020


# --------------------------------------------------------------------------- types


class Reservation(Protocol):
    @property
    def port(self) -> int: ...

    def release(self) -> None: ...


class ReserveFn(Protocol):
    def __call__(
        self,
        port: int | None = None,
        *,
        port_range: tuple[int, int] | None = None,
        lock_dir: str | None = None,
    ) -> Reservation: ...


class Picker(Protocol):
    """Pick one port; return it and the reservation to release after binding, if any."""

    def __call__(self) -> tuple[int, Reservation | None]: ...


class WorkerResult(TypedDict):
    ports: list[int]
    pick_ns: list[int]
    pick_errors: list[str]
    attempted: int
    failed: int
    failed_reuse: int
    bind_errors: list[str]
    error: str


@dataclass
class Config:
    iterations: int
    processes: int
    ports: int
    tools: list[str]
    drain: bool
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    charts: str | None = None
    #: The charts' footer: the machine, and the load average when the run began.
    footer: str = ""


@dataclass
class RunStats:
    tool: str
    mode: str
    attempted: int = 0
    failed: int = 0
    failed_reuse: int = 0
    dup_picks: int = 0
    mean_pick_ms: float = math.nan
    pick_errors: list[str] = field(default_factory=list)
    bind_errors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    time_wait_at_start: int | None = None
    time_wait_at_end: int | None = None
    drained_s: float = 0.0
    noise: tuple[int, int, float] | None = None


class CallTimeoutError(Exception):
    """A pick took longer than CALL_GUARD_S."""


# --------------------------------------------------------------------------- helpers


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise CallTimeoutError(f"call took longer than {CALL_GUARD_S:.0f} s")


def _install_call_guard() -> None:
    if hasattr(signal, "setitimer"):
        signal.signal(signal.SIGALRM, _on_alarm)


def _arm(seconds: float) -> None:
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _import_localport() -> ModuleType:
    """``import localport``, falling back to the ``src/`` directory next to this script."""
    try:
        return importlib.import_module("localport")
    except ImportError:
        src = Path(__file__).resolve().parents[1] / "src"
        if not (src / "localport").is_dir() or str(src) in sys.path:
            raise
        sys.path.insert(0, str(src))
        return importlib.import_module("localport")


def _localport_reserve() -> ReserveFn:
    return cast("ReserveFn", _import_localport().reserve)


def _raw_pick() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    finally:
        sock.close()
    return port


def _make_picker(tool: str, lock_dir: str, port_range: tuple[int, int] | None = None) -> Picker:
    """The pick function of *tool*; imports the peer (ImportError when it is missing).

    *port_range* is localport's range to pick from (default: its default range).
    """
    if tool == "localport":
        reserve = _localport_reserve()
        # localport imports filelock on its first reserve(); import it here, outside the
        # timings, as the peers' imports are.
        importlib.import_module("filelock")

        def pick_localport() -> tuple[int, Reservation | None]:
            reservation = reserve(port_range=port_range, lock_dir=lock_dir)
            return reservation.port, reservation

        return pick_localport
    if tool == "raw":
        return lambda: (_raw_pick(), None)
    if tool == "portpicker":
        import portpicker  # type: ignore[import-untyped, unused-ignore]

        return lambda: (int(portpicker.pick_unused_port()), None)
    if tool == "ephemeral_port_reserve":
        import ephemeral_port_reserve  # type: ignore[import-untyped, unused-ignore]

        return lambda: (int(ephemeral_port_reserve.reserve()), None)
    if tool == "port_for":
        import port_for

        return lambda: (int(port_for.select_random()), None)
    if tool == "portend":
        import portend  # type: ignore[import-untyped, unused-ignore]

        return lambda: (int(portend.find_available_local_port()), None)
    msg = f"unknown tool {tool!r}"
    raise ValueError(msg)


def _tool_version(tool: str) -> str:
    return "stdlib" if tool == "raw" else package_version(PEER_MODULES.get(tool, tool), "unknown")


def _make_lock_dir(root: str, prefix: str) -> str:
    return str(private_dir(prefix, root))


def _finish(processes: Sequence[BaseProcess], timeout: float) -> None:
    """Join every started process; terminate, then kill, whatever does not exit in time."""
    deadline = time.monotonic() + timeout
    for proc in processes:
        if proc.pid is None:
            continue
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.pid is None or not proc.is_alive():
            continue
        proc.terminate()
        proc.join(5.0)
        if proc.is_alive():
            proc.kill()
            proc.join()


def _drain(source: Queue[object], count: int, deadline: float) -> list[object]:
    items: list[object] = []
    while len(items) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            items.append(source.get(timeout=remaining))
        except queue.Empty:
            break
    return items


# --------------------------------------------------------------------------- facts


def _print_facts(cfg: Config, notes: list[str]) -> None:
    versions = ", ".join(f"{tool} {_tool_version(tool)}" for tool in cfg.tools)
    parameters = (
        f"iterations={cfg.iterations}, processes={cfg.processes}, ports={cfg.ports}, "
        f"drain={cfg.drain}, sections={','.join(cfg.sections)}"
    )
    facts = [
        *machine_facts(),
        ("tcp_tw_reuse", read_proc("/proc/sys/net/ipv4/tcp_tw_reuse")),
        ("tools", versions),
        ("parameters", parameters),
        *(("note", note) for note in notes),
    ]
    print_facts("localport benchmark", facts)


# --------------------------------------------------------------------------- 1. latency


def _time_calls(op: Callable[[], object], iterations: int) -> list[int]:
    samples: list[int] = []
    for i in range(WARMUP_CALLS + iterations):
        _arm(CALL_GUARD_S)
        try:
            start = time.perf_counter_ns()
            op()
            end = time.perf_counter_ns()
        finally:
            _arm(0)
        if i >= WARMUP_CALLS:
            samples.append(end - start)
    return samples


def _latency_op(pick: Picker) -> Callable[[], object]:
    def op() -> object:
        port, held = pick()
        if held is not None:
            held.release()
        return port

    return op


def _outside_ephemeral(port_range: tuple[int, int]) -> bool:
    bounds = ephemeral_bounds()
    return bounds is None or port_range[1] < bounds[0] or port_range[0] > bounds[1]


def _warm_range() -> tuple[tuple[int, int], int]:
    """The warm row's range of WARM_RANGE_SIZE ports, and how many of its ports were busy.

    The first wholly bindable block of WARM_BLOCK_BASES outside the kernel's ephemeral range;
    failing that, the block with the fewest busy ports.
    """
    busy: dict[int, int] = {}
    for base in sorted(
        WARM_BLOCK_BASES, key=lambda b: not _outside_ephemeral((b, b + WARM_RANGE_SIZE - 1))
    ):
        busy[base] = sum(not port_is_free(p) for p in range(base, base + WARM_RANGE_SIZE))
        if busy[base] == 0:
            break
    base = min(busy, key=busy.__getitem__)  # the first of the least busy (dicts keep order)
    return (base, base + WARM_RANGE_SIZE - 1), busy[base]


def _make_lock_files(port_range: tuple[int, int], lock_dir: str) -> int:
    """Reserve and release every port of *port_range* once, leaving its lock file; the count."""
    localport = _import_localport()
    made = 0
    low, high = port_range
    for port in range(low, high + 1):
        try:
            held: Reservation = localport.reserve(port_range=(port, port), lock_dir=lock_dir)
        except localport.NoFreePortError:
            continue
        held.release()
        made += 1
    return made


def _warm_picker(lock_dir: str) -> tuple[Picker, str]:
    """localport's picker over a range whose lock files all exist, and a note that says so."""
    port_range, busy = _warm_range()
    made = _make_lock_files(port_range, lock_dir)
    low, high = port_range
    where = "outside" if _outside_ephemeral(port_range) else "INSIDE (no block outside was free)"
    size = high - low + 1
    outcome = (
        "so no timed pick creates a lock file"
        if made == size
        else f"the other {size - made} ports did not bind then and had no lock file at the start"
    )
    note = (
        f"{WARM_LABEL}: picks from {low}-{high}, {where} the kernel's ephemeral range, in a lock "
        f"directory where each of its ports was reserved and released once before timing: "
        f"{made} of {size} lock files made ({busy} ports did not bind when the range was "
        f"chosen), {outcome}"
    )
    return _make_picker("localport", lock_dir, port_range), note


#: How the charts name the tools: the names their users install them by.
CHART_NAMES = {
    "localport": "localport, new lock dir",
    WARM_LABEL: "localport, warm lock dir",
    "raw": "bind(0) + close",
    "portpicker": "portpicker",
    "ephemeral_port_reserve": "ephemeral-port-reserve",
    "port_for": "port-for",
    "portend": "portend",
}


def draw_latency_chart(
    cfg: Config, medians: dict[str, float], labels: Sequence[str], footer: str
) -> None:
    """reserve-latency.svg: the median of one pick per tool, and its ratio to portpicker."""
    assert cfg.charts is not None
    shown = [label for label in labels if label in medians]
    base = medians.get("portpicker")

    def value(us: float) -> str:
        ratio = f" ({us / base:.2f}x portpicker)" if base else ""
        return f"{us:,.1f} {US}{ratio}"

    path = charts.bar_chart(
        Path(cfg.charts) / "reserve-latency.svg",
        title="Time to pick one free port (median, lower is better)",
        rows=[CHART_NAMES.get(label, label) for label in shown],
        series=[charts.Series("median", [medians[label] for label in shown])],
        unit=f"{US} per pick, log scale",
        footer=footer,
        log=True,
        value_format=value,
    )
    print(f"- chart: {path}")


def run_latency(cfg: Config, lock_dir: str, warm_lock_dir: str) -> None:
    print(f"## 1. Latency of one pick ({cfg.iterations} iterations)\n")
    medians: dict[str, float] = {}
    p99s: dict[str, float] = {}
    notes: list[str] = []
    if cfg.drain:
        # TIME_WAIT left by other work makes ports of the warm range fail to bind.
        drained = wait_for_time_wait(DRAIN_LIMIT, DRAIN_MAX_S)
        notes.append(
            f"TIME_WAIT at start {count_time_wait()}"
            + (f"; waited {drained:.0f} s for TIME_WAIT to drain first" if drained >= 1 else "")
        )
    labels: list[str] = []
    for tool in cfg.tools:
        labels.append(tool)
        if tool == "localport":
            labels.append(WARM_LABEL)
            notes.append(
                "localport: picks from the default range (49152-65535) in a new lock "
                "directory, so most picks create their port's lock file (a lock directory's "
                "first use of each port)"
            )
    # ephemeral_port_reserve leaves every port in TIME_WAIT: run it last.
    for label in sorted(labels, key=lambda t: t == "ephemeral_port_reserve"):
        try:
            if label == WARM_LABEL:
                pick, note = _warm_picker(warm_lock_dir)
                notes.append(note)
            else:
                pick = _make_picker(label, lock_dir)
            gc.collect()
            samples = sorted(_time_calls(_latency_op(pick), cfg.iterations))
        except Exception as error:  # noqa: BLE001 - one tool failing must not stop the rest
            notes.append(f"{label}: failed: {type(error).__name__}: {error}")
            continue
        medians[label] = median(samples) / 1000
        p99s[label] = percentile(samples, 0.99) / 1000
    base = medians.get("portpicker")
    rows = []
    for label in labels:
        if label not in medians:
            continue
        ratio = f"{medians[label] / base:.2f}x" if base else "n/a"
        rows.append([label, f"{medians[label]:.1f}", f"{p99s[label]:.1f}", ratio])
    headers = ["tool", f"median {US}", f"p99 {US}", "median / portpicker"]
    print(table(headers, rows))
    if notes:
        print()
    for note in notes:
        print(f"- {note}")
    if cfg.charts is not None and medians:
        draw_latency_chart(
            cfg, medians, labels, cfg.footer + f" \N{MIDDLE DOT} {cfg.iterations:,} picks a tool"
        )
    print()


# --------------------------------------------------------------------------- 2. busy candidates


def _hold_busy_block(count: int, rng: random.Random) -> tuple[int, list[socket.socket]]:
    """Listeners on *count* consecutive ports from a random base; the next port is free."""
    for _ in range(100):
        base = rng.randint(BUSY_BASE_LOW, BUSY_BASE_HIGH)
        listeners: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listeners.append(sock)
                sock.bind((LOOPBACK, port))
                sock.listen(8)
        except OSError:
            for sock in listeners:
                sock.close()
            continue
        if port_is_free(base + count):
            return base, listeners
        for sock in listeners:
            sock.close()
    msg = f"found no {count + 1} consecutive bindable ports in {BUSY_BASE_LOW}-{BUSY_BASE_HIGH}"
    raise RuntimeError(msg)


@contextlib.contextmanager
def _count_failed_binds(ports: range) -> Iterator[list[int]]:
    """Count failed ``socket.socket.bind`` calls on *ports* while the block runs."""
    counter = [0]
    original = socket.socket.bind
    shadowed = "bind" in vars(socket.socket)

    def bind(self: socket.socket, address: object) -> None:
        try:
            original(self, address)  # type: ignore[arg-type]
        except OSError:
            if isinstance(address, tuple) and len(address) >= 2 and address[1] in ports:
                counter[0] += 1
            raise

    socket.socket.bind = bind  # type: ignore[method-assign, assignment]
    try:
        yield counter
    finally:
        if shadowed:
            socket.socket.bind = original  # type: ignore[method-assign]
        else:
            delattr(socket.socket, "bind")


def _failed_bind_cost(port: int, calls: int, *, counted: bool) -> float:
    """Mean microseconds of socket() + failing bind() + close() on a busy *port*."""
    with contextlib.ExitStack() as stack:
        if counted:
            stack.enter_context(_count_failed_binds(range(port, port + 1)))
        start = time.perf_counter_ns()
        for _ in range(calls):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                pass
            finally:
                sock.close()
        end = time.perf_counter_ns()
    return (end - start) / calls / 1000


def run_busy(lock_dir: str) -> None:
    print(f"## 2. localport: cost of a busy candidate ({BUSY_PORTS} busy ports)\n")
    reserve = _localport_reserve()
    base, listeners = _hold_busy_block(BUSY_PORTS, random.Random())
    free = base + BUSY_PORTS
    totals: list[float] = []
    baselines: list[float] = []
    walked: list[int] = []
    per_candidate: list[float] = []
    wrong: list[int] = []
    try:
        with _count_failed_binds(range(base, free)) as counter:
            for rep in range(BUSY_REPS + 1):  # rep 0 warms up the lock files
                counter[0] = 0
                t0 = time.perf_counter_ns()
                reservation = reserve(port_range=(base, free), lock_dir=lock_dir)
                t1 = time.perf_counter_ns()
                got, busy_walked = reservation.port, counter[0]
                reservation.release()
                t2 = time.perf_counter_ns()
                alone = reserve(port_range=(free, free), lock_dir=lock_dir)
                t3 = time.perf_counter_ns()
                alone.release()
                if got != free:
                    wrong.append(got)
                if rep == 0:
                    continue
                totals.append((t1 - t0) / 1000)
                baselines.append((t3 - t2) / 1000)
                walked.append(busy_walked)
                if busy_walked:
                    per_candidate.append((totals[-1] - baselines[-1]) / busy_walked)
        bare = _failed_bind_cost(base, 2000, counted=False)
        counted = _failed_bind_cost(base, 2000, counted=True)
    finally:
        for sock in listeners:
            sock.close()
    headers = [
        "port range",
        f"median total {US}",
        f"median no-busy {US}",
        "median busy walked",
        f"{US} per busy candidate",
    ]
    row = [
        f"{base}-{free}",
        f"{median(totals):.1f}",
        f"{median(baselines):.1f}",
        f"{median(walked):.0f}",
        f"{median(per_candidate):.2f}" if per_candidate else "n/a",
    ]
    print(table(headers, [row]))
    print(
        f"\n- {BUSY_REPS} calls; busy ports walked per call: min {min(walked)}, "
        f"max {max(walked)}, mean {statistics.fmean(walked):.0f}"
    )
    print(
        f"- for scale: socket() + failing bind() + close() from Python costs {bare:.2f} {US}; "
        f"the bind counter adds {counted - bare:.2f} {US} per failed bind (included above)"
    )
    if wrong:
        print(f"- UNEXPECTED: reserve returned {sorted(set(wrong))} instead of the free {free}")
    print()


# --------------------------------------------------------------------------- 3. collisions


def _empty_result() -> WorkerResult:
    return {
        "ports": [],
        "pick_ns": [],
        "pick_errors": [],
        "attempted": 0,
        "failed": 0,
        "failed_reuse": 0,
        "bind_errors": [],
        "error": "",
    }


def _listen(port: int, *, reuse: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(8)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_picked(port: int, result: WorkerResult, sockets: list[socket.socket]) -> None:
    result["attempted"] += 1
    try:
        sockets.append(_listen(port, reuse=False))
    except OSError as error:
        result["failed"] += 1
        if error.errno != errno.EADDRINUSE:
            result["bind_errors"].append(f"{port}: {error}")
            result["failed_reuse"] += 1
            return
        try:
            sockets.append(_listen(port, reuse=True))
        except OSError:
            result["failed_reuse"] += 1


def _picker_worker(
    tool: str,
    count: int,
    lock_dir: str,
    *,
    start: Barrier,
    done: Barrier,
    out: Queue[WorkerResult],
) -> None:
    result = _empty_result()
    sent = False
    sockets: list[socket.socket] = []
    held: list[Reservation] = []
    try:
        _install_call_guard()
        pick = _make_picker(tool, lock_dir)
        picked: list[tuple[int, Reservation | None]] = []
        start.wait(BARRIER_TIMEOUT_S)
        for _ in range(count):
            _arm(CALL_GUARD_S)
            try:
                t0 = time.perf_counter_ns()
                port, reservation = pick()
                t1 = time.perf_counter_ns()
            except Exception as error:  # noqa: BLE001 - reported, not fatal
                result["pick_errors"].append(f"{type(error).__name__}: {error}")
                continue
            finally:
                _arm(0)
            result["pick_ns"].append(t1 - t0)
            result["ports"].append(port)
            picked.append((port, reservation))
            if reservation is not None:
                held.append(reservation)
        for port, reservation in picked:
            time.sleep(random.uniform(0, MAX_BIND_DELAY_S))
            _bind_picked(port, result, sockets)
            if reservation is not None:
                held.remove(reservation)
                reservation.release()
        out.put(result)
        sent = True
        done.wait(BARRIER_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - the parent reports it
        result["error"] = f"{type(error).__name__}: {error}"
        start.abort()
        done.abort()
        if not sent:
            out.put(result)
    finally:
        for sock in sockets:
            sock.close()
        for reservation in held:
            reservation.release()


def _one_connection(listener: socket.socket, address: tuple[str, int]) -> bool:
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        client.settimeout(2.0)
        client.connect(address)
        server_side, _ = listener.accept()
        client.close()  # the client closes first: its port goes to TIME_WAIT
        server_side.close()
    except OSError:
        return False
    finally:
        client.close()
    return True


def _noise_worker(
    stop: Event, ready: Barrier, out: Queue[tuple[int, int, float]], max_seconds: float
) -> None:
    connections = failures = 0
    began = time.monotonic()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind((LOOPBACK, 0))
        listener.listen(512)
        listener.settimeout(1.0)
        address: tuple[str, int] = listener.getsockname()
        ready.wait(BARRIER_TIMEOUT_S)
        began = time.monotonic()
        deadline = began + max_seconds
        while True:
            if (connections + failures) % 64 == 0 and (
                stop.is_set() or time.monotonic() > deadline
            ):
                break
            if _one_connection(listener, address):
                connections += 1
            else:
                failures += 1
                time.sleep(0.001)
    except threading.BrokenBarrierError:
        pass
    finally:
        listener.close()
        out.put((connections, failures, time.monotonic() - began))


def _summarize(stats: RunStats, results: Sequence[WorkerResult], expected: int) -> None:
    pick_ns: list[int] = []
    ports: list[int] = []
    for result in results:
        stats.attempted += result["attempted"]
        stats.failed += result["failed"]
        stats.failed_reuse += result["failed_reuse"]
        stats.pick_errors += result["pick_errors"]
        stats.bind_errors += result["bind_errors"]
        if result["error"]:
            stats.errors.append(result["error"])
        pick_ns += result["pick_ns"]
        ports += result["ports"]
    if len(results) < expected:
        stats.errors.append(f"{expected - len(results)} picker process(es) sent no result")
    stats.dup_picks = len(ports) - len(set(ports))
    if pick_ns:
        stats.mean_pick_ms = statistics.fmean(pick_ns) / 1e6


def collision_run(
    ctx: SpawnContext, cfg: Config, tool: str, *, noisy: bool, lock_dir: str
) -> RunStats:
    stats = RunStats(tool, "noise" if noisy else "quiet")
    if cfg.drain:
        stats.drained_s = wait_for_time_wait(DRAIN_LIMIT, DRAIN_MAX_S)
    stats.time_wait_at_start = count_time_wait()
    start = ctx.Barrier(cfg.processes + 1)
    done = ctx.Barrier(cfg.processes)
    out: Queue[WorkerResult] = ctx.Queue()
    stop = ctx.Event()
    noise_ready = ctx.Barrier(NOISE_PROCESSES + 1)
    noise_out: Queue[tuple[int, int, float]] = ctx.Queue()
    pickers = [
        ctx.Process(
            target=_picker_worker,
            args=(tool, cfg.ports, lock_dir),
            kwargs={"start": start, "done": done, "out": out},
            name=f"picker-{tool}-{i}",
            daemon=True,
        )
        for i in range(cfg.processes)
    ]
    noise = [
        ctx.Process(
            target=_noise_worker,
            args=(stop, noise_ready, noise_out, NOISE_MAX_S),
            name=f"noise-{i}",
            daemon=True,
        )
        for i in range(NOISE_PROCESSES if noisy else 0)
    ]
    results: list[object] = []
    try:
        for proc in pickers + noise:
            proc.start()
        try:
            if noise:
                noise_ready.wait(BARRIER_TIMEOUT_S)
                time.sleep(NOISE_WARMUP_S)
            start.wait(BARRIER_TIMEOUT_S)
        except threading.BrokenBarrierError:
            stats.errors.append("a process broke the start barrier")
            noise_ready.abort()
            start.abort()
        results = _drain(
            cast("Queue[object]", out), cfg.processes, time.monotonic() + BARRIER_TIMEOUT_S
        )
        stop.set()
        noise_results = _drain(
            cast("Queue[object]", noise_out), len(noise), time.monotonic() + 10.0
        )
        if noise:
            triples = cast("list[tuple[int, int, float]]", noise_results)
            stats.noise = (
                sum(t[0] for t in triples),
                sum(t[1] for t in triples),
                max((t[2] for t in triples), default=0.0),
            )
    finally:
        stop.set()
        stats.time_wait_at_end = count_time_wait()
        _finish(pickers + noise, timeout=BARRIER_TIMEOUT_S)
        for source in (out, noise_out):
            source.close()
            source.join_thread()
    _summarize(stats, cast("list[WorkerResult]", results), cfg.processes)
    return stats


def run_collisions(cfg: Config, root: str) -> None:
    print(
        f"## 3. Collisions: {cfg.processes} processes x {cfg.ports} ports, "
        "plain bind after a random 0-20 ms delay\n"
    )
    ctx = multiprocessing.get_context("spawn")
    runs: list[RunStats] = []
    for noisy in (False, True):
        for tool in cfg.tools:
            lock_dir = _make_lock_dir(root, f"collide-{tool}-")
            runs.append(collision_run(ctx, cfg, tool, noisy=noisy, lock_dir=lock_dir))
    runs.sort(key=lambda r: (cfg.tools.index(r.tool), r.mode != "quiet"))
    headers = [
        "tool",
        "mode",
        "binds attempted",
        "failed binds",
        "failure %",
        "mean pick ms",
        "fail w/ REUSEADDR",
        "dup picks",
    ]
    rows = [
        [
            r.tool,
            r.mode,
            str(r.attempted),
            str(r.failed),
            f"{100 * r.failed / r.attempted:.1f}" if r.attempted else "n/a",
            f"{r.mean_pick_ms:.3f}",
            str(r.failed_reuse),
            str(r.dup_picks),
        ]
        for r in runs
    ]
    print(table(headers, rows, "ll" + "r" * (len(headers) - 2)))
    print()
    for r in runs:
        _print_run_notes(r)
    if cfg.charts is not None and runs:
        draw_collision_chart(cfg, runs)
    print()


def draw_collision_chart(cfg: Config, runs: Sequence[RunStats]) -> None:
    """reserve-collisions.svg: failed binds per tool, quiet and with outgoing connections."""
    assert cfg.charts is not None
    tools = [tool for tool in cfg.tools if any(r.tool == tool for r in runs)]
    failed = {(r.tool, r.mode): r.failed for r in runs}
    binds = cfg.processes * cfg.ports
    series = [
        charts.Series(
            label, [float(failed[tool, mode]) if (tool, mode) in failed else None for tool in tools]
        )
        for mode, label in (("quiet", "quiet machine"), ("noise", "with outgoing connections"))
    ]
    path = charts.bar_chart(
        Path(cfg.charts) / "reserve-collisions.svg",
        title=(f"Failed binds, {cfg.processes} processes x {cfg.ports} ports (lower is better)"),
        rows=[CHART_NAMES.get(tool, tool) for tool in tools],
        series=series,
        unit=f"failed binds out of {binds:,} a run",
        footer=cfg.footer,
        value_format=lambda value: f"{value:.0f}",
    )
    print(f"- chart: {path}")


def _print_run_notes(r: RunStats) -> None:
    parts = [f"TIME_WAIT at start {r.time_wait_at_start}, at end {r.time_wait_at_end}"]
    if r.drained_s >= 1.0:
        parts.append(f"waited {r.drained_s:.0f} s for TIME_WAIT to drain first")
    limit = read_proc("/proc/sys/net/ipv4/tcp_max_tw_buckets")
    if limit.isdigit() and (r.time_wait_at_end or 0) >= int(limit):
        parts.append(f"TIME_WAIT table full (tcp_max_tw_buckets {limit}): the kernel dropped some")
    if r.noise is not None:
        conns, failures, seconds = r.noise
        rate = conns / seconds if seconds > 0 else 0.0
        parts.append(
            f"noise {conns} connections in {seconds:.1f} s ({rate:.0f}/s), "
            f"{failures} failed connects"
        )
    if r.pick_errors:
        counts = collections.Counter(r.pick_errors).most_common(3)
        parts.append(f"{len(r.pick_errors)} pick errors, e.g. {counts}")
    if r.bind_errors:
        parts.append(f"{len(r.bind_errors)} non-EADDRINUSE bind errors, e.g. {r.bind_errors[:3]}")
    if r.errors:
        parts.append(f"errors: {r.errors[:3]}")
    print(f"- {r.tool}/{r.mode}: " + "; ".join(parts))


# --------------------------------------------------------------------------- main


def _parse_args(argv: Sequence[str] | None) -> Config:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, help="latency samples per tool (2000)")
    parser.add_argument("--processes", type=int, help="collision-run processes (16)")
    parser.add_argument("--ports", type=int, help="ports each collision process picks (20)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 200 iterations, 8 processes, 10 ports"
    )
    parser.add_argument("--only", help=f"comma-separated tools out of {','.join(TOOLS)}")
    parser.add_argument(
        "--sections",
        help=f"comma-separated tables to run out of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        help="before each collision run wait (up to 65 s) for TIME_WAIT sockets to expire "
        "(default: on, off with --quick)",
    )
    parser.add_argument(
        "--charts",
        metavar="DIR",
        help="also draw reserve-latency.svg and reserve-collisions.svg into DIR (matplotlib)",
    )
    args = parser.parse_args(argv)
    defaults = (200, 8, 10) if args.quick else (2000, 16, 20)
    tools = list(TOOLS)
    if args.only:
        tools = [name.strip().replace("-", "_") for name in args.only.split(",") if name.strip()]
        unknown = [name for name in tools if name not in TOOLS]
        if unknown:
            parser.error(f"unknown tool(s) {unknown}; choose from {', '.join(TOOLS)}")
        tools = [name for name in TOOLS if name in tools]
    sections = list(SECTIONS)
    if args.sections:
        sections = [name.strip() for name in args.sections.split(",") if name.strip()]
        unknown = [name for name in sections if name not in SECTIONS]
        if unknown or not sections:
            parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
        sections = [name for name in SECTIONS if name in sections]
    cfg = Config(
        iterations=args.iterations if args.iterations is not None else defaults[0],
        processes=args.processes if args.processes is not None else defaults[1],
        ports=args.ports if args.ports is not None else defaults[2],
        tools=tools,
        drain=args.drain if args.drain is not None else not args.quick,
        sections=sections,
        charts=args.charts,
    )
    if min(cfg.iterations, cfg.processes, cfg.ports) < 1:
        parser.error("--iterations, --processes and --ports must be at least 1")
    return cfg


def _available_tools(tools: Sequence[str], lock_dir: str) -> tuple[list[str], list[str]]:
    available: list[str] = []
    notes: list[str] = []
    for tool in tools:
        try:
            _make_picker(tool, lock_dir)
        except ImportError as error:
            notes.append(f"skipping {tool}: import failed ({error})")
            continue
        except AttributeError as error:
            notes.append(f"skipping {tool}: {error}")
            continue
        available.append(tool)
    return available, notes


def main(argv: Sequence[str] | None = None) -> int:
    cfg = _parse_args(argv)
    cfg.footer = charts.machine_footer()
    # portpicker asks a portserver only when this is set; the children inherit the removal.
    os.environ.pop("PORTSERVER_ADDRESS", None)
    _install_call_guard()
    root = str(private_dir("localport-bench-"))
    try:
        lock_dir = _make_lock_dir(root, "latency-")
        cfg.tools, notes = _available_tools(cfg.tools, lock_dir)
        _print_facts(cfg, notes)
        if not cfg.tools:
            print("nothing to benchmark")
            return 1
        if "latency" in cfg.sections:
            run_latency(cfg, lock_dir, _make_lock_dir(root, "latency-warm-"))
        if "busy" in cfg.sections and "localport" in cfg.tools:
            run_busy(_make_lock_dir(root, "busy-"))
        if "collisions" in cfg.sections:
            run_collisions(cfg, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
