"""``localport wait``: until a port is listened on, or let go, for shell scripts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import WaitTimeoutError
from .._wait import wait_until_free, wait_until_listening
from ._render import print_json
from ._shared import EXIT_OK, EXIT_TIMEOUT, EXIT_USAGE, CommandError

if TYPE_CHECKING:
    import argparse

    from .._arguments import Proto


def wait_command(arguments: argparse.Namespace) -> int:
    port, host, timeout = arguments.port, arguments.host, arguments.timeout
    if arguments.udp and not arguments.free:
        raise CommandError("--udp goes with --free: only TCP ports are listened on", EXIT_USAGE)
    proto: Proto = "udp" if arguments.udp else "tcp"
    state = "free" if arguments.free else "listening"
    try:
        if arguments.free:
            wait_until_free(port, host=host, proto=proto, timeout=timeout)
        else:
            wait_until_listening(port, host=host, timeout=timeout)
    except WaitTimeoutError:
        what = "still held" if arguments.free else "nothing listened on it"
        raise CommandError(
            f"port {port}: {what} after {timeout:g} s",
            EXIT_TIMEOUT,
            port=port,
            host=host,
            proto=proto,
            waited_for=state,
            timeout=timeout,
        ) from None
    if arguments.json:
        print_json({"port": port, "host": host, "proto": proto, "state": state})
    return EXIT_OK
