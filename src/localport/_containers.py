"""Containers behind a port: which runtime's port forwarder holds it, and which container it is.

A port a container publishes is held on the host by its runtime's forwarder, not by the
server inside: rootful podman's ``conmon`` (the container's id follows ``-c`` on its command
line, its name ``-n``), rootless podman's ``rootlessport`` (its command line is that word alone;
it lives in the container's network namespace, where the container's processes are children of
the container's ``conmon``), and Docker's ``docker-proxy`` (its command line carries the
container's address and port). :func:`recognise` reads that from a process's facts, and costs
nothing for any other process. :class:`Lookup` asks the runtime for the rest (image, compose
labels, the address inside): its API socket first, its command-line tool where no socket
answers, all under one short budget; a runtime that does not answer only leaves the container
named from the forwarder's command line. :mod:`localport._runtime` does the asking, and
stops containers.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import _platform
from ._runtime import MAX_TEXT, api_json, cli_inspect, sockets

if TYPE_CHECKING:
    from ._platform import ProcessFacts

#: Seconds for every runtime lookup of one ``who_holds()`` or ``listening()`` call together:
#: the answer comes within 2 s even when a runtime hangs.
BUDGET = 1.5
#: The share of what is left that an API socket may use before the command-line tool is asked.
_SOCKET_SHARE = 0.5
_ID = re.compile(r"[0-9a-f]{12,64}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}\Z")
_IP = re.compile(r"[0-9A-Fa-f.:]{2,45}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: conmon's ``--exit-command-arg`` options that say which storage the container lives in: the
#: runtime's command-line tool needs the same to find it.
_STORAGE_OPTIONS = ("--root", "--runroot", "--tmpdir", "--storage-driver")
#: An absolute path, or a storage driver's name (``overlay``, ``vfs``).
_STORAGE_VALUE = re.compile(r"(/[^\x00-\x1f]{0,4000}|[a-z0-9]{1,32})\Z")
_FORWARDERS = {"conmon": "podman", "rootlessport": "podman", "docker-proxy": "docker"}


@dataclass(frozen=True)
class Container:
    """A container that publishes a port, as its runtime (or its port forwarder) describes it.

    :ivar runtime: ``"podman"`` or ``"docker"``.
    :ivar id: the container's full id, if known.
    :ivar name: its name, if known.
    :ivar image: its image, if the runtime answered.
    :ivar project: its compose project (label ``com.docker.compose.project``), if labelled.
    :ivar service: its compose service (label ``com.docker.compose.service``), if labelled.
    :ivar inner_address: where the forwarder sends connections, ``"10.88.0.7:80"`` (``":80"``
        when the runtime names the port but not the address), if known.
    :ivar answered: whether the runtime itself answered; ``False`` when only the forwarder's
        command line could be read, so image and labels are unknown.
    """

    runtime: str
    id: str | None = None
    name: str | None = None
    image: str | None = None
    project: str | None = None
    service: str | None = None
    inner_address: str | None = None
    answered: bool = False

    @property
    def short_id(self) -> str | None:
        """The id as the runtimes print it: its first 12 characters."""
        return self.id[:12] if self.id else None

    @property
    def handle(self) -> str | None:
        """What to pass to the runtime's commands: the name, else the short id."""
        return self.name or self.short_id


@dataclass(frozen=True)
class Forwarder:
    """A runtime's port forwarder, as its process facts describe it.

    :ivar candidates: for ``rootlessport``, the containers in its network namespace (one,
        unless several share it); for the others, empty.
    :ivar storage: podman's storage options from conmon's exit command.
    """

    kind: str
    runtime: str
    pid: int
    uid: int | None
    id: str | None = None
    name: str | None = None
    inner_address: str | None = None
    storage: tuple[str, ...] = ()
    candidates: tuple[Forwarder, ...] = ()

    def container(self) -> Container:
        """What the command line alone says."""
        return Container(self.runtime, self.id, self.name, inner_address=self.inner_address)


def recognise(facts: ProcessFacts) -> Forwarder | None:
    """The port forwarder *facts* describe, or ``None`` for any other process."""
    kind = _kind(facts)
    if kind == "conmon":
        return _conmon(facts)
    if kind == "docker-proxy":
        return _docker_proxy(facts)
    if kind == "rootlessport":
        return _rootlessport(facts)
    return None


def _kind(facts: ProcessFacts) -> str | None:
    program = os.path.basename(facts.cmdline[0]) if facts.cmdline else None
    for name in (facts.name, program):
        if name in _FORWARDERS:
            return name
    return None


def _options(cmdline: tuple[str, ...]) -> dict[str, str]:
    """``-x VALUE`` and ``--xx VALUE`` pairs (the first of each), and ``--xx=VALUE``."""
    found: dict[str, str] = {}
    for index, part in enumerate(cmdline[1:], start=1):
        if part.startswith("-") and "=" in part:
            key, _, value = part.partition("=")
            found.setdefault(key, value)
        elif part.startswith("-") and index + 1 < len(cmdline):
            found.setdefault(part, cmdline[index + 1])
    return found


def _checked(value: str | None, pattern: re.Pattern[str]) -> str | None:
    return value if value is not None and pattern.match(value) else None


def _conmon(facts: ProcessFacts) -> Forwarder:
    options = _options(facts.cmdline)
    exit_args = [
        facts.cmdline[i + 1]
        for i in range(len(facts.cmdline) - 1)
        if facts.cmdline[i] == "--exit-command-arg"
    ]
    storage: list[str] = []
    for index, part in enumerate(exit_args[:-1]):
        value = exit_args[index + 1]
        if part in _STORAGE_OPTIONS and _STORAGE_VALUE.match(value):
            storage += [part, value]
    return Forwarder(
        "conmon",
        "podman",
        facts.pid,
        facts.uid,
        id=_checked(options.get("-c") or options.get("--cid"), _ID),
        name=_checked(options.get("-n") or options.get("--name"), _NAME),
        storage=tuple(storage),
    )


def _docker_proxy(facts: ProcessFacts) -> Forwarder:
    options = _options(facts.cmdline)
    address = _checked(options.get("-container-ip"), _IP)
    port = options.get("-container-port", "")
    inner = None
    if address and port.isdigit() and len(port) <= 5:
        inner = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return Forwarder("docker-proxy", "docker", facts.pid, facts.uid, inner_address=inner)


def _rootlessport(facts: ProcessFacts) -> Forwarder:
    system = _platform.system
    candidates: dict[str | None, Forwarder] = {}
    for parent in sorted(system.namespace_parents(facts.pid) - {facts.pid}):
        info = system.process_facts(parent)
        if info is not None and _kind(info) == "conmon":
            found = _conmon(info)
            candidates.setdefault(found.id or found.name, found)
    forwarder = Forwarder("rootlessport", "podman", facts.pid, facts.uid)
    if len(candidates) == 1:
        (only,) = candidates.values()
        return replace(only, kind="rootlessport", pid=facts.pid, candidates=(only,))
    return replace(forwarder, candidates=tuple(candidates.values()))


class Lookup:
    """Containers behind forwarders, asked of their runtimes under one budget.

    One per ``who_holds()`` or ``listening()`` call: the budget starts at the first forwarder,
    and each forwarder is asked about once, however many of its sockets hold ports.
    """

    def __init__(self, budget: float = BUDGET) -> None:
        self._budget = budget
        self._deadline: float | None = None
        self._known: dict[tuple[int, int, str], Container | None] = {}
        #: What each runtime said, by what it was asked: a container publishing several
        #: ports (``list --all``) is asked about once.
        self._answers: dict[tuple[str, str], Any] = {}

    def container(self, facts: ProcessFacts | None, port: int, proto: str) -> Container | None:
        """The container whose forwarder *facts* describe, or ``None`` for another process."""
        if facts is None or _kind(facts) is None:
            return None  # an ordinary process: nothing more is read
        key = (facts.pid, port, proto)
        if key not in self._known:
            forwarder = recognise(facts)
            if self._deadline is None:
                self._deadline = time.monotonic() + self._budget
            self._known[key] = (
                None
                if forwarder is None
                else describe(forwarder, port, proto, self._deadline, self._answers)
            )
        return self._known[key]


def describe(
    forwarder: Forwarder,
    port: int,
    proto: str,
    deadline: float,
    answers: dict[tuple[str, str], Any] | None = None,
) -> Container:
    """*forwarder*'s container, with what its runtime says by *deadline* (``time.monotonic``).

    Never fails: without the runtime's answer, the container the command line names.

    :param answers: what runtimes said earlier in the same call, by question; filled in.
    """
    answers = {} if answers is None else answers
    choices = forwarder.candidates or (forwarder,)
    for choice in choices:
        found = _ask(choice, port, proto, deadline, answers)
        if found is not None and (len(choices) == 1 or found.inner_address):
            return found
    return forwarder.container()


def _ask(
    forwarder: Forwarder,
    port: int,
    proto: str,
    deadline: float,
    answers: dict[tuple[str, str], Any],
) -> Container | None:
    if forwarder.runtime == "docker":
        key = ("docker", str(forwarder.uid))
        if key not in answers:
            paths = sockets("docker", forwarder.uid)
            answers[key] = api_json(paths, "/containers/json", deadline)
        listing = answers[key]
        if not isinstance(listing, list):
            return None
        return _from_listing(listing, forwarder, port, proto)
    handle = forwarder.id or forwarder.name
    if handle is None:
        return None
    key = ("podman", f"{forwarder.uid}/{handle}")
    if key not in answers:
        share = time.monotonic() + (deadline - time.monotonic()) * _SOCKET_SHARE
        data = api_json(sockets("podman", forwarder.uid), f"/containers/{handle}/json", share)
        answers[key] = data if isinstance(data, dict) else cli_inspect(forwarder, handle, deadline)
    data = answers[key]
    if not isinstance(data, dict):
        return None
    return _from_inspect(data, "podman", port, proto)


# -- what the runtimes say ---------------------------------------------------------------------


def _text(value: object) -> str | None:
    """A name, image or label as the runtime gave it, cut to MAX_TEXT characters; ``None``
    for one with control characters, which no valid name has and a terminal would obey."""
    if not isinstance(value, str) or not value or _CONTROL.search(value):
        return None
    return value[:MAX_TEXT]


def _labelled(container: Container, labels: object) -> Container:
    if not isinstance(labels, dict):
        return container
    return replace(
        container,
        project=_text(labels.get("com.docker.compose.project")),
        service=_text(labels.get("com.docker.compose.service")),
    )


def _joined(address: object, port: object) -> str | None:
    if not isinstance(port, int) and not (isinstance(port, str) and port.isdigit()):
        return None
    address = _checked(address if isinstance(address, str) else None, _IP) or ""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _from_inspect(data: dict[str, Any], runtime: str, port: int, proto: str) -> Container:
    """A container from ``podman inspect`` or the API's ``/containers/{id}/json``."""
    config = data.get("Config") if isinstance(data.get("Config"), dict) else {}
    network = data.get("NetworkSettings") if isinstance(data.get("NetworkSettings"), dict) else {}
    assert isinstance(config, dict)
    assert isinstance(network, dict)
    address = network.get("IPAddress")
    networks = network.get("Networks")
    if not address and isinstance(networks, dict):
        address = next((n.get("IPAddress") for n in networks.values() if isinstance(n, dict)), None)
    inner = None
    ports = network.get("Ports")
    for key, bindings in ports.items() if isinstance(ports, dict) else ():
        number, _, kind = str(key).partition("/")
        if (kind or "tcp") != proto or not isinstance(bindings, list):
            continue
        if any(isinstance(b, dict) and str(b.get("HostPort")) == str(port) for b in bindings):
            inner = _joined(address, number)
    name = _text(data.get("Name"))
    found = Container(
        runtime,
        _checked(_text(data.get("Id")), _ID),
        name.lstrip("/") if name else None,
        _text(data.get("ImageName")) or _text(config.get("Image")),
        inner_address=inner,
        answered=True,
    )
    return _labelled(found, config.get("Labels"))


def _from_listing(
    listing: list[Any], forwarder: Forwarder, port: int, proto: str
) -> Container | None:
    """The container of ``GET /containers/json`` that *forwarder* forwards to."""
    for item in listing:
        if not isinstance(item, dict):
            continue
        ports = item.get("Ports") if isinstance(item.get("Ports"), list) else []
        assert isinstance(ports, list)
        published = [p for p in ports if isinstance(p, dict) and p.get("PublicPort") == port]
        published = [p for p in published if p.get("Type", "tcp") == proto]
        settings = item.get("NetworkSettings")
        networks = settings.get("Networks") if isinstance(settings, dict) else None
        networks = networks if isinstance(networks, dict) else {}
        addresses = [n.get("IPAddress") for n in networks.values() if isinstance(n, dict)]
        inner = forwarder.inner_address
        if inner is not None:
            # docker-proxy names the container's address: one container has it.
            reached = {
                _joined(a, p.get("PrivatePort"))
                for a in addresses
                for p in ports
                if isinstance(p, dict)
            }
            if inner not in reached:
                continue
        elif not published:
            continue
        names = item.get("Names")
        name = _text(names[0]) if isinstance(names, list) and names else None
        found = Container(
            forwarder.runtime,
            _checked(_text(item.get("Id")), _ID),
            name.lstrip("/") if name else None,
            _text(item.get("Image")),
            inner_address=inner,
            answered=True,
        )
        return _labelled(found, item.get("Labels"))
    return None
