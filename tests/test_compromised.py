"""A held lock file deleted or replaced under its holder: reported, and never granted twice.

Each test has a holder process (a real reservation), and a second process that deletes or
replaces the holder's lock file the way a careless clean-up script or a hostile co-user of a
shared directory would. Ports 29800-29809 (see the plan in conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

import localport
from helpers import needs_root

if TYPE_CHECKING:
    from pathlib import Path

#: Holds ``reserve(PORT, guard=False)`` (no guard socket, so only the lock stands between it
#: and a second reserver), prints the PID, and answers each line on stdin with its
#: ``compromised`` state; releases on "release".
HOLDER = """
    import json, os, sys
    import localport
    reservation = localport.reserve(int(sys.argv[1]), guard=False, name="held")
    print(json.dumps(os.getpid()), flush=True)
    for line in sys.stdin:
        if line.strip() == "release":
            reservation.release()
        print(json.dumps(reservation.compromised), flush=True)
"""


def in_another_process(code: str, *args: str) -> None:
    """Run *code* in a process of its own (the one that tampers with the directory)."""
    subprocess.run([sys.executable, "-c", code, *args], check=True, timeout=30)


def run(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localport", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ask(holder: Any, line: str = "check") -> bool:
    holder.send(line)
    answer = holder.read()
    assert isinstance(answer, bool)
    return answer


UNLINK = "import os, sys; os.unlink(sys.argv[1])"
REPLACE = (
    "import os, sys\n"
    "path = sys.argv[1]\n"
    "with open(path + '.new', 'w') as file: file.write('{}')\n"
    "os.chmod(path + '.new', 0o600)\n"
    "os.replace(path + '.new', path)\n"
)


@pytest.mark.parametrize(
    ("tamper", "port"), [(UNLINK, 29800), (REPLACE, 29801)], ids=["deleted", "replaced"]
)
def test_a_lock_file_deleted_or_replaced_under_its_holder_is_reported_compromised(
    spawn: Any, lock_dir: Path, tamper: str, port: int
) -> None:
    holder = spawn(HOLDER, str(port))
    pid = holder.read()
    assert ask(holder) is False
    assert [(i.port, i.pid, i.compromised) for i in localport.reservations()] == [
        (port, pid, False)
    ]

    in_another_process(tamper, str(lock_dir / f"port-{port}.lock"))

    assert ask(holder) is True
    listed = localport.reservations()
    assert [(i.port, i.pid, i.name, i.compromised) for i in listed] == [(port, pid, "held", True)]
    assert localport.is_free(port) is False

    shown = run("list")
    assert shown.returncode == 0, shown.stderr
    assert f"{port} (COMPROMISED)" in shown.stdout
    assert str(pid) in shown.stdout
    who = run("who", "--json", str(port))
    assert who.returncode == 0, who.stderr
    report = json.loads(who.stdout)
    assert report["compromised_reservation"]["pid"] == pid
    assert report["compromised_reservation"]["compromised"] is True


@pytest.mark.parametrize(
    ("tamper", "port"), [(UNLINK, 29802), (REPLACE, 29803)], ids=["deleted", "replaced"]
)
def test_a_second_reserver_never_gets_a_port_whose_holder_lost_its_lock_file(
    spawn: Any, lock_dir: Path, tamper: str, port: int
) -> None:
    holder = spawn(HOLDER, str(port))
    holder.read()
    in_another_process(tamper, str(lock_dir / f"port-{port}.lock"))

    with pytest.raises(localport.PortInUseError, match="deleted or replaced"):
        localport.reserve(port, guard=False)
    with pytest.raises(localport.NoFreePortError):
        localport.reserve(port_range=(port, port), guard=False)
    # The command line refuses it the same way: exit 1, one line, no traceback.
    refused = run("reserve", str(port))
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr

    # Once the first holder lets go, the port is everyone's again.
    assert ask(holder, "release") is False
    with localport.reserve(port, guard=False) as again:
        assert again.port == port
        assert again.compromised is False


def test_a_lock_directory_renamed_away_and_replaced_still_refuses_the_held_port(
    spawn: Any, lock_dir: Path
) -> None:
    port = 29804
    holder = spawn(HOLDER, str(port))
    holder.read()
    # What the owner of the parent directory can do: move the directory, make a new one.
    in_another_process(
        "import os, sys\n"
        "os.rename(sys.argv[1], sys.argv[1] + '.old')\n"
        "os.mkdir(sys.argv[1], 0o700)\n",
        str(lock_dir),
    )
    try:
        assert ask(holder) is True
        with pytest.raises(localport.PortInUseError, match="deleted or replaced"):
            localport.reserve(port, guard=False)
        assert [(i.port, i.compromised) for i in localport.reservations()] == [(port, True)]
    finally:
        holder.kill()


def test_an_intact_reservation_is_not_compromised_and_a_released_one_never_is() -> None:
    reservation = localport.reserve(29805)
    assert reservation.compromised is False
    assert "compromised" not in repr(reservation)
    path = reservation.lock_path
    assert path is not None
    reservation.release()
    os.unlink(path)  # after release: nobody's business
    assert reservation.compromised is False
    with localport.reserve(29805) as again:
        assert again.compromised is False


#: Binds the claim name given as its argument as user nobody, prints "ready", waits.
SQUATTER = """
    import os, socket, sys
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("\\0" + sys.argv[1])
    print('"ready"', flush=True)
    sys.stdin.read()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="claims are Linux's abstract sockets")
@needs_root
def test_another_user_holding_a_claim_name_cannot_block_your_private_directory(
    spawn: Any, lock_dir: Path
) -> None:
    from localport._registry import Registry

    registry = Registry.open(str(lock_dir))
    squatter = spawn(SQUATTER, f"{registry.claim_prefix}29806")
    assert squatter.read() == "ready"
    # Only you and root can make lock files in your 0700 directory: nobody's claim is no
    # reservation of it, so the port is yours (and your own claim-less reservation works).
    with localport.reserve(29806, guard=False) as reservation:
        assert reservation.port == 29806
