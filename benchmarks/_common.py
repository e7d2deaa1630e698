"""What the benchmark scripts share: tables, percentiles, machine facts, TIME_WAIT, children.

The scripts run as ``python benchmarks/NAME.py``, which puts this directory first on
``sys.path``: they import this module as ``_common``. It uses the standard library only.

- Statistics: :func:`percentile` is the nearest-rank percentile (the smallest sample with at
  least that fraction of the samples at or below it); :func:`median` is the usual median (the
  mean of the two middle samples for an even count), as ``statistics.median``.
- Tables: :func:`table` renders a padded Markdown table, text columns left-aligned and
  numeric ones right-aligned.
- Machine facts: :func:`machine_facts` (Python, kernel, CPU count, the kernel's ephemeral
  port range, load average, TCP sockets and TIME_WAIT among them) and :func:`print_facts`.
- TIME_WAIT: :func:`tcp_sockets` counts the lines of ``/proc/net/tcp`` and ``tcp6``;
  :func:`wait_for_time_wait` waits, bounded, until fewer than a limit are in TIME_WAIT.
- Versions: :func:`package_version` (installed distributions) and :func:`command_version`
  (the first line with a version number that ``TOOL -V`` or the like prints).
- Processes: :func:`timed_run` times one whole subprocess; :func:`round_robin` interleaves
  contenders (A, B, C, A, B, C...); :class:`Child` starts a helper that reports one JSON line
  and holds its sockets or reservations until its stdin closes, and ends it by its PID.
- Odds and ends: :func:`port_is_free` (a plain bind on 127.0.0.1 and ::1),
  :func:`private_dir` (a new 0700 directory), :func:`raise_nofile_limit`,
  :func:`exit_on_sigterm` and :func:`run_main` (exit code 130 on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import errno
import importlib.metadata
import json
import math
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import FrameType

LOOPBACK = "127.0.0.1"
US = "\N{MICRO SIGN}s"
#: A version-reporting subprocess that takes longer than this is reported as "?".
TOOL_TIMEOUT_S = 60.0
CHILD_START_TIMEOUT_S = 120.0
_TIME_WAIT = "06"  # the st column of /proc/net/tcp
_VERSION = re.compile(r"\d+\.\d+")

K = TypeVar("K")
#: The distribution that installs the package ``localport`` (the name ``localport`` on PyPI is
#: an unrelated project): the name to ask ``importlib.metadata`` for localport's version.
DISTRIBUTION = "localport-reserve"


# -- statistics ------------------------------------------------------------------------------------


def percentile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile of *values* (need not be sorted); NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    """The median (the mean of the two middle values for an even count); NaN when empty."""
    data = list(values)
    return statistics.median(data) if data else math.nan


# -- tables ----------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A padded Markdown table.

    *align* has one letter a column, ``l`` (text) or ``r`` (numbers); by default the first
    column is text and the others are numbers.
    """
    columns = len(headers)
    if align is None:
        align = "l" + "r" * (columns - 1)
    if len(align) != columns or set(align) - {"l", "r"}:
        msg = f"align {align!r} must have one 'l' or 'r' for each of {columns} columns"
        raise ValueError(msg)
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(cells, widths, align, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|".join(
        ":" + "-" * (w + 1) if a == "l" else "-" * (w + 1) + ":"
        for w, a in zip(widths, align, strict=True)
    )
    rule = f"|{rule}|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


# -- machine facts ---------------------------------------------------------------------------------


def read_proc(path: str) -> str:
    """A small ``/proc`` file's text on one line, or why it could not be read."""
    try:
        return " ".join(Path(path).read_text(encoding="ascii").split())
    except OSError as error:
        return f"unavailable ({error.strerror})"


def ephemeral_range() -> str:
    """The kernel's ephemeral (automatic source) port range, as ``LOW-HIGH``."""
    text = read_proc("/proc/sys/net/ipv4/ip_local_port_range")
    parts = text.split()
    return "-".join(parts) if len(parts) == 2 and all(p.isdigit() for p in parts) else text


def ephemeral_bounds() -> tuple[int, int] | None:
    """The kernel's ephemeral port range as numbers, where Linux publishes it."""
    low, _, high = ephemeral_range().partition("-")
    return (int(low), int(high)) if low.isdigit() and high.isdigit() else None


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine skews every table."""
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except (AttributeError, OSError):
        return "unknown"


@dataclass(frozen=True)
class TcpCount:
    total: int
    time_wait: int


def tcp_sockets() -> TcpCount | None:
    """TCP sockets in this network namespace: the lines of /proc/net/tcp and tcp6."""
    total = time_wait = 0
    found = False
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path, encoding="ascii", errors="replace") as file:
                next(file, None)  # the header
                for line in file:
                    total += 1
                    fields = line.split(None, 4)
                    if len(fields) > 3 and fields[3] == _TIME_WAIT:
                        time_wait += 1
                found = True
        except OSError:
            continue
    return TcpCount(total, time_wait) if found else None


def count_time_wait() -> int | None:
    """TCP sockets in TIME_WAIT, or None where /proc/net/tcp cannot be read."""
    count = tcp_sockets()
    return None if count is None else count.time_wait


def describe_tcp_sockets() -> str:
    count = tcp_sockets()
    if count is None:
        return "unknown (no /proc/net/tcp)"
    return f"{count.total} ({count.time_wait} in TIME_WAIT)"


def wait_for_time_wait(limit: int, max_seconds: float) -> float:
    """Wait until fewer than *limit* TCP sockets are in TIME_WAIT (at most *max_seconds*).

    TIME_WAIT left by an earlier run (a benchmark's noise can fill the kernel's table) makes
    binds fail and ``lsof`` or ``ss`` slow. Returns the seconds waited.
    """
    began = time.monotonic()
    while time.monotonic() - began < max_seconds:
        count = count_time_wait()
        if count is None or count < limit:
            break
        time.sleep(1.0)
    return time.monotonic() - began


def machine_facts() -> list[tuple[str, str]]:
    """The facts every benchmark prints first, as (label, value) pairs."""
    return [
        (
            "Python",
            f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        ),
        ("kernel", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("CPU count", str(os.cpu_count())),
        ("ephemeral port range (ip_local_port_range)", ephemeral_range()),
        ("load average at start (1 / 5 / 15 min)", load_average()),
        ("TCP sockets (/proc/net/tcp + tcp6)", describe_tcp_sockets()),
    ]


def print_facts(title: str, facts: Sequence[tuple[str, str]], *, as_table: bool = False) -> None:
    """A ``# title`` heading, then the facts as a bullet list (or a fact/value table)."""
    print(f"# {title}\n")
    if as_table:
        print(table(["fact", "value"], [list(fact) for fact in facts], "ll"))
    else:
        for label, value in facts:
            print(f"- {label}: {value}")
    print()


# -- versions --------------------------------------------------------------------------------------


def package_version(distribution: str, missing: str = "not installed") -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return missing


def run_tool(
    command: Sequence[str], timeout: float = TOOL_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run a system tool in the C locale and capture its output (no check of the exit code)."""
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, "LC_ALL": "C"},
    )


def command_version(command: Sequence[str]) -> str:
    """The first line with a version number that *command* (``["ss", "-V"]``) prints."""
    binary = shutil.which(command[0])
    if binary is None:
        return "not found"
    try:
        result = run_tool([binary, *command[1:]])
    except (OSError, subprocess.SubprocessError) as error:
        return f"? ({error})"
    for line in (result.stdout + result.stderr).splitlines():
        if _VERSION.search(line):
            return line.strip()
    return "?"


def port_is_free(port: int) -> bool:
    """Whether a plain TCP bind of *port* works on 127.0.0.1 and (where it exists) on ::1."""
    for family, address in ((socket.AF_INET, LOOPBACK), (socket.AF_INET6, "::1")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            sock.bind((address, port))
        except OSError as error:
            if error.errno != errno.EADDRNOTAVAIL:  # EADDRNOTAVAIL: no ::1 on this machine
                return False
        finally:
            sock.close()
    return True


# -- directories and subprocesses ------------------------------------------------------------------


def private_dir(prefix: str, parent: str | os.PathLike[str] | None = None) -> Path:
    """A new empty directory of mode 0700 (a lock directory, a scratch root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o700)
    return path


@dataclass(frozen=True)
class Run:
    """One finished subprocess: its wall time from start to exit, and what it said."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str


def timed_run(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = TOOL_TIMEOUT_S,
) -> Run:
    """Run *command* to its end (killed after *timeout*: ``TimeoutExpired``), timing it."""
    start = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(time.perf_counter() - start, done.returncode, done.stdout, done.stderr)


def command_env() -> dict[str, str]:
    """This process's environment as a user's ``localport`` command would see it.

    Without ``LOCALPORT_RANGE`` (the scripts choose ranges themselves) and without
    ``PYTHONDONTWRITEBYTECODE``, which some CI images and sandboxes set: a package installed
    with pip has its bytecode, so a user's command never compiles localport's modules, while
    with that setting every timed run would. A script's warm-up run writes the bytecode.
    """
    ignored = ("LOCALPORT_RANGE", "PYTHONDONTWRITEBYTECODE")
    return {key: value for key, value in os.environ.items() if key not in ignored}


def round_robin(
    contenders: Mapping[K, Callable[[], float]],
    rounds: int,
    *,
    warmup: int = 1,
    deadline: float | None = None,
) -> dict[K, list[float]]:
    """Call every contender once a round, in order (A, B, C, A, B, C...); collect the samples.

    The first *warmup* rounds are not kept. Past *deadline* (a ``time.monotonic()`` value) no
    new round starts, so a slow machine gets fewer samples instead of an endless run.
    """
    samples: dict[K, list[float]] = {key: [] for key in contenders}
    for index in range(warmup + rounds):
        if deadline is not None and index > warmup and time.monotonic() > deadline:
            break
        for key, call in contenders.items():
            value = call()
            if index >= warmup:
                samples[key].append(value)
    return samples


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (or as far as it goes); the limits."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft, hard
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# -- child processes -------------------------------------------------------------------------------


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: leave through ``finally`` blocks, so every socket gets closed."""
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that ``finally`` blocks run and close everything."""
    signal.signal(signal.SIGTERM, _exit_on_signal)


def child_report(data: Mapping[str, object]) -> None:
    """In a child: tell the parent what it holds, one JSON line on stdout."""
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def child_wait_for_parent() -> None:
    """In a child: block until the parent closes our stdin (or dies, which closes it too)."""
    sys.stdin.buffer.read()


class Child:
    """A helper process of a benchmark, ended by its PID in :meth:`stop`.

    It runs *command* in a session of its own (Ctrl-C reaches only the benchmark, which then
    ends the child), reports one JSON line on stdout, and exits when its stdin closes.
    """

    def __init__(
        self, name: str, command: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.process: subprocess.Popen[bytes] = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_report(self, timeout: float = CHILD_START_TIMEOUT_S) -> dict[str, Any]:
        """The child's JSON line (raises if it exits or says nothing within *timeout*)."""
        stdout = self.process.stdout
        assert stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                msg = f"the {self.name} process (PID {self.pid}) did not report in {timeout} s"
                raise RuntimeError(msg)
        line = stdout.readline()
        if not line:
            code = self.process.wait()
            msg = f"the {self.name} process (PID {self.pid}) exited with {code} before reporting"
            raise RuntimeError(msg)
        data: dict[str, Any] = json.loads(line)
        return data

    def stop(self) -> None:
        """Close its stdin (it exits on EOF), SIGTERM it by PID, wait, SIGKILL if it lingers."""
        process = self.process
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def run_main(main: Callable[[], int]) -> NoReturn:
    """Exit with *main*'s code; on Ctrl-C (after *main*'s cleanup has run), with 130."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("\nInterrupted; every process this script started has been ended.", file=sys.stderr)
        code = 130
    sys.exit(code)
