"""The placeholders of a command: ``{port}``, ``{url}``, ``{host}``, ``{fd}``, and another
service's ``{port:NAME}`` and ``{url:NAME}``.

Only these are replaced; any other text in braces (a JSON argument, a shell ``${VAR}``) is
left as it is. A command that mentions its own port (``{port}``, ``{url}``, ``{fd}``,
``$PORT`` or ``${PORT}``) is a *server*: ``localport up`` reserves a port for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import PlaceholderError

if TYPE_CHECKING:
    from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"\{(port|url|host|fd)(?::([^{}]*))?\}")
# $PORT, ${PORT}, and ${PORT:-5000} and the other default forms of the shell.
_OWN_PORT = re.compile(r"\{(?:port|url|fd)\}|\$PORT(?![A-Za-z0-9_])|\$\{PORT(?:[-:=?+][^}]*)?\}")
_OTHERS = ("port", "url")


@dataclass(frozen=True)
class Address:
    """What a service's placeholders stand for."""

    port: int
    url: str
    host: str


def is_server(text: str) -> bool:
    """Whether a command mentions its own port, so that it needs one."""
    return _OWN_PORT.search(text) is not None


def wants_fd(text: str) -> bool:
    """Whether a command takes its listening socket as ``{fd}``."""
    return "{fd}" in text


def referenced_names(text: str) -> list[str]:
    """The service names a command's ``{port:NAME}`` and ``{url:NAME}`` refer to, in order.

    :raises PlaceholderError: a placeholder of a form that does not exist, such as
        ``{host:api}``, ``{fd:api}`` or ``{port:}``.
    """
    names = []
    for match in _PLACEHOLDER.finditer(text):
        kind, name = match.group(1), match.group(2)
        if name is None:
            continue
        if kind not in _OTHERS:
            msg = f"{match.group(0)}: only {{port:NAME}} and {{url:NAME}} name another service"
            raise PlaceholderError(msg, name)
        if not name.strip():
            msg = f"{match.group(0)}: the service name is missing"
            raise PlaceholderError(msg, name)
        names.append(name)
    return list(dict.fromkeys(names))


def expand(
    text: str,
    *,
    own: Address | None,
    others: Mapping[str, Address],
    fd: int | None = None,
    host: str | None = None,
) -> str:
    """*text* with every placeholder filled.

    :param own: the service's own address (``None`` for a command without a port).
    :param others: the addresses ``{port:NAME}`` and ``{url:NAME}`` may name.
    :param fd: the listening socket's descriptor for ``{fd}``.
    :param host: ``{host}`` for a command without a port of its own.
    :raises PlaceholderError: a placeholder names an unknown service, or needs a port or
        descriptor the command does not have.
    """

    def fill(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if name is not None:
            referenced_names(match.group(0))  # raises for a form that does not exist
            address = others.get(name)
            if address is None:
                msg = f"{match.group(0)}: no service named {name!r}"
                raise PlaceholderError(msg, name)
            return str(address.port) if kind == "port" else address.url
        if kind == "fd":
            if fd is None:
                msg = "{fd}: this command has no listening socket to pass"
                raise PlaceholderError(msg)
            return str(fd)
        if own is None:
            if kind == "host" and host is not None:
                return host
            msg = f"{match.group(0)}: this command has no port"
            raise PlaceholderError(msg)
        return {"port": str(own.port), "url": own.url, "host": own.host}[kind]

    return _PLACEHOLDER.sub(fill, text)


def environment_names(service: str) -> tuple[str, str]:
    """The variables that carry a service's port and URL: ``API_PORT`` and ``API_URL`` for
    ``api`` (upper case; every character that is not a letter or digit becomes ``_``)."""
    stem = re.sub(r"[^A-Z0-9]", "_", service.upper())
    if stem[:1].isdigit():
        stem = f"_{stem}"
    return f"{stem}_PORT", f"{stem}_URL"
