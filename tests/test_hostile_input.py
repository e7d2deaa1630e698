"""Input that other users, other processes or a damaged disk put in front of localport."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest

import localport
from helpers import LISTENING_CHILD

ESCAPE = "\x1b]0;pwned\x07\x1b[2J"
SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J"
# A port of its own for the crafted records (see the plan in conftest.py).
CRAFTED_PORT = 29380


def run(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localport", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_a_command_line_with_escape_sequences_is_shown_escaped(spawn: Any) -> None:
    # The child becomes a listener whose command line starts with the escape sequence.
    child = spawn(
        "import os, sys, textwrap\n"
        "os.execv(sys.executable, [sys.argv[1], '-c', textwrap.dedent(sys.argv[2])])\n",
        ESCAPE,
        LISTENING_CHILD,
    )
    port = child.read()

    who = run("who", str(port))
    listed = run("list", "--all")

    for result in (who, listed):
        assert result.returncode == 0, result.stderr
        assert SHOWN in result.stdout
        assert "\x1b" not in result.stdout
        assert "\x07" not in result.stdout


def test_a_name_with_escape_sequences_is_listed_escaped() -> None:
    with localport.reserve(name=f"api{ESCAPE}"):
        result = run("list")
    assert result.returncode == 0, result.stderr
    assert f"api{SHOWN}" in result.stdout
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize(
    "record",
    [
        b"[" * 4096,
        json.dumps({"pid": 2**40, "created": 1e308, "released": None}).encode(),
        json.dumps({"pid": 1, "created": 1.0, "released": 2.0, "lease_until": 1e308}).encode(),
        b'{"pid": 1, "created": NaN, "released": 1, "lease_until": Infinity}',
        json.dumps({"pid": True, "name": ["x"], "host": {"a": 1}, "proto": 7}).encode(),
        b"\xff\xfe\x00garbage",
    ],
    ids=["brackets", "huge-pid", "huge-lease", "nan", "wrong-types", "binary"],
)
def test_a_crafted_record_is_unreadable_never_an_exception(lock_dir: Path, record: bytes) -> None:
    (lock_dir / f"port-{CRAFTED_PORT}.lock").write_bytes(record)

    assert localport.reservations() == []
    assert localport.is_free(CRAFTED_PORT) in (True, False)
    localport.who_holds(CRAFTED_PORT)
    with localport.reserve(CRAFTED_PORT) as reservation:  # nobody holds its lock
        assert reservation.port == CRAFTED_PORT
    for arguments in (("list",), ("who", str(CRAFTED_PORT)), ("reserve", str(CRAFTED_PORT))):
        result = run(*arguments)
        assert "Traceback" not in result.stderr, arguments
        assert result.returncode in (0, 1), (arguments, result.stderr)


def test_a_lease_longer_than_a_day_is_refused() -> None:
    with localport.reserve() as reservation:
        with pytest.raises(ValueError, match="lease"):
            reservation.release(lease=1e300)
        assert not reservation.released


def test_an_ipv4_mapped_host_is_refused_naming_the_ipv4_form() -> None:
    with pytest.raises(ValueError, match=r"host.*'127\.0\.0\.1'"):
        localport.reserve(host="::ffff:127.0.0.1")
    assert localport.reservations() == []


def test_a_lock_dir_with_a_nul_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="lock_dir"):
        localport.reserve(lock_dir="/tmp/a\x00b")


@pytest.mark.parametrize("value", ["relative/locks", " ", "./locks"])
def test_a_relative_localport_dir_is_refused_and_nothing_is_created(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCALPORT_DIR", value)
    with pytest.raises(localport.LockDirError, match="absolute") as refused:
        localport.reserve()
    assert refused.value.lock_dir == value
    assert "LOCALPORT_DIR must be an absolute path" in str(refused.value)
    assert isinstance(refused.value, localport.LocalportError)
    for call in (
        lambda: localport.reserve_many(2),
        localport.reservations,
        lambda: localport.is_free(30600),
        lambda: localport.launch([sys.executable, "-c", "pass", "{port}"]),
    ):
        with pytest.raises(localport.LockDirError, match="LOCALPORT_DIR must be an absolute"):
            call()
    assert list(tmp_path.iterdir()) == []
    for arguments in (
        ("reserve",),
        ("reserve", "--name", "web"),
        ("list",),
        ("run", "--", sys.executable, "-c", "pass", "{port}"),
    ):
        result = run(*arguments)
        assert result.returncode == 6, (arguments, result.stderr)
        assert "Traceback" not in result.stderr
        assert "LOCALPORT_DIR must be an absolute path" in result.stderr
    # who still answers from the kernel (exit 1: nothing holds the port), and says why no
    # reservation can be shown.
    who = run("who", "30601")
    assert who.returncode == 1, who.stderr
    assert "warning:" in who.stderr
    assert "LOCALPORT_DIR must be an absolute path" in who.stderr
    assert "Traceback" not in who.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_localport_dir_under_home_is_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("LOCALPORT_DIR", "~/shared-ports")
    with localport.reserve() as reservation:
        assert reservation.lock_path is not None
        assert Path(reservation.lock_path).parent == tmp_path / "shared-ports"


def test_reading_a_missing_lock_dir_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "not" / "yet"
    monkeypatch.setenv("LOCALPORT_DIR", str(missing))

    assert localport.reservations() == []
    assert localport.is_free(CRAFTED_PORT) in (True, False)
    localport.who_holds(CRAFTED_PORT)
    localport.listening()
    for arguments in (("list",), ("who", str(CRAFTED_PORT))):
        assert "Traceback" not in run(*arguments).stderr

    assert not (tmp_path / "not").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_lock_dir_you_cannot_write_is_refused_at_once_not_walked(spawn: Any) -> None:
    unwritable = tempfile.mkdtemp(prefix="localport-test-0500-")
    os.chown(unwritable, 65534, 65534)
    os.chmod(unwritable, 0o500)
    try:
        checker = spawn(
            """
            import ipaddress, json, os, sys, time  # nobody may not read the stdlib: import first
            import localport, localport._reserve, localport._picker, localport._candidate
            import localport._lockfile, localport._listing, filelock
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            started = time.monotonic()
            try:
                localport.reserve()
                outcome = None
            except localport.LockDirError as error:
                outcome = str(error)
            print(json.dumps({"error": outcome, "seconds": time.monotonic() - started}))
            """,
            env={"LOCALPORT_DIR": unwritable},
        )
        result = checker.read()
        checker.finish()
    finally:
        shutil.rmtree(unwritable)
    assert result["error"] is not None
    assert "cannot create files" in result["error"]


def test_a_refused_lock_dir_gives_its_own_reason_unwrapped(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    with pytest.raises(localport.LockDirError) as info:
        localport.reserve(lock_dir=link)
    assert info.value.reason.startswith("it is a symbolic link")
    assert str(info.value).count("refusing lock directory") == 1


def test_a_udp_server_that_shares_its_address_is_not_taken_for_time_wait() -> None:
    """TIME_WAIT is TCP's: reuse_address must not let a UDP probe bind beside a live server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        with pytest.raises(localport.PortInUseError):
            localport.reserve(port, proto="udp", reuse_address=True)
    assert localport.reservations() == []


@pytest.mark.parametrize(
    "arguments",
    [("--host", "192.0.2.77"), ("--host", "example.com"), ("--name", "")],
    ids=["foreign-host", "name-for-host", "empty-name"],
)
def test_reserve_hold_checks_its_arguments_before_it_forks(arguments: tuple[str, ...]) -> None:
    result = run("reserve", "--hold", "5", *arguments)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert localport.reservations() == []


def test_release_signals_only_a_pid_the_kernel_says_holds_the_lock(spawn: Any) -> None:
    held = run("reserve", "--hold", "60", "--json")
    assert held.returncode == 0, held.stderr
    genuine = json.loads(held.stdout)
    holder_pid = genuine["holder_pid"]
    holder_started = psutil.Process(holder_pid).create_time()
    try:
        # Another process holds a port's lock and writes the genuine holder's PID into its
        # record, hoping `localport release` signals that PID.
        forger = spawn(
            """
            import json, os, sys
            import localport
            reservation = localport.reserve(int(sys.argv[1]))
            record = {"pid": int(sys.argv[2]), "created": 1.0, "released": None,
                      "port": reservation.port, "proto": "tcp", "host": "127.0.0.1"}
            fd = os.open(reservation.lock_path, os.O_WRONLY)
            os.pwrite(fd, json.dumps(record).encode().ljust(512), 0)
            os.close(fd)
            print(json.dumps(reservation.port), flush=True)
            sys.stdin.read()
            """,
            str(CRAFTED_PORT + 1),
            str(holder_pid),
        )
        forged_port = forger.read()

        refused = run("release", str(forged_port))
        assert refused.returncode == 4, refused.stderr
        # Named by the kernel's lock table: the forger, not the PID its record names.
        assert f"reserved by PID {forger.pid}" in refused.stderr
        os.kill(holder_pid, 0)  # the genuine holder was not signalled

        released = run("release", str(genuine["port"]))  # and the genuine one is released
        assert released.returncode == 0, released.stderr
    finally:  # end the holder by its PID, if that PID is still the holder
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(holder_pid)
            if process.create_time() == holder_started:
                process.kill()


def test_a_link_local_host_without_a_zone_is_not_an_address_of_this_machine() -> None:
    # bind() says EINVAL for fe80::1 without a zone; that once surfaced as an unusable lock
    # file (exit 6) on the command line.
    with pytest.raises(localport.AddressNotAvailableError, match="'fe80::1'"):
        localport.reserve(host="fe80::1")
    result = run("reserve", "--host", "fe80::1")
    assert result.returncode == 2, result.stderr
    assert "not an address of this machine" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_ipv6_host_without_ipv6_is_one_line_and_exit_2() -> None:
    # A private network namespace whose loopback has IPv6 turned off.
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        pytest.skip("needs unshare and ip")
    switch_off = " && ".join(
        f"echo 1 > /proc/sys/net/ipv6/conf/{name}/disable_ipv6" for name in ("all", "lo")
    )
    script = f'{switch_off} && {ip} link set lo up && exec "$0" "$@"'
    command = [unshare, "-n", "sh", "-c", script, sys.executable, "-m", "localport"]
    probe = subprocess.run([*command, "--version"], capture_output=True, timeout=60, check=False)
    if probe.returncode != 0:
        pytest.skip("no private network namespace without IPv6 here")

    result = subprocess.run(
        [*command, "reserve", "--host", "::1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "'::1': it is not an address of this machine" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"cwd": 5}, TypeError, "cwd must be a path"),
        ({"env": {"A": 1}}, TypeError, "env must be a mapping of str to str"),
        ({"cmd": ["\x00"]}, ValueError, "cmd must not contain NUL"),
    ],
    ids=["cwd", "env", "nul"],
)
def test_launch_checks_cwd_env_and_nul_before_anything_is_reserved(
    lock_dir: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"cmd": [sys.executable, "-c", "pass"], **options}
    with pytest.raises(error, match=match):
        localport.launch(**arguments)
    assert list(lock_dir.iterdir()) == []  # no lock file: nothing was reserved


def test_wait_until_listening_checks_stop_if_before_waiting() -> None:
    with pytest.raises(TypeError, match="stop_if must be a callable"):
        localport.wait_until_listening(29850, stop_if="x", timeout=60)  # type: ignore[arg-type]


def test_a_record_naming_a_live_process_never_keeps_a_walk_off_an_unheld_port(
    lock_dir: Path,
) -> None:
    # The record names this very process, alive, with and without its true start time: the
    # lock is not held, so the record describes nobody, and a walk over that one port takes it.
    port = 29851
    started = psutil.Process().create_time()
    for process_started in (1.0, started):
        record = {"pid": os.getpid(), "process_started": process_started, "created": 1.0}
        (lock_dir / f"port-{port}.lock").write_text(json.dumps({**record, "released": None}))
        assert localport.reservations() == []
        with localport.reserve(port_range=(port, port)) as reservation:
            assert reservation.port == port


def test_a_unix_socket_at_a_lock_path_is_skipped_by_walks_and_refused_by_number(
    lock_dir: Path,
) -> None:
    port, other = 29853, 29854
    planted = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        planted.bind(str(lock_dir / f"port-{port}.lock"))
        with localport.reserve(port_range=(port, other)) as walked:
            assert walked.port == other
        with pytest.raises(localport.LockDirError, match=f"port-{port}.lock"):
            localport.reserve(port)
        assert localport.is_free(port) is False  # reserve() cannot use it
        assert localport.reservations() == []
        who = run("who", str(port))
        assert "Traceback" not in who.stderr
    finally:
        planted.close()


def test_who_list_and_kill_name_the_lock_holder_never_a_pid_a_record_names(spawn: Any) -> None:
    port = 29856
    victim = spawn("import json, sys; print(json.dumps('up'), flush=True); sys.stdin.read()")
    assert victim.read() == "up"
    # The lock holder (any co-user of a shared directory could be one) writes the victim's
    # PID into its record. It keeps no guard socket, so only the record speaks for it.
    forger = spawn(
        """
        import json, os, sys
        import localport
        reservation = localport.reserve(int(sys.argv[1]), guard=False)
        record = {"pid": int(sys.argv[2]), "created": 1.0, "released": None,
                  "port": reservation.port, "proto": "tcp", "host": "127.0.0.1"}
        fd = os.open(reservation.lock_path, os.O_WRONLY)
        os.pwrite(fd, json.dumps(record).encode().ljust(512), 0)
        os.close(fd)
        print(json.dumps("forged"), flush=True)
        sys.stdin.read()
        """,
        str(port),
        str(victim.pid),
    )
    assert forger.read() == "forged"

    assert [(info.port, info.pid) for info in localport.reservations()] == [(port, forger.pid)]
    assert {h.pid for h in localport.who_holds(port)} == {forger.pid}
    listed = json.loads(run("list", "--json").stdout)["reservations"]
    assert [entry["pid"] for entry in listed] == [forger.pid]

    killed = run("kill", str(port), "--yes")
    assert killed.returncode == 0, killed.stderr
    assert f"stopped PID {forger.pid}" in killed.stdout + killed.stderr
    assert victim.process.poll() is None  # the PID the record named was never signalled
    assert forger.process.wait(10) != 0


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_who_explains_a_port_whose_lock_path_is_not_a_usable_lock_file(
    lock_dir: Path, tmp_path: Path, kind: str
) -> None:
    port = {"directory": 29857, "fifo": 29858, "symlink": 29859}[kind]
    planted = lock_dir / f"port-{port}.lock"
    if kind == "directory":
        planted.mkdir()
    elif kind == "fifo":
        os.mkfifo(planted)
    else:
        planted.symlink_to(tmp_path / "elsewhere")
    shown = {"directory": "a directory", "fifo": "a FIFO", "symlink": "a symbolic link"}[kind]

    text = run("who", str(port))
    assert text.returncode == 0, text.stderr
    assert f"lock file {planted} is {shown}" in text.stdout
    assert "will not reserve this port until it is removed" in text.stdout
    report = json.loads(run("who", "--json", str(port)).stdout)
    assert shown in report["unusable_lock_file"]
    assert localport.is_free(port) is False


def test_who_says_nothing_of_lock_files_when_the_lock_path_is_fine() -> None:
    port = 29852
    localport.reserve(port).release()  # a lock file, not held
    report = json.loads(run("who", "--json", str(port)).stdout)
    assert report["unusable_lock_file"] is None
    assert report["in_use"] is False
