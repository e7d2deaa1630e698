"""Benchmark ``localport.who_holds()`` against lsof, ss, fuser and psutil (Linux).

The question each method answers: which PID listens on this TCP port? Run it from the
repository root with the project's virtualenv::

    .venv/bin/python benchmarks/bench_holders.py              # full run, a few minutes
    .venv/bin/python benchmarks/bench_holders.py --quick      # smoke run, under a minute
    .venv/bin/python benchmarks/bench_holders.py --runs 50    # 50 runs of every method
    .venv/bin/python benchmarks/bench_holders.py --profile    # + cProfile of who_holds()
    .venv/bin/python benchmarks/bench_holders.py --charts docs/images   # + the docs' chart

Options: ``--runs N`` (runs of every method; default 30 for the subprocess tools and 200 for
the in-process methods, 10 and 50 with ``--quick``), ``--crowd-sockets N`` (sockets the crowd
helper holds; default 16000, 2000 with ``--quick``), ``--quick`` and ``--profile`` (after
each table, the 15 costliest functions of 50 ``who_holds()`` calls, by cumulative time),
``--charts DIR`` (also draw ``who-holds.svg``, the median time of every method in the quiet and
crowd scenarios, into DIR with ``charts.py``; needs matplotlib, from the ``bench`` extra).
Run it as root to see what root sees; as another user, lsof, ss and psutil only see that
user's processes, as does ``who_holds()``. Only 127.0.0.1 is ever bound or connected to.

The machine facts come first (from ``_common.py``: Python, kernel, CPU count, the ephemeral
port range, load average, TCP sockets on the machine counted from ``/proc/net/tcp`` and
``/proc/net/tcp6``, TIME_WAIT among them; then processes, tool versions, runs), then one table
per scenario:

1. quiet: a target process (this script run with ``--child target``: a separate Python
   process) listens on a free 127.0.0.1 port, the port it reports first on stdout as JSON,
   and holds 200 more sockets of its own: 100 listeners on other free 127.0.0.1 ports and 50
   connected pairs (client and accepted end, both its own) to the first of them.
2. crowd: the same target, plus a helper process started after it (``--child crowd``) that
   holds ~16,000 more loopback sockets: one listener and 8,000 connections to it, both ends
   held by the helper. The helper raises its ``RLIMIT_NOFILE`` soft limit to the hard limit
   and holds fewer pairs, with a printed note, when the limit (or the machine) allows fewer.

3. pressure (only with ``--pressure``; about a minute): ``--time-wait N`` (default 20,000)
   connections to one 127.0.0.1 port closed by the server first, so that port holds N
   TIME_WAIT entries (the kernel keeps them 60 s; fewer are made when its table or the
   ephemeral range runs short, and the table says how many exist), then, one after another,
   holders (``--child pressure``) with ``--pressure-descriptors N`` descriptors (default
   20,000, or as many as ``RLIMIT_NOFILE`` allows: socket pairs) whose listener, reserved with
   localport, is their oldest, middle or newest descriptor. ``who_holds()`` is timed with the
   reservation's PID as a hint and without one (another lock directory), and on the
   TIME_WAIT port; ``localport who --json`` on that port is run once, its size and time
   printed.

Methods, each timed from the call to the parsed set of PIDs:

- ``who_holds()``: ``localport.who_holds(port)`` in this process; the PIDs of its holders.
- ``lsof``: ``lsof -nP -iTCP:PORT -sTCP:LISTEN -t`` (a subprocess); one PID a line.
- ``ss -ltnp``: ``ss -ltnpH "sport = :PORT"`` (a subprocess); every ``pid=N`` in its output.
- ``fuser``: ``fuser PORT/tcp`` (a subprocess); the PIDs on its stdout.
- ``psutil``: ``psutil.net_connections(kind="tcp")`` in this process, filtered on
  ``laddr.port == PORT`` and status ``LISTEN``; the connections' PIDs.

Every method is called once before its timed runs (``who_holds()`` is warm: its imports and
caches are done), then N times in a row. A tool whose binary (or psutil) is missing is
skipped with a note. Columns:

- method: as above.
- median ms: the median wall time of one run, in milliseconds.
- p95 ms: the 95th percentile (nearest rank) of the same runs.
- right PID: runs whose answer contained the target's PID, out of all runs.
- who_holds speed-up: this method's median divided by ``who_holds()``'s median in the same
  scenario (``2.0x``: who_holds is twice as fast as this method).

After the tables, the goal lines, each PASS or FAIL with its numbers: ``who_holds()`` median
under 2.5 ms in quiet and under 5 ms in crowd; the right PID in every run of both; and at least
5 times faster than ``ss -ltnp`` in each scenario. Every process the script starts is ended by
PID at the end (stdin closed, SIGTERM, wait, SIGKILL if needed), also on Ctrl-C or an error;
the children also exit when their stdin reaches end of file, that is when this script dies.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import math
import os
import pstats
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import charts
from _common import (
    LOOPBACK,
    Child,
    child_report,
    child_wait_for_parent,
    command_version,
    describe_tcp_sockets,
    exit_on_sigterm,
    machine_facts,
    median,
    package_version,
    percentile,
    print_facts,
    raise_nofile_limit,
    run_main,
    run_tool,
    table,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
TARGET_LISTENERS = 100
TARGET_PAIRS = 50
CROWD_SOCKETS = 16_000
QUICK_CROWD_SOCKETS = 2_000
RUNS_SUBPROCESS = 30
RUNS_IN_PROCESS = 200
QUICK_RUNS_SUBPROCESS = 10
QUICK_RUNS_IN_PROCESS = 50
PROFILE_CALLS = 50
SPARE_DESCRIPTORS = 64  # stdin/stdout/stderr, Python's own files, some slack
GOAL_QUIET_MS = 2.5
GOAL_CROWD_MS = 5.0
GOAL_SPEEDUP_OVER_SS = 5.0
_PID_IN_SS = re.compile(r"pid=(\d+)")
_NUMBER = re.compile(r"\d+")


# -- the child processes ---------------------------------------------------------------------


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, 0))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _connect_pairs(server: socket.socket, count: int, into: list[socket.socket]) -> str:
    """Open *count* connections to *server*, keeping both ends in *into*; a note if fewer."""
    address = server.getsockname()
    server.settimeout(10.0)
    for made in range(count):
        client: socket.socket | None = None
        try:
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.connect(address)
            accepted, _ = server.accept()
        except OSError as error:
            if client is not None:
                client.close()
            return f"stopped after {made} of {count} connections: {error}"
        into.extend((client, accepted))
    return ""


def serve_target(listeners: int, pairs: int) -> None:
    """The target: one listener (reported first), *listeners* more and *pairs* connections."""
    sockets: list[socket.socket] = []
    try:
        main = _listener()
        sockets.append(main)
        extra = [_listener() for _ in range(listeners)]
        sockets.extend(extra)
        note = ""
        if pairs:
            server = extra[0] if extra else _listener()
            if not extra:
                sockets.append(server)
            note = _connect_pairs(server, pairs, sockets)
        child_report(
            {
                "port": main.getsockname()[1],
                "pid": os.getpid(),
                "sockets": len(sockets),
                "note": note,
            }
        )
        child_wait_for_parent()
    finally:
        for sock in sockets:
            sock.close()


def serve_crowd(wanted_sockets: int) -> None:
    """The crowd: one listener and connections to it, both ends held here."""
    soft, hard = raise_nofile_limit()
    wanted_pairs = max(0, wanted_sockets // 2)
    pairs = wanted_pairs
    notes = []
    if soft != resource.RLIM_INFINITY and 2 * pairs + 1 + SPARE_DESCRIPTORS > soft:
        pairs = max(0, (soft - 1 - SPARE_DESCRIPTORS) // 2)
        notes.append(
            f"RLIMIT_NOFILE is {soft} (hard {hard}): {pairs} connections instead of {wanted_pairs}"
        )
    sockets: list[socket.socket] = []
    try:
        server = _listener()
        sockets.append(server)
        note = _connect_pairs(server, pairs, sockets)
        if note:
            notes.append(note)
        child_report(
            {
                "port": server.getsockname()[1],
                "pid": os.getpid(),
                "sockets": len(sockets),
                "note": "; ".join(notes),
                "nofile": [soft, hard],
            }
        )
        child_wait_for_parent()
    finally:
        for sock in sockets:
            sock.close()


@dataclass(frozen=True)
class ChildReport:
    port: int
    pid: int
    sockets: int
    note: str


def start_child(name: str, arguments: Sequence[str]) -> tuple[Child, ChildReport]:
    """Start this script with ``--child *arguments*`` and read what it holds."""
    child = Child(name, [sys.executable, os.path.abspath(__file__), "--child", *arguments])
    try:
        data = child.read_report()
    except BaseException:
        child.stop()
        raise
    report = ChildReport(
        port=int(data["port"]),
        pid=int(data["pid"]),
        sockets=int(data["sockets"]),
        note=str(data.get("note") or ""),
    )
    return child, report


def serve_pressure(descriptors: int, position: str, lock_dir: str) -> None:
    """A holder of *descriptors* descriptors (socket pairs) whose listener, reserved through
    localport in *lock_dir*, is its oldest, middle or newest descriptor (*position*)."""
    import localport

    soft, _ = raise_nofile_limit()
    pairs = max(0, min(descriptors, soft - SPARE_DESCRIPTORS) // 2)
    before = {"first": 0, "middle": pairs // 2, "last": pairs}[position]
    held: list[socket.socket] = []
    try:
        for _ in range(before):
            held.extend(socket.socketpair())
        reservation = localport.reserve(lock_dir=lock_dir)
        server = reservation.listen()
        held.append(server)
        for _ in range(pairs - before):
            held.extend(socket.socketpair())
        child_report(
            {
                "port": reservation.port,
                "pid": os.getpid(),
                "sockets": len(held),
                "note": "" if 2 * pairs >= descriptors else f"RLIMIT_NOFILE is {soft}",
            }
        )
        child_wait_for_parent()
    finally:
        for sock in held:
            sock.close()


def make_time_wait(count: int) -> tuple[int, int]:
    """A 127.0.0.1 port with up to *count* TIME_WAIT entries: (port, connections made)."""
    server = _listener()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    address = server.getsockname()
    made = 0
    try:
        for _ in range(count):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                client.connect(address)
                accepted, _ = server.accept()
            except OSError:
                client.close()
                break  # the ephemeral range or the TIME_WAIT table ran short
            accepted.close()  # the server's end first: TIME_WAIT on the server's port
            client.close()
            made += 1
    finally:
        server.close()
    return address[1], made


def _timed(call: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Median and p95 of *runs* calls, in ms, and the last answer (after one warm-up call)."""
    call()
    times = []
    answer: object = None
    for _ in range(runs):
        start = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - start)
    return median(times) * 1000, percentile(times, 0.95) * 1000, answer


def run_pressure(runs: int, time_waits: int, descriptors: int) -> None:
    import tempfile

    import localport

    print("## Scenario 3: pressure\n")
    tw_port, made = make_time_wait(time_waits)
    print(
        f"{made} of {time_waits} connections to 127.0.0.1:{tw_port} closed server-first; "
        f"TCP sockets on the machine now: {describe_tcp_sockets()}.\n"
    )
    rows = []
    median_ms, p95_ms, answer = _timed(lambda: localport.who_holds(tw_port), runs)
    assert isinstance(answer, list)
    rows.append(["TIME_WAIT port", "-", _ms(median_ms), _ms(p95_ms), f"{len(answer)} holders"])
    start = time.perf_counter()
    shown = run_tool([sys.executable, "-m", "localport", "who", "--json", str(tw_port)])
    took = (time.perf_counter() - start) * 1000
    rows.append(
        ["who --json, TIME_WAIT port", "-", _ms(took), "-", f"{len(shown.stdout)} bytes (1 run)"]
    )
    with tempfile.TemporaryDirectory() as locks, tempfile.TemporaryDirectory() as elsewhere:
        for position in ("first", "middle", "last"):
            child, report = start_child("pressure", ["pressure", str(descriptors), position, locks])
            try:
                for hint, lock_dir in (("hint", locks), ("no hint", elsewhere)):
                    median_ms, p95_ms, answer = _timed(
                        functools.partial(localport.who_holds, report.port, lock_dir=lock_dir),
                        runs,
                    )
                    assert isinstance(answer, list)
                    right = any(h.pid == report.pid for h in answer)
                    rows.append(
                        [
                            f"listener {position} of {report.sockets}",
                            hint,
                            _ms(median_ms),
                            _ms(p95_ms),
                            "right PID" if right else "WRONG PID",
                        ]
                    )
            finally:
                child.stop()
    print(table(["case", "hint", "median ms", "p95 ms", "answer"], rows))
    print()


# -- the methods ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    name: str
    in_process: bool
    find: Callable[[int], set[int]] | None  # port -> PIDs; None when the method is missing
    note: str = ""


def _who_holds_method() -> Method:
    import localport

    def find(port: int) -> set[int]:
        return {h.pid for h in localport.who_holds(port) if h.pid is not None}

    return Method("who_holds()", in_process=True, find=find)


def _tool_method(
    name: str,
    tool: str,
    arguments: Callable[[int], list[str]],
    pids: Callable[[str], list[str]],
) -> Method:
    """A subprocess method: run *tool* with *arguments(port)*; *pids* finds PIDs in stdout."""
    binary = shutil.which(tool)
    if binary is None:
        return Method(name, in_process=False, find=None, note=f"{tool} not found on PATH")

    def find(port: int) -> set[int]:
        result = run_tool([binary, *arguments(port)])
        return {int(n) for n in pids(result.stdout)}

    return Method(name, in_process=False, find=find)


def _lsof_method() -> Method:
    return _tool_method(
        "lsof", "lsof", lambda port: ["-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-t"], _NUMBER.findall
    )


def _ss_method() -> Method:
    return _tool_method(
        "ss -ltnp", "ss", lambda port: ["-ltnpH", f"sport = :{port}"], _PID_IN_SS.findall
    )


def _fuser_method() -> Method:
    # fuser writes "PORT/tcp:" to stderr and only the PIDs to stdout.
    return _tool_method("fuser", "fuser", lambda port: [f"{port}/tcp"], _NUMBER.findall)


def _psutil_method() -> Method:
    try:
        import psutil
    except ImportError as error:
        return Method("psutil", in_process=True, find=None, note=f"psutil: {error}")

    def find(port: int) -> set[int]:
        return {
            c.pid
            for c in psutil.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
        }

    return Method("psutil", in_process=True, find=find)


def methods() -> list[Method]:
    return [_who_holds_method(), _lsof_method(), _ss_method(), _fuser_method(), _psutil_method()]


# -- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    method: Method
    times: tuple[float, ...]  # seconds
    right: int
    error: str = ""

    @property
    def runs(self) -> int:
        return len(self.times)

    @property
    def median_ms(self) -> float:
        return median(self.times) * 1000

    @property
    def p95_ms(self) -> float:
        return percentile(self.times, 0.95) * 1000


def measure(method: Method, port: int, pid: int, runs: int) -> Result:
    find = method.find
    if find is None:
        return Result(method, (), 0)
    times: list[float] = []
    right = 0
    error = ""
    try:
        find(port)  # warm-up, not counted
    except (OSError, subprocess.SubprocessError) as failure:
        error = f"{type(failure).__name__}: {failure}"
    clock = time.perf_counter
    for _ in range(runs):
        start = clock()
        try:
            found = find(port)
        except (OSError, subprocess.SubprocessError) as failure:
            found = set()
            error = error or f"{type(failure).__name__}: {failure}"
        times.append(clock() - start)
        right += pid in found
    return Result(method, tuple(times), right, error)


def profile_who_holds(port: int, calls: int = PROFILE_CALLS) -> None:
    import localport

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        localport.who_holds(port)
    profiler.disable()
    print(f"\ncProfile of {calls} who_holds({port}) calls, by cumulative time:\n")
    print("```")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats(pstats.SortKey.CUMULATIVE).print_stats(15)
    print("```")


# -- reporting --------------------------------------------------------------------------------


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _speedup(ratio: float) -> str:
    return "-" if math.isnan(ratio) else f"{ratio:.1f}x"


def print_table(results: Sequence[Result]) -> None:
    reference = results[0].median_ms  # who_holds() comes first
    rows = []
    notes = []
    for result in results:
        name = result.method.name
        if result.method.find is None:
            rows.append([name, "-", "-", "-", "skipped"])
            notes.append(f"{name}: skipped, {result.method.note}")
            continue
        ratio = result.median_ms / reference if reference > 0 else math.nan
        rows.append(
            [
                name,
                _ms(result.median_ms),
                _ms(result.p95_ms),
                f"{result.right}/{result.runs}",
                _speedup(ratio),
            ]
        )
        if result.error:
            notes.append(f"{name}: {result.error}")
    headers = ["method", "median ms", "p95 ms", "right PID", "who_holds speed-up"]
    print(table(headers, rows))
    for note in notes:
        print(f"\nNote: {note}")


def print_machine_facts(runs: str) -> None:
    import localport

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    facts = [
        *machine_facts(),
        ("processes", f"{processes}; running as uid {os.getuid()}"),
        ("RLIMIT_NOFILE here", f"soft {soft}, hard {hard}"),
        ("localport", f"{localport.__version__}, psutil {package_version('psutil')}"),
        ("ss", command_version(["ss", "-V"])),
        ("lsof", command_version(["lsof", "-v"])),
        ("fuser", command_version(["fuser", "-V"])),
        ("runs", runs),
    ]
    print_facts("who_holds() benchmark", facts)


def run_scenario(
    title: str,
    description: str,
    target: ChildReport,
    runs_subprocess: int,
    runs_in_process: int,
    *,
    profile: bool,
) -> list[Result]:
    print(f"## {title}\n")
    print(description)
    print(
        f"Target: PID {target.pid}, port {target.port}; TCP sockets on the machine now: "
        f"{describe_tcp_sockets()}.\n"
    )
    results = []
    for method in methods():
        runs = runs_in_process if method.in_process else runs_subprocess
        results.append(measure(method, target.port, target.pid, runs))
    print_table(results)
    if profile:
        profile_who_holds(target.port)
    print()
    return results


def _find(results: Sequence[Result], name: str) -> Result:
    return next(r for r in results if r.method.name == name)


def print_goals(quiet: Sequence[Result], crowd: Sequence[Result]) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print("## Goals\n")
    for label, results, limit in (("quiet", quiet, GOAL_QUIET_MS), ("crowd", crowd, GOAL_CROWD_MS)):
        median = results[0].median_ms
        print(
            f"- who_holds() median < {limit} ms ({label}): {verdict(median < limit)} "
            f"({_ms(median)} ms, p95 {_ms(results[0].p95_ms)} ms)"
        )
    every = all(r[0].right == r[0].runs for r in (quiet, crowd))
    print(
        f"- who_holds() right PID every time: {verdict(every)} "
        f"(quiet {quiet[0].right}/{quiet[0].runs}, crowd {crowd[0].right}/{crowd[0].runs})"
    )
    for label, results in (("quiet", quiet), ("crowd", crowd)):
        ss = _find(results, "ss -ltnp")
        prefix = f"- who_holds() >= {GOAL_SPEEDUP_OVER_SS:g}x faster than ss -ltnp ({label}):"
        if ss.method.find is None:
            print(f"{prefix} SKIP ({ss.method.note})")
            continue
        ratio = ss.median_ms / results[0].median_ms
        print(
            f"{prefix} {verdict(ratio >= GOAL_SPEEDUP_OVER_SS)} ({ratio:.1f}x: "
            f"{_ms(results[0].median_ms)} ms vs {_ms(ss.median_ms)} ms)"
        )


def draw_chart(
    directory: str,
    quiet: Sequence[Result],
    crowd: Sequence[Result],
    *,
    crowd_sockets: int,
    footer: str,
) -> None:
    """who-holds.svg: every method's median in the quiet and crowd scenarios, log scale."""
    names = [r.method.name for r in quiet]
    medians = {
        label: {r.method.name: r.median_ms for r in results if r.method.find is not None}
        for label, results in (("quiet", quiet), ("crowd", crowd))
    }
    path = charts.bar_chart(
        os.path.join(directory, "who-holds.svg"),
        title="Time to find who listens on a port (median, lower is better)",
        rows=[_CHART_NAMES.get(name, name) for name in names],
        series=[
            charts.Series("quiet machine", [medians["quiet"].get(name) for name in names]),
            charts.Series(
                f"beside a process with {crowd_sockets:,} sockets",
                [medians["crowd"].get(name) for name in names],
            ),
        ],
        unit="milliseconds, log scale",
        footer=footer,
        log=True,
        value_format=lambda ms: f"{_ms(ms)} ms",
    )
    print(f"- chart: {path}")


#: How the chart names the methods.
_CHART_NAMES = {
    "who_holds()": "localport who_holds()",
    "ss -ltnp": "ss -ltnp",
    "lsof": "lsof",
    "fuser": "fuser",
    "psutil": "psutil",
}


# -- main ---------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time who_holds() against lsof, ss, fuser and psutil (Linux)."
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs, a crowd of 2,000")
    parser.add_argument("--runs", type=int, metavar="N", help="runs of every method")
    parser.add_argument(
        "--crowd-sockets", type=int, metavar="N", help="sockets the crowd helper holds"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile who_holds() too")
    parser.add_argument(
        "--pressure", action="store_true", help="also scenario 3: TIME_WAIT and a huge holder"
    )
    parser.add_argument(
        "--time-wait", type=int, default=20_000, metavar="N", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--pressure-descriptors", type=int, default=20_000, metavar="N", help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--charts", metavar="DIR", help="also draw who-holds.svg into DIR (matplotlib)"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.runs is not None and arguments.runs < 1:
        parser.error("--runs must be at least 1")
    if arguments.crowd_sockets is not None and arguments.crowd_sockets < 0:
        parser.error("--crowd-sockets must not be negative")
    return arguments


def child_main(arguments: Sequence[str]) -> int:
    exit_on_sigterm()
    kind, *numbers = arguments
    if kind == "target":
        serve_target(int(numbers[0]), int(numbers[1]))
    elif kind == "crowd":
        serve_crowd(int(numbers[0]))
    elif kind == "pressure":
        serve_pressure(int(numbers[0]), numbers[1], numbers[2])
    else:
        print(f"unknown child {kind!r}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    if arguments.child:
        return child_main(arguments.child)
    if not sys.platform.startswith("linux"):
        print("This benchmark needs Linux (/proc, ss, sock_diag).", file=sys.stderr)
        return 2
    exit_on_sigterm()
    footer = charts.machine_footer()
    quick: bool = arguments.quick
    runs_subprocess = arguments.runs or (QUICK_RUNS_SUBPROCESS if quick else RUNS_SUBPROCESS)
    runs_in_process = arguments.runs or (QUICK_RUNS_IN_PROCESS if quick else RUNS_IN_PROCESS)
    crowd_sockets: int = (
        arguments.crowd_sockets
        if arguments.crowd_sockets is not None
        else (QUICK_CROWD_SOCKETS if quick else CROWD_SOCKETS)
    )
    print_machine_facts(
        f"{runs_subprocess} per subprocess tool, {runs_in_process} per in-process "
        f"method{' (--quick)' if quick else ''}"
    )
    children: list[Child] = []
    try:
        target_child, target = start_child(
            "target", ["target", str(TARGET_LISTENERS), str(TARGET_PAIRS)]
        )
        children.append(target_child)
        if target.pid != target_child.pid:
            print(f"Note: the target reports PID {target.pid}, Popen says {target_child.pid}")
        note = f" Note: {target.note}." if target.note else ""
        quiet = run_scenario(
            "Scenario 1: quiet",
            f"A target process holding {target.sockets} sockets on 127.0.0.1: its listener "
            f"and {TARGET_LISTENERS} more listeners, {TARGET_PAIRS} connected pairs.{note}",
            target,
            runs_subprocess,
            runs_in_process,
            profile=arguments.profile,
        )

        crowd_child, crowd_report = start_child("crowd", ["crowd", str(crowd_sockets)])
        children.append(crowd_child)
        note = f" Note: {crowd_report.note}." if crowd_report.note else ""
        crowd = run_scenario(
            "Scenario 2: crowd",
            f"The same target, plus a helper process (PID {crowd_report.pid}, started after "
            f"the target) holding {crowd_report.sockets} loopback sockets of {crowd_sockets} "
            f"asked for: a listener and connections to it, both ends its own.{note}",
            target,
            runs_subprocess,
            runs_in_process,
            profile=arguments.profile,
        )
        print_goals(quiet, crowd)
        if arguments.charts is not None:
            draw_chart(
                arguments.charts,
                quiet,
                crowd,
                crowd_sockets=crowd_report.sockets,
                footer=footer + f" \N{MIDDLE DOT} {runs_in_process} runs in process, "
                f"{runs_subprocess} of each command",
            )
        if arguments.pressure:
            for child in reversed(children):
                child.stop()
            children.clear()
            run_pressure(runs_in_process, arguments.time_wait, arguments.pressure_descriptors)
    finally:
        for child in reversed(children):
            child.stop()
    return 0


if __name__ == "__main__":
    run_main(main)
