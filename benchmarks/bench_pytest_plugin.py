"""Benchmark the localport pytest plugin: what it costs a pytest run, and what it prevents.

Run it with the interpreter of the environment that has localport, pytest, pytest-xdist and
(for the comparison row) pytest-asyncio installed; every measurement runs that interpreter in a
subprocess::

    .venv/bin/python benchmarks/bench_pytest_plugin.py            # full run, about 1 minute
    .venv/bin/python benchmarks/bench_pytest_plugin.py --quick    # fewer runs, a smoke test

Every pytest run happens in a fresh project under one private temporary directory: a
``pytest.ini`` (so no enclosing configuration is picked up; it sets
``asyncio_default_fixture_loop_scope`` when pytest-asyncio is installed, which otherwise warns)
and one generated test file. Every subprocess gets ``LOCALPORT_DIR`` set to a fresh directory
(mode 0700) of its own, ``PYTEST_ADDOPTS`` / ``PYTEST_PLUGINS`` / ``LOCALPORT_RANGE``
removed, and ``PYTHONPYCACHEPREFIX`` pointed into the scratch directory (with
``PYTHONDONTWRITEBYTECODE`` removed): bytecode, pytest's assertion-rewritten modules included,
is cached there, so the warm-up runs leave a warm cache as on a developer's machine, and the
source tree is not written to. Everything is removed at the end. Only loopback addresses are
bound. Times are wall-clock times of the whole subprocess. The machine facts (from ``_common.py``:
Python, kernel, CPU count, ephemeral port range, load average, TCP sockets; then versions, the
pytest11 plugins that load in every run, whether the plugin has bytecode beside its source) are
printed first, then four tables, then the load average again.

1. Import cost. ``python -X importtime -c "import pytest; import localport.pytest_plugin"``,
   10 times (3 with ``--quick``) after one warm-up: the median, min and max cumulative time of
   ``localport.pytest_plugin`` (which includes ``localport`` itself), i.e. its cost on top of
   pytest, which a pytest run has already imported. ``pytest``'s own cumulative time is shown
   for scale.

2. Start-up cost. ``python -m pytest -q -p no:randomly -p no:cacheprovider`` in a project with
   one trivial passing test, with the plugin loaded and with ``-p no:localport``, 15 runs each
   (5 with ``--quick``), alternating, after one warm-up each: median and p90 (nearest rank) in
   ms, and the difference. Before timing, the script checks that ``--localport-range`` is
   accepted with the plugin and rejected with ``-p no:localport``, i.e. that the two variants
   really differ. Goal: under 15 ms added. The same pair is also run, for information, with
   ``PYTHONDONTWRITEBYTECODE=1`` and no cache prefix (as many CI images run): then every
   module without bytecode beside its source (localport's own, in an editable install without
   ``__pycache__``) is compiled, and the plugin is assertion-rewritten by pytest (it belongs to
   a pytest11 distribution), in every run.

3. Per-fixture overhead. A generated file of 500 tests, each taking the plugin's port fixture
   (its name is the ``FIXTURE`` constant below; the tests bind nothing), vs the same with
   pytest-asyncio's function-scoped ``unused_tcp_port``, vs 500 tests taking no fixture (the
   baseline), each run with ``-p no:randomly -q`` 5 times (2 with ``--quick``) round-robin
   after one warm-up: median total time and (median - baseline median) / 500 in ms per test.
   Every run starts with a fresh, empty lock directory (see above), as on a fresh CI machine,
   so each test's port gets its lock file created. Goal: the plugin's fixture adds at most
   0.2 ms per test more than ``unused_tcp_port`` does, both rows against the same baseline
   (the difference of the two rows' last column, as printed). Two rows for information: the
   baseline with ``-p no:localport``, whose last column is (baseline - that row) / 500, the
   cost of the plugin's per-test hooks that every test pays, fixture or not; and the plugin's
   fixture vs the baseline under ``-n 2`` (pytest-xdist), one run each.

4. Collisions under xdist. A generated suite of 200 tests, each binding a TCP server with a
   plain ``bind(("127.0.0.1", port))`` (no ``SO_REUSEADDR``), listening, connecting to it and
   exchanging 4 bytes, run 5 times (2 with ``--quick``) with ``-n 4 -p no:randomly -q``:
   (a) the port comes from the plugin's fixture; (b) from a helper in the test file that binds
   port 0, reads the port and closes the socket. Each test sleeps ``random.uniform(0, 0.02)`` s
   between getting its port and binding it (work between pick and bind), in both variants.
   Columns: failed tests in each run, all failures, those that are ``EADDRINUSE``, and how many
   failure reports carry the plugin's "localport: who holds port N" section. (b) may or may not
   fail on a given machine; nothing here expects it to.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from _common import (
    DISTRIBUTION,
    Run,
    load_average,
    machine_facts,
    median,
    package_version,
    percentile,
    print_facts,
    private_dir,
    round_robin,
    table,
    timed_run,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

PLUGIN_MODULE = "localport.pytest_plugin"
#: The plugin's port fixture, as a test names it: the one place to change when it is renamed.
FIXTURE = "localport_tcp_port"
PACKAGES = ("pytest", "pytest-xdist", "pytest-asyncio", DISTRIBUTION)
#: Per-subprocess limit: a hung run is a failure of the benchmark, not a measurement.
RUN_TIMEOUT_S = 600.0
FIXTURE_TESTS = 500
COLLISION_TESTS = 200
COLLISION_WORKERS = 4
STARTUP_GOAL_MS = 15.0
#: At most this many ms per test beyond pytest-asyncio's ``unused_tcp_port``.
FIXTURE_BEYOND_GOAL_MS = 0.2
#: pytest's exit code for a usage error (an unknown option, say).
USAGE_ERROR = 4
SUMMARY_LINE = re.compile(r"^=*\s*(\d+ \w+(?:, \d+ \w+)*) in [\d.]+s")


@dataclass(frozen=True)
class Counts:
    """Runs per measurement."""

    imports: int
    startup: int
    fixture: int
    collision: int


FULL = Counts(imports=10, startup=15, fixture=5, collision=5)
QUICK = Counts(imports=3, startup=5, fixture=2, collision=2)


class BenchmarkError(Exception):
    """A subprocess did not do what the measurement needs."""


class Sandbox:
    """The private temporary directory that holds every project and lock directory."""

    def __init__(self) -> None:
        self.root = private_dir("localport-bench-plugin-")
        self.locks = self.root / "locks"
        self.locks.mkdir(mode=0o700)
        self.asyncio_installed = importlib.util.find_spec("pytest_asyncio") is not None

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def lock_dir(self) -> Path:
        """A fresh, empty lock directory, mode 0700."""
        return private_dir("lp-", self.locks)

    def env(self, *, bytecode_cache: bool = True) -> dict[str, str]:
        """The environment of one subprocess, with a fresh ``LOCALPORT_DIR``.

        With *bytecode_cache*, bytecode (pytest's assertion-rewritten modules included) is
        written under the scratch directory, so warm runs measure a warm cache without
        touching the source tree; without it, ``PYTHONDONTWRITEBYTECODE=1``.
        """
        env = dict(os.environ)
        for name in (
            "PYTEST_ADDOPTS",
            "PYTEST_PLUGINS",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
            "LOCALPORT_RANGE",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONPYCACHEPREFIX",
        ):
            env.pop(name, None)
        if bytecode_cache:
            env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["LOCALPORT_DIR"] = str(self.lock_dir())
        return env

    def project(self, name: str, test_source: str) -> Path:
        """A directory with a ``pytest.ini`` and ``test_bench.py`` holding *test_source*."""
        path = self.root / name
        path.mkdir(mode=0o700)
        ini = ["[pytest]"]
        if self.asyncio_installed:
            ini.append("asyncio_default_fixture_loop_scope = function")
        (path / "pytest.ini").write_text("\n".join(ini) + "\n", encoding="utf-8")
        (path / "test_bench.py").write_text(test_source, encoding="utf-8")
        return path

    def run(
        self,
        args: Sequence[str],
        cwd: Path,
        *,
        expect: int | None = 0,
        bytecode_cache: bool = True,
    ) -> Run:
        """Run ``python *args`` in *cwd*; raise if *expect* is given and the exit code differs."""
        command = [sys.executable, *args]
        env = self.env(bytecode_cache=bytecode_cache)
        done = timed_run(command, env=env, cwd=cwd, timeout=RUN_TIMEOUT_S)
        if expect is not None and done.returncode != expect:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            msg = f"{' '.join(command)} exited {done.returncode}, not {expect}:\n{tail}"
            raise BenchmarkError(msg)
        return done

    def passing(
        self, args: Sequence[str], cwd: Path, tests: int, *, bytecode_cache: bool = True
    ) -> Callable[[], float]:
        """A call for :func:`round_robin`: one run that must pass *tests* tests; its seconds."""

        def call() -> float:
            done = self.run(args, cwd, bytecode_cache=bytecode_cache)
            expect_passed(done, tests)
            return done.seconds

        return call


# --------------------------------------------------------------------------- helpers


def p90(values: Sequence[float]) -> float:
    """The 90th percentile, nearest rank."""
    return percentile(values, 0.9)


def summary_counts(stdout: str) -> dict[str, int]:
    """``{"passed": 197, "failed": 3}`` from pytest's final summary line."""
    for line in reversed(stdout.splitlines()):
        match = SUMMARY_LINE.match(line.strip())
        if match:
            counts: dict[str, int] = {}
            for part in match.group(1).split(", "):
                number, word = part.split(" ", 1)
                word = {"errors": "error", "warnings": "warning"}.get(word, word)
                counts[word] = counts.get(word, 0) + int(number)
            return counts
    msg = f"no pytest summary line in:\n{stdout[-2000:]}"
    raise BenchmarkError(msg)


def expect_passed(run: Run, tests: int) -> None:
    counts = summary_counts(run.stdout)
    if counts.get("passed") != tests or len(counts) != 1:
        msg = f"expected {tests} passed, got {counts}:\n{run.stdout[-2000:]}"
        raise BenchmarkError(msg)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> None:
    """Print a Markdown table and a blank line; *align* has ``l`` or ``r`` for each column."""
    print(table(header, rows, align))
    print()


def goal_text(value: float, goal: float) -> str:
    return f"met (< {goal:g})" if value < goal else f"MISSED (>= {goal:g})"


# --------------------------------------------------------------------------- machine facts


def print_plugin_facts(sandbox: Sandbox) -> None:
    plugins = sorted(
        f"{entry.name} ({entry.value})"
        for entry in importlib.metadata.entry_points(group="pytest11")
    )
    spec = importlib.util.find_spec(PLUGIN_MODULE)
    origin = spec.origin if spec is not None else None
    beside = "yes" if origin and Path(importlib.util.cache_from_source(origin)).exists() else "no"
    facts = [
        *machine_facts(),
        *((name, package_version(name)) for name in PACKAGES),
        ("pytest11 plugins (load in every run)", ", ".join(plugins) or "none"),
        (f"`{PLUGIN_MODULE}`", str(origin)),
        ("its bytecode in `__pycache__` beside it", beside),
        ("scratch directory (removed at the end)", str(sandbox.root)),
    ]
    print_facts("localport pytest plugin benchmark", facts, as_table=True)


# --------------------------------------------------------------------------- 1. import


def import_cost(sandbox: Sandbox, runs: int) -> None:
    code = f"import pytest; import {PLUGIN_MODULE}"
    samples: dict[str, list[int]] = {PLUGIN_MODULE: [], "pytest": []}
    for index in range(runs + 1):
        done = sandbox.run(["-X", "importtime", "-c", code], sandbox.root)
        found: dict[str, int] = {}
        for line in done.stderr.splitlines():
            if not line.startswith("import time:"):
                continue
            fields = line.split("|")
            name = fields[-1].strip()
            if name in samples and fields[1].strip().isdigit():
                found[name] = int(fields[1].strip())
        if set(found) != set(samples):
            msg = f"importtime output lacks {set(samples) - set(found)}:\n{done.stderr[-2000:]}"
            raise BenchmarkError(msg)
        if index:  # the first run is a warm-up
            for name, value in found.items():
                samples[name].append(value)
    print(f"## 1. Import cost (`-X importtime`, {runs} runs after a warm-up)")
    print()
    print_table(
        ["module", "median cumulative us", "min us", "max us"],
        [
            [
                f"`{name}`" + (" (marginal over pytest)" if name == PLUGIN_MODULE else ""),
                f"{median(values):,.0f}",
                f"{min(values):,}",
                f"{max(values):,}",
            ]
            for name, values in samples.items()
        ],
        "lrrr",
    )


# --------------------------------------------------------------------------- 2. start-up


TRIVIAL_TEST = "from __future__ import annotations\n\n\ndef test_trivial() -> None:\n    pass\n"


def startup_cost(sandbox: Sandbox, runs: int) -> None:
    project = sandbox.project("startup", TRIVIAL_TEST)
    base = ["-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    off = [*base, "-p", "no:localport"]
    # The two variants must differ: the plugin's option exists only when it is loaded.
    probe = ["--localport-range=50000-50999"]
    sandbox.run([*base, *probe], project, expect=0)
    sandbox.run([*off, *probe], project, expect=USAGE_ERROR)
    # (label, arguments, bytecode cache); the pairs without a cache are for information.
    variants = [
        ("plugin loaded", base, True),
        ("`-p no:localport`", off, True),
        ("plugin loaded, no bytecode writes", base, False),
        ("`-p no:localport`, no bytecode writes", off, False),
    ]
    # One warm-up round, then *runs* rounds.
    seconds = round_robin(
        {
            label: sandbox.passing(args, project, 1, bytecode_cache=cache)
            for label, args, cache in variants
        },
        runs,
    )
    times = [[value * 1000 for value in seconds[label]] for label, _, _ in variants]
    print(
        f"## 2. Start-up cost (`pytest -q -p no:randomly -p no:cacheprovider`, one trivial "
        f"test, {runs} runs each, alternating)"
    )
    print()
    rows: list[list[str]] = []
    added = math.nan
    for pair in (0, 2):
        with_plugin, without = times[pair], times[pair + 1]
        difference = median(with_plugin) - median(without)
        if pair == 0:
            added = difference
        for (label, _, _), samples in zip(
            variants[pair : pair + 2], (with_plugin, without), strict=True
        ):
            rows.append(
                [
                    label,
                    str(len(samples)),
                    f"{median(samples):.1f}",
                    f"{p90(samples):.1f}",
                ]
            )
        label = "**difference (plugin added)**" if pair == 0 else "difference, no bytecode writes"
        median_text = f"**{difference:+.1f}**" if pair == 0 else f"{difference:+.1f}"
        rows.append([label, "", median_text, f"{p90(with_plugin) - p90(without):+.1f}"])
    print_table(["variant", "runs", "median ms", "p90 ms"], rows, "lrrr")
    print(
        f"Goal: under {STARTUP_GOAL_MS:g} ms added (with a bytecode cache): "
        f'{goal_text(added, STARTUP_GOAL_MS)}. "No bytecode writes" runs with '
        "`PYTHONDONTWRITEBYTECODE=1`, as many CI images do: modules with no `__pycache__` "
        "entry beside their source are compiled, and pytest assertion-rewrites the plugin "
        "distribution's modules, on every run."
    )
    print()


# --------------------------------------------------------------------------- 3. per fixture


def fixture_tests(fixture: str | None) -> str:
    lines = ["from __future__ import annotations", ""]
    for index in range(FIXTURE_TESTS):
        lines.append("")
        if fixture is None:
            lines += [f"def test_{index}() -> None:", "    assert True", ""]
        else:
            lines += [f"def test_{index}({fixture}: int) -> None:", f"    assert {fixture} > 0", ""]
    return "\n".join(lines)


def asyncio_port_fixture() -> str | None:
    """pytest-asyncio's function-scoped TCP port fixture, if it is installed and has one."""
    try:
        from pytest_asyncio import plugin
    except ImportError:
        return None
    return "unused_tcp_port" if hasattr(plugin, "unused_tcp_port") else None


def fixture_overhead(sandbox: Sandbox, runs: int) -> None:
    base = ["-m", "pytest", "-p", "no:randomly", "-q"]
    asyncio_fixture = asyncio_port_fixture()
    # name -> (project, extra arguments)
    ours = f"`{FIXTURE}`"
    theirs = f"pytest-asyncio `{asyncio_fixture or 'unused_tcp_port'}`"
    variants: dict[str, tuple[Path, list[str]]] = {
        "baseline (no fixture)": (sandbox.project("fixture-none", fixture_tests(None)), []),
        ours: (sandbox.project("fixture-plugin", fixture_tests(FIXTURE)), []),
    }
    if asyncio_fixture is not None:
        variants[theirs] = (
            sandbox.project("fixture-asyncio", fixture_tests(asyncio_fixture)),
            [],
        )
    variants["baseline, `-p no:localport`"] = (
        variants["baseline (no fixture)"][0],
        ["-p", "no:localport"],
    )
    # One warm-up round, then *runs* rounds.
    times = round_robin(
        {
            name: sandbox.passing([*base, *extra], project, FIXTURE_TESTS)
            for name, (project, extra) in variants.items()
        },
        runs,
    )
    baseline = median(times["baseline (no fixture)"])

    def per_test_ms(seconds: float, reference: float) -> float:
        return (seconds - reference) * 1000 / FIXTURE_TESTS

    print(
        f"## 3. Per-fixture overhead ({FIXTURE_TESTS} tests, `pytest -p no:randomly -q`, "
        f"{runs} runs each, round-robin)"
    )
    print()
    rows: list[list[str]] = []
    # Per-test overheads as the table prints them (3 decimals), so the goal line adds up.
    printed: dict[str, float] = {}
    for name, values in times.items():
        middle = median(values)
        overhead = per_test_ms(middle, baseline)
        printed[name] = round(overhead, 3)
        if name == "baseline (no fixture)":
            note = ""
        elif name.startswith("baseline,"):
            note = f"{-overhead:+.3f} (plugin's hooks per test: baseline - this row)"
        else:
            note = f"{overhead:+.3f}"
        rows.append([name, str(len(values)), f"{middle:.3f}", note])
    xdist = ["-n", "2"]
    xdist_times = {
        name: sandbox.run([*base, *xdist], variants[name][0])
        for name in ("baseline (no fixture)", ours)
    }
    for done in xdist_times.values():
        expect_passed(done, FIXTURE_TESTS)
    xdist_base = xdist_times["baseline (no fixture)"].seconds
    xdist_free = xdist_times[ours].seconds
    rows.append(["baseline, `-n 2` (information)", "1", f"{xdist_base:.3f}", ""])
    rows.append(
        [
            f"{ours}, `-n 2` (information)",
            "1",
            f"{xdist_free:.3f}",
            f"{per_test_ms(xdist_free, xdist_base):+.3f} (vs `-n 2` baseline)",
        ]
    )
    print_table(["variant", "runs", "median total s", "ms per test vs baseline"], rows, "lrrl")
    goal = (
        f"Goal: {ours} adds at most {FIXTURE_BEYOND_GOAL_MS:g} ms per test beyond {theirs}, "
        "both against the same baseline, each run in a fresh lock directory"
    )
    if theirs in printed:
        beyond = printed[ours] - printed[theirs]
        verdict = "met" if beyond <= FIXTURE_BEYOND_GOAL_MS + 1e-9 else "MISSED"
        print(
            f"{goal}: {printed[ours]:+.3f} - ({printed[theirs]:+.3f}) = {beyond:.3f} ms: "
            f"{verdict} ({'<=' if verdict == 'met' else '>'} {FIXTURE_BEYOND_GOAL_MS:g})."
        )
    else:
        print(f"{goal}: not measured (pytest-asyncio's `unused_tcp_port` is not available).")
    print()


# --------------------------------------------------------------------------- 4. collisions


COLLISION_HEADER = """\
from __future__ import annotations

import random
import socket
import time


def _bind_zero_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_and_connect(port: int) -> None:
    time.sleep(random.uniform(0, 0.02))  # work between picking the port and binding it
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        server.settimeout(10)
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn, _ = server.accept()
        try:
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"
        finally:
            client.close()  # the client closes first: TIME_WAIT stays on its own port
            conn.close()
"""


def collision_tests(use_fixture: bool) -> str:
    lines = [COLLISION_HEADER]
    for index in range(COLLISION_TESTS):
        lines.append("")
        if use_fixture:
            lines += [
                f"def test_{index}({FIXTURE}: int) -> None:",
                f"    _serve_and_connect({FIXTURE})",
                "",
            ]
        else:
            lines += [
                f"def test_{index}() -> None:",
                "    _serve_and_connect(_bind_zero_port())",
                "",
            ]
    return "\n".join(lines)


@dataclass
class CollisionStats:
    failed_per_run: list[int]
    eaddrinuse: int = 0
    who_holds_sections: int = 0
    seconds: float = 0.0
    #: Distinct failure messages from pytest's short summary ("FAILED test - message").
    messages: dict[str, int] = field(default_factory=dict)


def collisions(sandbox: Sandbox, runs: int) -> None:
    args = ["-m", "pytest", "-p", "no:randomly", "-q", "-n", str(COLLISION_WORKERS)]
    variants = {
        f"(a) `{FIXTURE}`": sandbox.project("collide-plugin", collision_tests(True)),
        "(b) bind(0)-and-close": sandbox.project("collide-bind-zero", collision_tests(False)),
    }
    stats = {name: CollisionStats([]) for name in variants}
    for _ in range(runs):
        for name, project in variants.items():
            done = sandbox.run(args, project, expect=None)
            if done.returncode not in (0, 1):  # 1: some tests failed, which is what we count
                msg = f"{name}: pytest exited {done.returncode}:\n{done.stdout[-2000:]}"
                raise BenchmarkError(msg)
            counts = summary_counts(done.stdout)
            if sum(counts.get(key, 0) for key in ("passed", "failed")) != COLLISION_TESTS:
                msg = f"{name}: unexpected outcome {counts}:\n{done.stdout[-2000:]}"
                raise BenchmarkError(msg)
            entry = stats[name]
            entry.failed_per_run.append(counts.get("failed", 0))
            for line in done.stdout.splitlines():
                if not line.startswith("FAILED"):
                    continue
                message = line.partition(" - ")[2].strip() or "(no message)"
                entry.messages[message] = entry.messages.get(message, 0) + 1
                if "Address already in use" in line or "Errno 98" in line:
                    entry.eaddrinuse += 1
            entry.who_holds_sections += done.stdout.count("localport: who holds port")
            entry.seconds += done.seconds
    print(
        f"## 4. Collisions under xdist ({COLLISION_TESTS} tests binding a plain TCP server, "
        f"`-n {COLLISION_WORKERS}`, {runs} runs each)"
    )
    print()
    header = [
        "port source",
        *(f"run {index + 1}" for index in range(runs)),
        "failed / tests",
        "EADDRINUSE",
        "who-holds sections",
        "mean run s",
    ]
    rows = [
        [
            name,
            *(str(failed) for failed in entry.failed_per_run),
            f"{sum(entry.failed_per_run)} / {COLLISION_TESTS * runs}",
            str(entry.eaddrinuse),
            str(entry.who_holds_sections),
            f"{entry.seconds / runs:.2f}",
        ]
        for name, entry in stats.items()
    ]
    print_table(header, rows, "l" + "r" * (len(header) - 1))
    print(
        "Failed tests per run. Every test sleeps 0-20 ms between getting its port and binding "
        "it; (b) picks with bind(0)-and-close in the test file."
    )
    print()
    for name, entry in stats.items():
        for message, count in sorted(entry.messages.items(), key=lambda item: -item[1])[:5]:
            print(f"- {name}: {count} x `{message}`")
    if any(entry.messages for entry in stats.values()):
        print()


# --------------------------------------------------------------------------- main


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs, a smoke test")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    counts = QUICK if arguments.quick else FULL
    if importlib.util.find_spec(PLUGIN_MODULE) is None:
        print(f"{PLUGIN_MODULE} is not importable by {sys.executable}", file=sys.stderr)
        return 2
    sandbox = Sandbox()
    try:
        print_plugin_facts(sandbox)
        import_cost(sandbox, counts.imports)
        startup_cost(sandbox, counts.startup)
        fixture_overhead(sandbox, counts.fixture)
        collisions(sandbox, counts.collision)
        print(f"Load average at the end (1 / 5 / 15 min): {load_average()}.")
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        sandbox.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
