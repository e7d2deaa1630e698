"""The Windows answers: psutil for everything, and Windows' own socket-sharing rules.

Decided from Microsoft's documentation, not measured here: on Windows ``SO_REUSEADDR`` lets a
socket *take over* a port another socket has bound, so guards and server sockets stay plain,
and a probe sets ``SO_EXCLUSIVEADDRUSE`` so that it fails beside any bound socket.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from typing import TYPE_CHECKING

from .portable import Portable

if TYPE_CHECKING:
    import subprocess


class Windows(Portable):
    """Answers for Windows."""

    name = "windows"
    posix_permissions = False
    process_groups = False
    posix_shell_words = False
    shell = (os.environ.get("COMSPEC", "cmd.exe"), "/d", "/c")

    def pid_alive(self, pid: int) -> bool:
        import psutil

        return pid > 0 and bool(psutil.pid_exists(pid))

    def signal_group(self, process: subprocess.Popen[bytes], signum: int) -> None:
        with contextlib.suppress(OSError):  # gone already
            process.send_signal(signum)

    def default_lock_dir(self) -> str:
        # The Windows temporary directory is already per user.
        return os.path.join(tempfile.gettempdir(), "localport")

    def set_probe_options(self, sock: socket.socket, *, reuse: bool) -> None:
        # Without it a Windows bind may succeed beside a socket bound with SO_REUSEADDR.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]

    def set_shared_address(self, sock: socket.socket) -> None:
        pass  # SO_REUSEADDR would let this socket steal a bound port here
