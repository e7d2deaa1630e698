"""Time whole commands as a person types them: localport's, the interpreter's and lsof/ss/fuser.

Run it from the repository root with the project's virtualenv (Linux)::

    .venv/bin/python benchmarks/bench_commands.py              # 30 rounds, under a minute
    .venv/bin/python benchmarks/bench_commands.py --quick      # 8 rounds, a smoke run
    .venv/bin/python benchmarks/bench_commands.py --runs 50

Options: ``--runs N`` (timed rounds, default 30; 8 with ``--quick``), ``--quick`` (also 3
``-X importtime`` runs instead of 5, and no TIME_WAIT wait) and ``--[no-]drain``.

Every time is the wall time of one whole process, from ``subprocess.run`` to its exit, with
its output captured: what a person waits for at a prompt. The interpreter is this script's
own (``sys.executable``, "python" below) and ``localport`` is the console script beside it
(``Path(sys.executable).parent / "localport"``). Every command runs with ``LOCALPORT_DIR`` set
to a temporary directory of mode 0700 that the script creates and removes, and without
``LOCALPORT_RANGE`` or ``PYTHONDONTWRITEBYTECODE``: the warm-up round writes the bytecode an
installed package would have had from pip, so no timed run compiles localport's modules.

Before timing, the script starts a helper (this script run with ``--child``, a separate
Python process) that listens on 127.0.0.1, on a port the kernel picks (PORT below), and holds
one localport reservation in that ``LOCALPORT_DIR``, so that ``localport list`` has a row to
show. With ``--drain`` (the default without ``--quick``) it first waits, at most 65 s, until
fewer than 1,000 TCP sockets are in TIME_WAIT: lsof and ss read every socket on the machine,
and an earlier benchmark's TIME_WAIT would slow them down. The TIME_WAIT count at the start and
end is printed.

The machine facts come first (from ``_common.py``: Python, kernel, CPU count, ephemeral port
range, load average, TCP sockets; then the versions of localport, lsof, ss and fuser), then:

1. Whole commands. The contenders run round-robin (A, B, C, ..., A, B, C, ...) so that the
   machine's noise falls on all of them alike: one warm-up round (not counted: it also
   writes bytecode), then N rounds. The contenders: ``python -c pass`` (the floor: starting
   the interpreter), ``python -c "import localport"``, ``localport who PORT``, ``localport
   reserve``, ``localport list``, ``lsof -i :PORT``, ``ss -ltnp 'sport = :PORT'`` and
   ``fuser PORT/tcp``; a tool missing from PATH is skipped with a note. Columns: median and p90
   (nearest rank) in ms, the median divided by the floor's median, the median minus the
   floor's median (what the command costs beyond starting Python), and the runs whose answer
   was right: exit code 0, and for ``who``, lsof, ss and fuser the helper's PID in the output,
   for ``reserve`` a port number, for ``list`` the helper's reserved port.

2. Imports of ``localport who PORT``. ``python -X importtime -m localport who PORT``, one
   warm-up and then 5 runs (3 with ``--quick``): the 8 modules with the largest median
   cumulative import time, with the module that imported each (``-`` for the command itself),
   and the median of all imports together (the top-level modules' cumulative times summed)
   against the median wall time of those runs (``-X importtime`` itself adds a little).

Every process the script starts is ended by PID at the end (the helper: stdin closed,
SIGTERM, SIGKILL if it lingers), also on Ctrl-C or an error; every command has a 60 s timeout,
and no new round starts after 10 minutes (2 with ``--quick``). Only 127.0.0.1 is bound.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from _common import (
    DISTRIBUTION,
    LOOPBACK,
    Child,
    child_report,
    child_wait_for_parent,
    command_env,
    command_version,
    count_time_wait,
    exit_on_sigterm,
    machine_facts,
    median,
    package_version,
    percentile,
    print_facts,
    private_dir,
    round_robin,
    run_main,
    table,
    timed_run,
    wait_for_time_wait,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from _common import Run

RUNS = 30
QUICK_RUNS = 8
IMPORTTIME_RUNS = 5
QUICK_IMPORTTIME_RUNS = 3
TOP_IMPORTS = 8
COMMAND_TIMEOUT_S = 60.0
MAX_SECONDS = 600.0
QUICK_MAX_SECONDS = 120.0
DRAIN_LIMIT = 1000
DRAIN_MAX_S = 65.0
FLOOR = "python -c pass"


# -- the helper process -------------------------------------------------------------------------


def serve(lock_dir: str) -> None:
    """The helper: a listener on 127.0.0.1 and one localport reservation, until stdin closes."""
    import localport

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind((LOOPBACK, 0))
        server.listen(16)
        with localport.reserve(lock_dir=lock_dir) as reservation:
            child_report(
                {"port": server.getsockname()[1], "pid": os.getpid(), "reserved": reservation.port}
            )
            child_wait_for_parent()
    finally:
        server.close()


@dataclass(frozen=True)
class Helper:
    port: int
    pid: int
    reserved: int


# -- the contenders -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    label: str
    command: list[str]
    right: Callable[[Run], bool]


def _mentions(number: int, text: str) -> bool:
    return re.search(rf"(?<!\d){number}(?!\d)", text) is not None


def contenders(helper: Helper, localport: str) -> tuple[list[Contender], list[str]]:
    """The commands to time, in round-robin order, and a note for each tool not installed."""
    python = sys.executable
    port, pid = helper.port, helper.pid

    def ok(run: Run) -> bool:
        return run.returncode == 0

    def names_pid(run: Run) -> bool:
        return run.returncode == 0 and _mentions(pid, run.stdout)

    found = [
        Contender(FLOOR, [python, "-c", "pass"], ok),
        Contender('python -c "import localport"', [python, "-c", "import localport"], ok),
        Contender("localport who PORT", [localport, "who", str(port)], names_pid),
        Contender(
            "localport reserve",
            [localport, "reserve"],
            lambda run: run.returncode == 0 and run.stdout.strip().isdigit(),
        ),
        Contender(
            "localport list",
            [localport, "list"],
            lambda run: run.returncode == 0 and _mentions(helper.reserved, run.stdout),
        ),
    ]
    notes = []
    tools = [
        ("lsof -i :PORT", "lsof", ["-i", f":{port}"], names_pid),
        (
            "ss -ltnp 'sport = :PORT'",
            "ss",
            ["-ltnp", f"sport = :{port}"],
            lambda run: run.returncode == 0 and f"pid={pid}," in run.stdout,
        ),
        ("fuser PORT/tcp", "fuser", [f"{port}/tcp"], names_pid),
    ]
    for label, tool, arguments, right in tools:
        binary = shutil.which(tool)
        if binary is None:
            notes.append(f"`{label}` skipped: {tool} is not installed (not on PATH)")
            continue
        found.append(Contender(label, [binary, *arguments], right))
    return found, notes


# -- 1. whole commands --------------------------------------------------------------------------


def time_commands(
    commands: Sequence[Contender], env: dict[str, str], runs: int, deadline: float
) -> None:
    right = {contender.label: 0 for contender in commands}

    def timed(contender: Contender) -> Callable[[], float]:
        def call() -> float:
            done = timed_run(contender.command, env=env, timeout=COMMAND_TIMEOUT_S)
            right[contender.label] += contender.right(done)
            return done.seconds * 1000

        return call

    before = count_time_wait()
    samples = round_robin({c.label: timed(c) for c in commands}, runs, deadline=deadline)
    after = count_time_wait()
    rounds = len(samples[FLOOR])
    floor = median(samples[FLOOR])
    rows = []
    for contender in commands:
        values = samples[contender.label]
        middle = median(values)
        # The warm-up round's answer is checked too: right out of (rounds + 1).
        rows.append(
            [
                contender.label,
                str(len(values)),
                f"{middle:.1f}",
                f"{percentile(values, 0.9):.1f}",
                f"{middle / floor:.2f}x",
                f"{middle - floor:+.1f}",
                f"{right[contender.label]}/{len(values) + 1}",
            ]
        )
    headers = [
        "command",
        "runs",
        "median ms",
        "p90 ms",
        f"median / `{FLOOR}`",
        "median - floor ms",
        "right answer",
    ]
    print(f"## 1. Whole commands ({rounds} interleaved rounds after a warm-up round)\n")
    print(table(headers, rows))
    print(
        f"\n- TIME_WAIT sockets at the start of the rounds: {before}, at the end: {after}; "
        "lsof and ss read every socket on the machine."
    )
    print(
        '- "right answer" counts the warm-up round too: exit code 0 and the expected PID, port '
        "or reservation in the output.\n"
    )


# -- 2. imports ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    name: str
    parent: str
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[Imported]:
    """The lines of ``-X importtime``, each with the module that imported it."""
    lines: list[tuple[str, int, int, int]] = []
    for line in stderr.splitlines():
        fields = line.split("|")
        if not line.startswith("import time:") or len(fields) != 3:
            continue
        self_text = fields[0].removeprefix("import time:").strip()
        cumulative_text = fields[1].strip()
        if not (self_text.isdigit() and cumulative_text.isdigit()):
            continue  # the header line
        raw = fields[2][1:]  # one space separates the column from the indentation
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        lines.append((raw.strip(), depth, int(self_text), int(cumulative_text)))
    # A module's line comes after those of the modules it imported: its importer is the next
    # line one level up.
    parents: list[str] = []
    above: dict[int, str] = {}
    for name, depth, _, _ in reversed(lines):
        parents.append(above.get(depth - 1, "-"))
        above[depth] = name
    parents.reverse()
    return [
        Imported(name, parent, self_us, cumulative_us)
        for (name, _, self_us, cumulative_us), parent in zip(lines, parents, strict=True)
    ]


def import_profile(env: dict[str, str], port: int, runs: int) -> None:
    command = [sys.executable, "-X", "importtime", "-m", "localport", "who", str(port)]
    cumulative: dict[str, list[float]] = {}
    own: dict[str, list[float]] = {}
    parent: dict[str, str] = {}
    totals: list[float] = []
    walls: list[float] = []
    for index in range(runs + 1):
        done = timed_run(command, env=env, timeout=COMMAND_TIMEOUT_S)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-5:])
            print(f"`{' '.join(command)}` exited {done.returncode}:\n{tail}\n")
            return
        if index == 0:
            continue  # warm-up
        imported = parse_importtime(done.stderr)
        for entry in imported:
            cumulative.setdefault(entry.name, []).append(entry.cumulative_us / 1000)
            own.setdefault(entry.name, []).append(entry.self_us / 1000)
            parent.setdefault(entry.name, entry.parent)
        totals.append(sum(e.cumulative_us for e in imported if e.parent == "-") / 1000)
        walls.append(done.seconds * 1000)
    top = sorted(cumulative, key=lambda name: -median(cumulative[name]))[:TOP_IMPORTS]
    rows = [
        [
            f"`{name}`",
            f"`{parent[name]}`" if parent[name] != "-" else "-",
            f"{median(cumulative[name]):.1f}",
            f"{median(own[name]):.1f}",
        ]
        for name in top
    ]
    print(
        f"## 2. Imports of `localport who PORT` (`python -X importtime -m localport who PORT`, "
        f"median of {runs} runs after a warm-up)\n"
    )
    print(table(["module", "imported by", "cumulative ms", "self ms"], rows, "llrr"))
    print(
        f"\n- all imports together: {median(totals):.1f} ms of a whole run of "
        f"{median(walls):.1f} ms (medians; the runs include `-X importtime`'s own cost).\n"
    )


# -- main ---------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, metavar="N", help=f"timed rounds ({RUNS})")
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run: {QUICK_RUNS} rounds, no TIME_WAIT wait"
    )
    parser.add_argument(
        "--drain",
        action=argparse.BooleanOptionalAction,
        help=f"first wait (up to {DRAIN_MAX_S:.0f} s) until fewer than {DRAIN_LIMIT} TCP sockets "
        "are in TIME_WAIT (default: on, off with --quick)",
    )
    parser.add_argument("--child", metavar="LOCK_DIR", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.runs is not None and arguments.runs < 1:
        parser.error("--runs must be at least 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    exit_on_sigterm()
    if arguments.child:
        serve(arguments.child)
        return 0
    if not sys.platform.startswith("linux"):
        print("This benchmark needs Linux (lsof, ss, fuser, /proc).", file=sys.stderr)
        return 2
    quick: bool = arguments.quick
    runs: int = arguments.runs or (QUICK_RUNS if quick else RUNS)
    drain: bool = arguments.drain if arguments.drain is not None else not quick
    localport = Path(sys.executable).parent / "localport"
    if not localport.exists():
        print(f"no localport console script beside {sys.executable}", file=sys.stderr)
        return 2
    lock_dir = private_dir("localport-bench-commands-")
    env = command_env()
    env["LOCALPORT_DIR"] = str(lock_dir)
    helper_process: Child | None = None
    try:
        drained = wait_for_time_wait(DRAIN_LIMIT, DRAIN_MAX_S) if drain else 0.0
        helper_process = Child(
            "helper",
            [sys.executable, os.path.abspath(__file__), "--child", str(lock_dir)],
            env=env,
        )
        report = helper_process.read_report()
        helper = Helper(int(report["port"]), int(report["pid"]), int(report["reserved"]))
        commands, notes = contenders(helper, str(localport))
        facts = [
            *machine_facts(),
            ("localport", package_version(DISTRIBUTION)),
            ("lsof", command_version(["lsof", "-v"])),
            ("ss", command_version(["ss", "-V"])),
            ("fuser", command_version(["fuser", "-V"])),
            ("PORT", f"{helper.port}, listened on by PID {helper.pid} on 127.0.0.1"),
            ("LOCALPORT_DIR", f"{lock_dir} (one live reservation: port {helper.reserved})"),
            ("rounds", f"{runs}{' (--quick)' if quick else ''}"),
        ]
        if drain:
            facts.append(("waited for TIME_WAIT to drain", f"{drained:.0f} s"))
        facts += [("note", note) for note in notes]
        print_facts("localport command-line benchmark", facts)
        deadline = time.monotonic() + (QUICK_MAX_SECONDS if quick else MAX_SECONDS)
        time_commands(commands, env, runs, deadline)
        import_profile(env, helper.port, QUICK_IMPORTTIME_RUNS if quick else IMPORTTIME_RUNS)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        if helper_process is not None:
            helper_process.stop()
        shutil.rmtree(lock_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run_main(main)
