"""How localport's costs grow: with a range's fill level, and with a directory's lock files.

Run it from the repository root with the project's virtualenv (Linux)::

    .venv/bin/python benchmarks/bench_growth.py            # full run, under a minute
    .venv/bin/python benchmarks/bench_growth.py --quick    # smoke run

Options: ``--quick`` (fewer samples; lock-file counts 0, 1,000 and 4,000 instead of 16,000)
and ``--[no-]drain``. Only the public API is used (``localport.reserve``,
``localport.reservations``, the ``localport`` command beside ``sys.executable``); every lock
directory is a fresh 0700 directory under one scratch directory that the script removes at the
end. Only 127.0.0.1 and ::1 are bound. The machine facts come first (from ``_common.py``:
Python, kernel, CPU count, ephemeral port range, load average, TCP sockets; then localport's
version and the parameters), then two tables. Every ratio compares numbers of the same run.

1. Fill level. Two ranges of 1,000 ports: the first blocks of 1,000 from 52000 up (52000-52999,
   53000-53999, ..., 64000-64999), those outside the kernel's ephemeral range first (outgoing
   connections never take their ports, nor leave TIME_WAIT there), whose every port binds on
   127.0.0.1 and ::1 at the start; where no block is wholly free, those with the fewest busy
   ports, with a note. Before the first level, every port of both ranges is reserved and
   released once (``port_range=(p, p)``), so every lock file exists and no timed call pays for
   creating one; a port that does not bind then is skipped, and the fill levels are fractions
   of the ports that were reserved (all 1,000 on a quiet machine). The first, "filled", range
   is filled with reservations that this process holds, made by
   ``localport.reserve(port_range=..., lock_dir=...)`` (so they lie where localport's own
   random walk puts them): 0, 50%, 90% and 99% of it. The second, "empty", range holds
   nothing. Where the free ports of a filled range lie is one random draw, and at 99% it alone
   can double the median from one run to the next; so each level is measured over 5 fresh
   fills (2 with ``--quick``): release everything, fill to the level, then 10 warm-up pairs
   and 60 timed pairs (25 with ``--quick``; 300 and 50 samples a level). A pair is one
   ``reserve(port_range=filled) + release()`` and the same on the empty range, interleaved
   (filled, empty, filled, empty...); at most 60 s a level. Columns: the fill, the
   reservations held, the samples, the median and p90 (nearest rank) in microseconds on the
   filled range, the median on the empty range in the same rounds, the ratio of the two
   medians (the cost of the fill, free of the machine's drift), and the filled median against
   the 0% level's. The number of candidates a call
   walks is not visible through the public API, so it is not reported; the walk starts at a
   random port and skips a reserved port by reading its lock file's record.

2. Lock files. Three fresh lock directories, with 0, 1,000 and 16,000 lock files (4,000 with
   ``--quick``) made by reserving and releasing ports one at a time with ``port_range=(p,
   p)``, over 49152-65535, ports outside the kernel's ephemeral range first; a port that does
   not bind on 127.0.0.1 and ::1 at that moment is skipped (at most 3 minutes a directory). A helper
   process (this script run with ``--child``) then holds 10 live reservations in each
   directory. Timed, round-robin over the three directories: ``localport.reservations(dir)``
   in this process (one warm-up round, then 20 rounds; 5 with ``--quick``) and the whole
   command ``localport list`` with ``LOCALPORT_DIR`` set to the directory (one warm-up round,
   then 7 rounds; 3 with ``--quick``). Columns: lock files in the directory (counted after the
   helper's reservations), live reservations found, median and p90 in ms of each, and each
   median against the directory with no stale lock files. A ``localport list`` run counts as
   right when it exits 0 and names all 10 of the helper's ports.

With ``--drain`` (the default without ``--quick``) the script first waits, at most 65 s, until
fewer than 1,000 TCP sockets are in TIME_WAIT, since ports in TIME_WAIT do not bind. Every
process the script starts is ended by its PID (stdin closed, SIGTERM, SIGKILL if it lingers),
also on Ctrl-C or an error; every command has a 60 s timeout.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from _common import (
    DISTRIBUTION,
    US,
    Child,
    child_report,
    child_wait_for_parent,
    command_env,
    ephemeral_bounds,
    exit_on_sigterm,
    machine_facts,
    median,
    package_version,
    percentile,
    port_is_free,
    print_facts,
    private_dir,
    raise_nofile_limit,
    round_robin,
    run_main,
    table,
    timed_run,
    wait_for_time_wait,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from localport import Reservation

RANGE_SIZE = 1000
BLOCK_BASES = range(52000, 65000, RANGE_SIZE)
FILL_LEVELS = (0.0, 0.5, 0.9, 0.99)
WARMUP_PAIRS = 10
SAMPLES = 300
QUICK_SAMPLES = 50
LAYOUTS = 5
QUICK_LAYOUTS = 2
LEVEL_MAX_S = 60.0
FILL_MAX_S = 120.0

DYNAMIC_LOW, DYNAMIC_HIGH = 49152, 65535
LOCK_FILES = (0, 1000, 16000)
QUICK_LOCK_FILES = (0, 1000, 4000)
CREATE_MAX_S = 180.0
LIVE = 10
LISTING_CALLS = 20
QUICK_LISTING_CALLS = 5
LIST_RUNS = 7
QUICK_LIST_RUNS = 3
ROUNDS_MAX_S = 300.0
COMMAND_TIMEOUT_S = 60.0
DRAIN_LIMIT = 1000
DRAIN_MAX_S = 65.0


@dataclass(frozen=True)
class Config:
    samples: int
    layouts: int
    lock_files: tuple[int, ...]
    listing_calls: int
    list_runs: int
    drain: bool
    quick: bool


# -- ports --------------------------------------------------------------------------------------


def outside_ephemeral_first(ports: Sequence[int], width: int = 1) -> list[int]:
    """*ports* (each the start of *width* ports), those clear of the kernel's range first."""
    bounds = ephemeral_bounds()
    if bounds is None:
        return list(ports)
    low, high = bounds
    return sorted(ports, key=lambda port: port + width - 1 >= low and port <= high)


def pick_ranges(count: int) -> tuple[list[tuple[int, int]], list[str]]:
    """*count* blocks of RANGE_SIZE ports: wholly bindable ones first, else the least busy."""
    busy: dict[int, int] = {}  # in the order of preference
    for base in outside_ephemeral_first(BLOCK_BASES, RANGE_SIZE):
        busy[base] = sum(not port_is_free(p) for p in range(base, base + RANGE_SIZE))
        if sum(1 for n in busy.values() if n == 0) >= count:
            break
    free = [base for base, n in busy.items() if n == 0]
    chosen = (free + sorted(set(busy) - set(free), key=busy.__getitem__))[:count]
    notes = [
        f"{busy[base]} ports of {base}-{base + RANGE_SIZE - 1} did not bind when the ranges "
        "were picked (another program holds them, or TIME_WAIT)"
        for base in chosen
        if busy[base]
    ]
    return [(base, base + RANGE_SIZE - 1) for base in chosen], notes


# -- 1. fill level ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    fill: float
    held: int
    filled: list[float]  # microseconds
    empty: list[float]
    failures: int


def make_lock_files(
    ports: Iterable[int], lock_dir: str, deadline: float, count: int | None = None
) -> int:
    """Reserve and release *ports* one at a time, each leaving its lock file; the count made.

    A port that does not bind is skipped. Stops after *count* (None: all of *ports*) or at
    *deadline* (a ``time.monotonic()`` value).
    """
    import localport

    made = 0
    for port in ports:
        if made == count or time.monotonic() > deadline:
            break
        if not port_is_free(port):
            continue
        try:
            localport.reserve(port_range=(port, port), lock_dir=lock_dir).release()
        except localport.NoFreePortError:
            continue
        made += 1
    return made


def measure_levels(
    filled: tuple[int, int], empty: tuple[int, int], available: int, lock_dir: str, cfg: Config
) -> tuple[list[Level], list[str]]:
    """Fill *filled* to each level (a fraction of its *available* ports), timing at each."""
    import localport

    notes: list[str] = []
    held: list[Reservation] = []
    failures = [0]

    def one(port_range: tuple[int, int]) -> Callable[[], float]:
        def call() -> float:
            start = time.perf_counter_ns()
            try:
                localport.reserve(port_range=port_range, lock_dir=lock_dir).release()
            except localport.NoFreePortError:
                failures[0] += 1
            return (time.perf_counter_ns() - start) / 1000

        return call

    def fill_to(target: int, deadline: float) -> None:
        """Release everything held, then reserve until *target* ports are held afresh."""
        for reservation in held:
            reservation.release()
        held.clear()
        while len(held) < target and time.monotonic() < deadline:
            try:
                held.append(localport.reserve(port_range=filled, lock_dir=lock_dir))
            except localport.NoFreePortError:
                break

    levels: list[Level] = []
    try:
        for fill in FILL_LEVELS:
            target = round(fill * available)
            deadline = time.monotonic() + LEVEL_MAX_S
            failures[0] = 0
            reached: list[int] = []
            fill_seconds: list[float] = []
            samples: dict[str, list[float]] = {"filled": [], "empty": []}
            # Each layout is a fresh fill: where the free ports lie is one random draw, which
            # at 99% alone moves the median by a factor of two from one run to the next.
            for _ in range(cfg.layouts):
                began = time.monotonic()
                fill_to(target, deadline)
                fill_seconds.append(time.monotonic() - began)
                reached.append(len(held))
                gc.collect()
                taken = round_robin(
                    {"filled": one(filled), "empty": one(empty)},
                    max(1, cfg.samples // cfg.layouts),
                    warmup=WARMUP_PAIRS,
                    deadline=deadline,
                )
                for key, values in taken.items():
                    samples[key] += values
            if min(reached) < target:
                notes.append(f"{fill:.0%}: only {min(reached)} of {target} ports could be reserved")
            if target:
                notes.append(
                    f"{fill:.0%}: {len(reached)} fills of {target} reservations took "
                    f"{median(fill_seconds):.2f} s each (median)"
                )
            levels.append(
                Level(fill, min(reached), samples["filled"], samples["empty"], failures[0])
            )
    finally:
        for reservation in held:
            reservation.release()
    return levels, notes


def run_fill(lock_root: Path, cfg: Config) -> None:
    (filled, empty), notes = pick_ranges(2)
    lock_dir = str(private_dir("fill-", lock_root))
    deadline = time.monotonic() + FILL_MAX_S
    available, empty_available = (
        make_lock_files(range(low, high + 1), lock_dir, deadline) for low, high in (filled, empty)
    )
    levels, level_notes = measure_levels(filled, empty, available, lock_dir, cfg)
    base = median(levels[0].filled)
    rows = []
    for level in levels:
        middle = median(level.filled)
        rows.append(
            [
                f"{level.fill:.0%}",
                str(level.held),
                str(len(level.filled)),
                f"{middle:.1f}",
                f"{percentile(level.filled, 0.9):.1f}",
                f"{median(level.empty):.1f}",
                f"{middle / median(level.empty):.2f}x",
                f"{middle / base:.2f}x",
            ]
        )
    headers = [
        "fill",
        "held",
        "samples",
        f"median {US}",
        f"p90 {US}",
        f"empty range median {US}",
        "filled / empty",
        "vs 0%",
    ]
    print(
        f"## 1. reserve() + release() against the fill level of {filled[0]}-{filled[1]} "
        f"(empty range: {empty[0]}-{empty[1]})\n"
    )
    print(table(headers, rows))
    print()
    print(
        f"- reserved and released once before the first level (so their lock files exist): "
        f"{available} ports of the filled range and {empty_available} of the empty one, of "
        f"{RANGE_SIZE} each; a port that did not bind then was skipped. A fill level is a "
        f"fraction of the filled range's {available}."
    )
    for note in notes + level_notes:
        print(f"- {note}")
    for level in levels:
        if level.failures:
            print(f"- {level.fill:.0%}: {level.failures} calls raised NoFreePortError")
    print()


# -- 2. lock files ------------------------------------------------------------------------------


def hold(lock_dirs: Sequence[str]) -> None:
    """The helper: LIVE reservations in each lock directory, until stdin closes."""
    import localport

    held: list[Reservation] = []
    try:
        ports: dict[str, list[int]] = {}
        for lock_dir in lock_dirs:
            for _ in range(LIVE):
                held.append(localport.reserve(lock_dir=lock_dir))
                ports.setdefault(lock_dir, []).append(held[-1].port)
        child_report({"pid": os.getpid(), "ports": ports})
        child_wait_for_parent()
    finally:
        for reservation in held:
            reservation.release()


def lock_file_count(lock_dir: str) -> int:
    """Files in the directory other than sticky-name records (``name-*.json``)."""
    return sum(1 for entry in os.scandir(lock_dir) if not entry.name.startswith("name-"))


def run_lock_files(lock_root: Path, cfg: Config, localport_command: Path) -> None:
    import localport

    dirs = {count: str(private_dir(f"files-{count}-", lock_root)) for count in cfg.lock_files}
    dynamic = outside_ephemeral_first(range(DYNAMIC_LOW, DYNAMIC_HIGH + 1))
    for count, lock_dir in dirs.items():
        make_lock_files(dynamic, lock_dir, time.monotonic() + CREATE_MAX_S, count)
    helper = Child(
        "helper",
        [sys.executable, os.path.abspath(__file__), "--child", *dirs.values()],
    )
    try:
        report = helper.read_report()
        helper_ports: dict[str, list[int]] = report["ports"]
        files = {count: lock_file_count(lock_dir) for count, lock_dir in dirs.items()}
        live: dict[int, set[int]] = {count: set() for count in dirs}

        def listing(count: int) -> Callable[[], float]:
            def call() -> float:
                start = time.perf_counter()
                found = localport.reservations(dirs[count])
                seconds = time.perf_counter() - start
                live[count].add(len(found))
                return seconds * 1000

            return call

        right = dict.fromkeys(dirs, 0)
        env = command_env()

        def list_command(count: int) -> Callable[[], float]:
            def call() -> float:
                done = timed_run(
                    [str(localport_command), "list"],
                    env={**env, "LOCALPORT_DIR": dirs[count]},
                    timeout=COMMAND_TIMEOUT_S,
                )
                shown = set(map(int, re.findall(r"^\s*(\d+)\s", done.stdout, re.MULTILINE)))
                right[count] += done.returncode == 0 and set(helper_ports[dirs[count]]) <= shown
                return done.seconds * 1000

            return call

        deadline = time.monotonic() + ROUNDS_MAX_S
        gc.collect()
        calls = round_robin(
            {count: listing(count) for count in dirs}, cfg.listing_calls, deadline=deadline
        )
        runs = round_robin(
            {count: list_command(count) for count in dirs}, cfg.list_runs, deadline=deadline
        )
    finally:
        helper.stop()
    first = min(dirs)
    rows = []
    for count in dirs:
        rows.append(
            [
                str(files[count]),
                "/".join(str(n) for n in sorted(live[count])),
                f"{median(calls[count]):.2f}",
                f"{percentile(calls[count], 0.9):.2f}",
                f"{median(calls[count]) / median(calls[first]):.2f}x",
                f"{median(runs[count]):.1f}",
                f"{percentile(runs[count], 0.9):.1f}",
                f"{median(runs[count]) / median(runs[first]):.2f}x",
                f"{right[count]}/{len(runs[count]) + 1}",
            ]
        )
    headers = [
        "lock files",
        "live found",
        "reservations() median ms",
        "p90 ms",
        "vs fewest",
        "`localport list` median ms",
        "p90 ms",
        "vs fewest",
        "list right",
    ]
    calls_made = len(calls[first])
    print(
        f"## 2. Listing against the lock files in a directory ({LIVE} live reservations held "
        f"by PID {helper.pid} in each; {calls_made} reservations() rounds, "
        f"{len(runs[first])} `localport list` rounds, round-robin)\n"
    )
    print(table(headers, rows))
    print()
    print(
        f'- "lock files" counts the directory\'s files after the helper reserved; asked for '
        f"{', '.join(str(n) for n in cfg.lock_files)} stale ones plus the helper's {LIVE}, "
        'which may reuse a stale port\'s file. "live found" is every count reservations() '
        'returned; "list right" counts the warm-up round too.'
    )
    print()


# -- main ---------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> tuple[Config, list[str] | None]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer samples and files")
    parser.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        help=f"first wait (up to {DRAIN_MAX_S:.0f} s) until fewer than {DRAIN_LIMIT} TCP sockets "
        "are in TIME_WAIT (default: on, off with --quick)",
    )
    parser.add_argument("--child", nargs="+", metavar="LOCK_DIR", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    quick: bool = arguments.quick
    cfg = Config(
        samples=QUICK_SAMPLES if quick else SAMPLES,
        layouts=QUICK_LAYOUTS if quick else LAYOUTS,
        lock_files=QUICK_LOCK_FILES if quick else LOCK_FILES,
        listing_calls=QUICK_LISTING_CALLS if quick else LISTING_CALLS,
        list_runs=QUICK_LIST_RUNS if quick else LIST_RUNS,
        drain=arguments.drain if arguments.drain is not None else not quick,
        quick=quick,
    )
    return cfg, arguments.child


def main(argv: Sequence[str] | None = None) -> int:
    cfg, child = parse_arguments(argv)
    exit_on_sigterm()
    if child:
        hold(child)
        return 0
    if not sys.platform.startswith("linux"):
        print("This benchmark needs Linux.", file=sys.stderr)
        return 2
    localport_command = Path(sys.executable).parent / "localport"
    if not localport_command.exists():
        print(f"no localport console script beside {sys.executable}", file=sys.stderr)
        return 2
    # 990 held reservations are a lock file and a guard socket each.
    soft, hard = raise_nofile_limit()
    drained = wait_for_time_wait(DRAIN_LIMIT, DRAIN_MAX_S) if cfg.drain else 0.0
    facts = [
        *machine_facts(),
        ("localport", package_version(DISTRIBUTION)),
        ("RLIMIT_NOFILE (raised)", f"soft {soft}, hard {hard}"),
        (
            "parameters",
            f"samples={cfg.samples} in {cfg.layouts} fills, "
            f"lock files={'/'.join(map(str, cfg.lock_files))}, "
            f"reservations() rounds={cfg.listing_calls}, list rounds={cfg.list_runs}"
            f"{' (--quick)' if cfg.quick else ''}",
        ),
    ]
    if cfg.drain:
        facts.append(("waited for TIME_WAIT to drain", f"{drained:.0f} s"))
    print_facts("localport growth benchmark", facts)
    lock_root = private_dir("localport-bench-growth-")
    try:
        run_fill(lock_root, cfg)
        run_lock_files(lock_root, cfg, localport_command)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(lock_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
