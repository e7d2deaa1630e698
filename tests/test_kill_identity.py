"""``localport kill`` never signals a process that took over a PID while the question waited.

A real PID reuse, forced: the test runs in a PID namespace of its own (``unshare -p -f
--mount-proc``), where root may choose the next PID through ``ns_last_pid``. The holder of
port 29880 is asked about, dies while the question waits, and a new process is started under
its PID before the answer "y" is given. Skipped where PID namespaces are not permitted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

SUPERVISOR = """
    import json, os, pty, select, signal, subprocess, sys, time

    port = sys.argv[1]
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import socket, sys; s = socket.create_server(('127.0.0.1', int(sys.argv[1])));"
         " print('ready', flush=True); sys.stdin.read()", port],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "ready"

    def read_until(fd, text, seconds=30):
        seen = b""
        deadline = time.monotonic() + seconds
        while text not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        return seen.decode(errors="replace")

    main, secondary = pty.openpty()
    killer = subprocess.Popen(
        [sys.executable, "-m", "localport", "kill", port],
        stdin=secondary, stdout=secondary, stderr=secondary,
    )
    os.close(secondary)
    asked = read_until(main, b"[y/N]")
    assert "[y/N]" in asked, asked

    reused = holder.pid
    holder.kill()
    holder.wait()
    time.sleep(0.05)  # a start time of its own: clock ticks are 10 ms
    with open("/proc/sys/kernel/ns_last_pid", "w") as file:
        file.write(str(reused - 1))
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        if victim.pid != reused:
            print(json.dumps({"reused": False}))
            sys.exit(0)
        os.write(main, b"y\\n")
        answer = read_until(main, b"\\x00", seconds=15)  # everything until it exits
        code = killer.wait(30)
        time.sleep(0.2)
        print(json.dumps({
            "reused": True,
            "victim_alive": victim.poll() is None,
            "code": code,
            "output": asked + answer,
        }))
    finally:
        victim.kill()
        victim.wait()
        killer.kill()
        killer.wait()
"""


def test_a_pid_reused_while_kill_asks_is_never_signalled() -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare")
    command = [unshare, "-p", "-f", "--mount-proc", sys.executable, "-c"]
    result = subprocess.run(
        [*command, textwrap.dedent(SUPERVISOR), "29880"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0 and "unshare" in result.stderr:
        pytest.skip(f"no PID namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    if not report["reused"]:
        pytest.skip("the PID namespace did not hand out the chosen PID")
    assert report["victim_alive"], report["output"]
    assert "stop PID" in report["output"]
    assert "was reused by another process since it was looked at; not signalled" in report["output"]
    assert report["code"] == 4  # refused
