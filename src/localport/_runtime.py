"""Talking to container runtimes: their API sockets, their command-line tools, and stopping.

The Docker Engine API and podman's compatible API speak HTTP/1.1 over a Unix socket; a few
lines of the standard library ask them, and every read is bounded by a deadline and a size.
The ``podman`` command runs where no socket answers, with the container's own storage
options, as the container's owner, and is killed with its helpers at the deadline.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

from . import _platform

if TYPE_CHECKING:
    from ._containers import Container, Forwarder

MAX_REPLY = 4 << 20  # bytes read from a runtime, at most
MAX_TEXT = 200  # characters kept of a name, image or label from another process


def sockets(runtime: str, uid: int | None) -> list[str]:
    """The API sockets to ask about a container whose forwarder *uid* owns: the one the
    environment names, else the runtime's default; only a socket that *uid* owns.

    A forwarder is recognised by its name and command line, which any user's process can
    imitate: a runtime that *uid* does not run must not be asked (or told to stop) the
    container such a process claims.
    """
    variable = "DOCKER_HOST" if runtime == "docker" else "CONTAINER_HOST"
    named = os.environ.get(variable, "")
    if named:
        # tcp:// and ssh:// hosts are not asked: the command-line tool follows them.
        paths = [named.removeprefix("unix://")] if named.startswith("unix://") else []
    elif runtime == "docker":
        paths = ["/var/run/docker.sock"]
    elif uid == 0:
        paths = ["/run/podman/podman.sock"]
    else:
        runtime_dir = os.environ.get("XDG_RUNTIME_DIR", "")
        own = uid == _own_uid() and os.path.isabs(runtime_dir)
        paths = [os.path.join(runtime_dir, "podman", "podman.sock")] if own else []
    return [path for path in paths if uid is not None and _owner(path) == uid]


def _owner(path: str) -> int | None:
    try:
        return os.stat(path).st_uid
    except (OSError, ValueError):
        return None


def _own_uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _api(path: str, request: str, deadline: float) -> tuple[int, bytes] | None:
    """One HTTP/1.1 request over the Unix socket *path*: ``(status, body)``, or ``None`` when
    the socket is absent, refuses, or does not finish answering by *deadline*."""
    if not hasattr(socket, "AF_UNIX") or not os.path.exists(path):
        return None
    reply = bytearray()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            sock.connect(path)
            sock.sendall(request.encode("ascii"))
            while len(reply) <= MAX_REPLY:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    return _parse_http(bytes(reply))


def _parse_http(reply: bytes) -> tuple[int, bytes] | None:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split()
    if len(status) < 2 or not status[1].isdigit():
        return None
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        decoded = bytearray()
        try:
            while body:
                size_line, _, body = body.partition(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                decoded += body[:size]
                body = body[size + 2 :]
        except ValueError:
            return None
        body = bytes(decoded)
    return int(status[1]), body


def _request(method: str, target: str) -> str:
    # The server closes the connection after its answer: reading to the end reads it all.
    body = "Content-Length: 0\r\n" if method == "POST" else ""
    return f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n{body}Connection: close\r\n\r\n"


def api_json(paths: list[str], target: str, deadline: float) -> Any:
    for path in paths:
        answer = _api(path, _request("GET", target), deadline)
        if answer is not None and answer[0] == 200:
            try:
                return json.loads(answer[1])
            except ValueError:
                return None
    return None


def cli_inspect(forwarder: Forwarder, handle: str, deadline: float) -> Any:
    output, _ = _run_podman(forwarder, ["container", "inspect", handle], deadline)
    try:
        data = json.loads(output) if output else None
    except ValueError:
        return None
    return data[0] if isinstance(data, list) and data else None


def _run_podman(
    forwarder: Forwarder, arguments: list[str], deadline: float
) -> tuple[bytes | None, str]:
    """podman *arguments* with the container's storage options, as the container's owner.

    Only a ``podman`` on PATH runs: never a program named by another process's command line.
    ``CONTAINER_HOST`` is left out of its environment: with it set, podman asks a remote
    service, and waits on a dead socket for longer than any budget.
    """
    program = shutil.which("podman")
    if program is None:
        return None, "no podman command is on PATH"
    environment = {
        k: v for k, v in os.environ.items() if k not in ("CONTAINER_HOST", "CONTAINER_CONNECTION")
    }
    extra: dict[str, Any] = {}
    me = _own_uid()
    if forwarder.uid is not None and me is not None and forwarder.uid != me:
        if me != 0:
            # Another user's rootless container: only its owner's podman knows it.
            return None, "it is another user's container"
        # The owner's podman gets none of root's settings (its CONTAINERS_CONF may be a
        # file only root can read): a plain environment of that user's own.
        environment = {k: v for k, v in environment.items() if k in ("PATH", "LANG", "TZ")}
        extra = _as_owner(forwarder, environment)
    command = [program, *forwarder.storage, *arguments]
    return _run(command, environment, deadline, extra)


#: Where rootless podman keeps a user's containers, under that user's home.
_HOME_STORAGE = "/.local/share/containers/storage"


def _as_owner(forwarder: Forwarder, environment: dict[str, str]) -> dict[str, Any]:
    """Run as the owner of a rootless container, with the home and runtime directory its
    podman ran with (read from its storage options), and none of root's groups."""
    import pwd

    assert forwarder.uid is not None
    uid = gid = forwarder.uid
    with contextlib.suppress(KeyError):
        entry = pwd.getpwuid(uid)
        gid = entry.pw_gid
        environment.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)
    storage = dict(zip(forwarder.storage[::2], forwarder.storage[1::2], strict=True))
    root = storage.get("--root", "")
    if root.endswith(_HOME_STORAGE):
        environment["HOME"] = root.removesuffix(_HOME_STORAGE)
    runroot = storage.get("--runroot", "")
    if os.path.basename(runroot) == "containers":
        environment["XDG_RUNTIME_DIR"] = os.path.dirname(runroot)
    return {"user": uid, "group": gid, "extra_groups": [], "cwd": "/"}


def _run(
    command: list[str], environment: dict[str, str], deadline: float, extra: dict[str, Any]
) -> tuple[bytes | None, str]:
    """Run *command* until *deadline*: its output (``None`` unless it succeeded), and the
    last of what it said on stderr."""
    system = _platform.system
    left = deadline - time.monotonic()
    if left <= 0:
        return None, "no time was left to ask"
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            start_new_session=system.process_groups,
            **extra,
        )
    except (OSError, ValueError) as error:
        return None, str(error)
    try:
        output, errors = process.communicate(timeout=left)
    except subprocess.TimeoutExpired:
        system.signal_group(process, system.kill_signal)  # a hung runtime and its helpers
        process.communicate()
        return None, f"it did not answer within {left:.1f} s"
    said = " ".join(errors.decode(errors="replace").split())[-MAX_TEXT:]
    return (output[:MAX_REPLY] if process.returncode == 0 else None), said


# -- stopping ----------------------------------------------------------------------------------


def stop_command(container: Container, timeout: float) -> str:
    """The command that stops *container* with *timeout* seconds' grace, as a person types it."""
    return f"{container.runtime} stop -t {math.ceil(timeout)} {container.handle}"


def stop(forwarder: Forwarder, container: Container, timeout: float) -> str:
    """Stop *container* through its runtime, giving it *timeout* seconds before it is killed.

    The forwarder is never signalled: its runtime ends it once the container stops.

    :returns: how it was stopped, in words.
    :raises OSError: the runtime refused, or could not be reached.
    """
    grace = math.ceil(timeout)
    handle = container.id or container.handle
    if handle is None:
        msg = f"cannot tell which {container.runtime} container holds the port"
        raise OSError(msg)
    # Stopping takes up to the grace, then the runtime kills and cleans up.
    deadline = time.monotonic() + grace + 30
    for path in sockets(container.runtime, forwarder.uid):
        answer = _api(path, _request("POST", f"/containers/{handle}/stop?t={grace}"), deadline)
        if answer is not None and answer[0] in (204, 304):
            return f"stopped through the API at {path}"
    if container.runtime == "podman":
        output, why = _run_podman(forwarder, ["stop", "-t", str(grace), handle], deadline)
    else:
        program = shutil.which("docker")
        output, why = None, "its API did not answer and no docker command is on PATH"
        if program is not None:
            command = [program, "stop", "-t", str(grace), handle]
            output, why = _run(command, dict(os.environ), deadline, {})
    if output is not None:
        return f"`{stop_command(container, timeout)}`"
    msg = f"could not stop {container.runtime} container {container.handle}: {why or 'it failed'}"
    raise OSError(msg)
