"""Every sentence localport says about who holds a port.

:func:`explain` turns holders into what follows "port N is in use": who, where, since when, and
what to do. :func:`reservation_sentence` describes a localport reservation, for holders and for
the refusals of :func:`localport.reserve` alike. Nothing here does I/O beyond asking which
process this is: the facts arrive as arguments.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING

from ._errors import advice

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._holders import Holder
    from ._registry import ReservationInfo

#: A port whose live reservation lost its lock file (see ``ReservationInfo.compromised``).
COMPROMISED_SENTENCE = (
    "(reserved by localport: a live reservation still holds it, although its lock file was "
    "deleted or replaced under it; see `localport list`)"
)
_TIME_WAIT_SECONDS = 60  # Linux TCP_TIMEWAIT_LEN; other systems use 30-120 s


def explain(
    port: int,
    holders: Sequence[Holder],
    *,
    host: str | None = None,
    instead: str | None = None,
) -> str:
    """What follows "port N is in use": who holds it and what to do, in one sentence.

    Special cases get their own sentence: TIME_WAIT leftovers only, another user's process
    whose PID cannot be read, a listener on IPv6 only, a localport reservation not yet bound.
    *instead* is the advice to end with; by default, that of :data:`localport._errors.advice`
    ("call reserve() without a port" for the Python API).
    """
    if instead is None:
        instead = advice.get().another_port
    if not holders:
        return (
            "(no holder visible from here: it may be in another network namespace or "
            "container, or was freed a moment ago)"
        )
    live = [h for h in holders if h.status != "TIME_WAIT"]
    if not live:
        return (
            f"only by TIME_WAIT leftovers of closed connections; it is free again within "
            f"{_TIME_WAIT_SECONDS} s, and a server that sets SO_REUSEADDR can bind it now"
        )
    first = live[0]
    if first.status == "RESERVED" and first.reservation is not None:
        return reservation_sentence(first.reservation, command=first.command, instead=instead)
    if first.container is not None:
        text = container_sentence(port, first, instead)
    else:
        text = _process_sentence(first, host, instead)
    others = len({h.pid for h in live if h.pid != first.pid})
    if others == 1:
        text += " (1 other process holds it too)"
    elif others:
        text += f" ({others} other processes hold it too)"
    return text


def _process_sentence(first: Holder, host: str | None, instead: str) -> str:
    text = f"by {_who(first)}"
    where = _where(first, host)
    if where:
        text += f", {where}"
    if first.started is not None and first.pid is not None:
        text += time.strftime(" since %H:%M", time.localtime(first.started))
    return text + _advice(first, instead)


def container_sentence(port: int, holder: Holder, instead: str) -> str:
    """A port a container publishes: which container, and how to stop it.

    Where the runtime did not answer, the container is named from its port forwarder's command
    line, and the sentence says so and how to learn more.
    """
    container = holder.container
    assert container is not None
    runtime = container.runtime
    handle = container.handle
    # The program's own name: a forwarder's process name may be cut short (15 characters).
    program = os.path.basename(holder.cmdline[0]) if holder.cmdline else holder.process_name
    forwarder = f"{program or 'its forwarder'} (PID {holder.pid})"
    if container.answered and handle:
        details = []
        if container.project:
            details.append(f"compose project {container.project}")
        if container.service:
            details.append(f"service {container.service}")
        if container.image:
            details.append(f"image {container.image}")
        text = f"by {runtime} container {handle}"
        if details:
            text += f" ({', '.join(details)})"
        text += ", which publishes it"
        inner = container.inner_address
        if inner and inner.startswith(":"):  # rootless: the runtime gives no address
            text += f" and forwards to port {inner[1:]} inside it"
        elif inner:
            text += f" and forwards to {inner}"
    elif handle:
        text = f"by {runtime} container {handle}"
        if container.short_id and container.short_id != handle:
            text += f" (id {container.short_id})"
        text += (
            f", whose port forwarder {forwarder} holds it; {runtime} did not answer, so its "
            f"image and labels are unknown (`{runtime} inspect {handle}` shows them)"
        )
    else:
        text = f"by a {runtime} container"
        if container.inner_address:
            text += f" at {container.inner_address}"
        owner = f" as {holder.username}" if holder.username else ""
        text += (
            f", whose port forwarder {forwarder} holds it; which container could not be learned "
            f"(`{runtime} ps --filter publish={port}`{owner} names it)"
        )
        return f"{text}; stop that container with `{runtime} stop NAME`, or {instead}"
    return (
        f"{text}; stop it with `{runtime} stop {handle}` or `localport kill {port}`, or {instead}"
    )


def reservation_sentence(
    info: ReservationInfo, *, command: str = "", instead: str | None = None
) -> str:
    """A localport reservation in words: who made it, and its lease if it has one.

    With *instead* (advice such as "call reserve() without a port"), the sentence goes on to
    say what to do; without, it is the bare parenthesis a refusal carries.
    """
    named = f"name {info.name!r}, " if info.name else ""
    own = info.pid == os.getpid()
    who = f"{named}this process" if own else f"{named}PID {info.pid}"
    if command and not own:
        who += f", {short_command(command)}"
    if info.lease_until is not None:
        until = time.strftime("%H:%M:%S", time.localtime(info.lease_until))
        text = f"(leased by localport until {until}: {who})"
        return f"{text}; {instead}" if instead else text
    text = f"(reserved by localport: {who})"
    if instead:
        text += f" but nothing listens on it yet; release that reservation or {instead}"
    return text


#: A lock held by a process that has not described itself yet.
RESERVATION_BEING_MADE = "(reserved by localport: a reservation is being made)"


def busy_address(endpoint_text: str, proto: str) -> str:
    """Where a probe found a port busy, when nobody could be named: ``on 127.0.0.1 (tcp)``."""
    return f"on {endpoint_text} ({proto})"


def short_command(command: str, limit: int = 80) -> str:
    """The command on one line (a ``python -c`` script has newlines), cut to *limit*."""
    command = " ".join(command.split())
    return command if len(command) <= limit else command[: limit - 3] + "..."


def _who(holder: Holder) -> str:
    if holder.pid == os.getpid():
        return "this process"
    if holder.pid is None:
        uid = "an unknown user" if holder.uid is None else f"uid {holder.uid}"
        user = f" ({holder.username})" if holder.username else ""
        return f"a process of {uid}{user}, pid unknown: run as root to see which process"
    # The program as people name it ("flask run", not the virtualenv's interpreter path).
    named = ""
    if holder.cmdline:
        # Imported here: every reserve() imports this module, and only a message needs names.
        from ._command_name import command_name

        named = command_name(holder.cmdline)
    details = [part for part in (named or short_command(holder.command),) if part]
    if holder.username:
        details.append(f"user {holder.username}")
    if holder.reservation is not None and holder.reservation.name:
        details.append(f"localport name {holder.reservation.name!r}")
    inside = f" ({', '.join(details)})" if details else ""
    return f"PID {holder.pid}{inside}"


_VERBS = {
    "LISTEN": "listening on",
    "BOUND": "bound (not listening) to",
    "ESTABLISHED": "connected on",
    "CONNECTED": "connected on",
}


def _where(holder: Holder, host: str | None) -> str:
    if holder.local_address is None:
        return ""
    text = f"{_VERBS.get(holder.status, f'{holder.status} on')} {holder.address_text}"
    if holder.status == "ESTABLISHED" and holder.remote_address is not None:
        remote_host, remote_port = holder.remote_address
        remote = f"[{remote_host}]" if ":" in remote_host else remote_host
        text = f"using it for a connection with {remote}:{remote_port}"
    elif (
        holder.family == socket.AF_INET6
        and holder.v6only
        and holder.local_address[0] in ("::1", "::")
    ):
        ipv4_consumer = host is None or ":" not in host
        if ipv4_consumer:
            text += (
                " (IPv6 only; 'localhost' may resolve to it, so a server on 127.0.0.1 "
                "would get only part of its clients)"
            )
    return text


def _advice(holder: Holder, instead: str) -> str:
    if holder.status == "ESTABLISHED":
        return f"; it frees when that connection closes, or {instead}"
    if holder.pid == os.getpid():
        return f"; close that socket first, or {instead}"
    if holder.pid is None:
        return f"; {instead} to get a free one"
    return f"; stop it with `kill {holder.pid}` or {instead}"
