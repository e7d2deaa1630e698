"""Every check of an argument, in one place, before any I/O.

The public functions, the command line and the pytest plugin all validate through these, so a
bad value gets the same sentence wherever it comes from: it names the argument, says what is
allowed, and is raised before anything is bound, locked or started. Wrong types raise
:class:`TypeError`, wrong values :class:`ValueError`.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from typing import Literal, TypeAlias, cast

Proto: TypeAlias = Literal["tcp", "udp", "both"]
#: One protocol of a socket, where ``"both"`` makes no sense.
SocketProto: TypeAlias = Literal["tcp", "udp"]
PROTOS: tuple[Proto, ...] = ("tcp", "udp", "both")

HOST_HELP = (
    "an IP address such as '127.0.0.1', '::1', '0.0.0.0' or '::', or 'localhost' "
    "(or '*': every address)"
)
#: ``host="*"``: a port free on every address of both families.
ANY_ADDRESS = "*"
REUSE_ENV = "LOCALPORT_REUSEADDR"
NAME_LIMIT = 200


def _type_name(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def check_port(value: object, argument: str = "port") -> int:
    """Return *value* as a port number, or raise naming *argument* and what is allowed."""
    # bool is an int subclass; True as a port is a bug in the caller, never a port.
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{argument} must be an int from 1 to 65535, got {_type_name(value)}"
        raise TypeError(msg)
    if not 1 <= value <= 65535:
        msg = f"{argument} must be from 1 to 65535, got {value}"
        raise ValueError(msg)
    return value


def check_range(value: object, argument: str = "port_range") -> tuple[int, int]:
    """Validate a ``(low, high)`` pair or a ``"low-high"`` string, both ends inclusive."""
    if isinstance(value, str):
        return parse_range(value, argument)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        msg = (
            f"{argument} must be a (low, high) pair of ports or a 'low-high' string, got {value!r}"
        )
        raise TypeError(msg)
    low = check_port(value[0], f"{argument}[0]")
    high = check_port(value[1], f"{argument}[1]")
    if low > high:
        msg = f"{argument} must have low <= high, got {low}-{high}"
        raise ValueError(msg)
    return low, high


def parse_range(text: str, argument: str) -> tuple[int, int]:
    """Parse ``"50000-50999"`` (inclusive); a single ``"50000"`` is a range of one port."""
    low_text, sep, high_text = text.strip().partition("-")
    if not sep:
        high_text = low_text
    try:
        low, high = int(low_text, 10), int(high_text, 10)
    except ValueError:
        msg = f"{argument} must look like '50000-50999' (two ports from 1 to 65535), got {text!r}"
        raise ValueError(msg) from None
    for end in (low, high):
        if not 1 <= end <= 65535:
            msg = f"{argument} must use ports from 1 to 65535, got {text!r}"
            raise ValueError(msg)
    if low > high:
        msg = f"{argument} must have low <= high, got {text!r}"
        raise ValueError(msg)
    return low, high


def check_seconds(value: object, argument: str) -> float:
    """A duration in seconds, > 0 (``float("inf")`` waits for ever)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{argument} must be a number of seconds > 0, got {_type_name(value)}"
        raise TypeError(msg)
    if not value > 0:
        msg = f"{argument} must be a number of seconds > 0, got {value!r}"
        raise ValueError(msg)
    return float(value)


#: The longest lease: a lease hands a port number to a process that binds it a little later.
LEASE_LIMIT = 86400.0


def check_lease(value: object) -> float:
    """The ``lease`` of :meth:`Reservation.release`: seconds from 0 to a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"lease must be a number of seconds >= 0 (a day at most), got {_type_name(value)}"
        raise TypeError(msg)
    if not (math.isfinite(value) and 0 <= value <= LEASE_LIMIT):
        msg = f"lease must be a number of seconds >= 0 (a day at most), got {value!r}"
        raise ValueError(msg)
    return float(value)


def check_bool(value: object, argument: str) -> bool:
    if not isinstance(value, bool):
        msg = f"{argument} must be True or False, got {_type_name(value)}"
        raise TypeError(msg)
    return value


def check_count(value: object) -> int:
    """``count`` of :func:`localport.reserve_many`: an int >= 1."""
    return _check_at_least_one(value, "count", kind="an int >= 1", limit=">= 1")


def check_backlog(value: object) -> int:
    """The ``listen()`` backlog: a positive int."""
    return _check_at_least_one(value, "backlog", kind="a positive int", limit="a positive int")


def _check_at_least_one(value: object, argument: str, *, kind: str, limit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{argument} must be {kind}, got {_type_name(value)}"
        raise TypeError(msg)
    if value < 1:
        msg = f"{argument} must be {limit}, got {value!r}"
        raise ValueError(msg)
    return value


def check_name(value: object) -> str | None:
    """A sticky name: 1 to 200 characters without NUL, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"name must be a str or None, got {_type_name(value)}"
        raise TypeError(msg)
    if not value or len(value) > NAME_LIMIT or "\x00" in value:
        msg = f"name must be 1 to {NAME_LIMIT} characters without NUL, got {value!r}"
        raise ValueError(msg)
    return value


def check_scope(value: object) -> str | None:
    """A sticky-name scope: a directory path, made absolute without touching the disk, or
    ``None``."""
    path = check_directory(value, "scope")
    return None if path is None else os.path.abspath(os.path.expanduser(path))


def check_proto(value: object) -> Proto:
    """``"tcp"``, ``"udp"`` or ``"both"``."""
    return cast("Proto", _check_choice(value, "proto", PROTOS))


def check_socket_proto(value: object) -> SocketProto:
    """One protocol: ``"tcp"`` or ``"udp"``."""
    return cast("SocketProto", _check_choice(value, "proto", ("tcp", "udp")))


def _check_choice(value: object, argument: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value  # the common case, before the message is built
    allowed = ", ".join(f"{choice!r}" for choice in choices[:-1]) + f" or {choices[-1]!r}"
    if not isinstance(value, str):
        msg = f"{argument} must be {allowed}, got {_type_name(value)}"
        raise TypeError(msg)
    if value not in choices:
        msg = f"{argument} must be {allowed}, got {value!r}"
        raise ValueError(msg)
    return value


def protos_of(proto: Proto) -> tuple[SocketProto, ...]:
    """The socket protocols a (checked) *proto* stands for."""
    if proto == "both":
        return ("tcp", "udp")
    return (proto,)


def normalize_host(host: object) -> str:
    """Validate *host* without any I/O and return it in canonical form."""
    if not isinstance(host, str):
        msg = f"host must be a str, {HOST_HELP}; got {_type_name(host)}"
        raise TypeError(msg)
    return _normalize_text_host(host)


@functools.lru_cache(maxsize=64)
def _normalize_text_host(host: str) -> str:
    # Cached: parsing an address with ipaddress costs more than a bind probe.
    if host.lower() == "localhost":
        return "localhost"
    if host == ANY_ADDRESS:
        return host
    import ipaddress  # only when a host is given: `localport who` never needs it

    try:
        address = ipaddress.ip_address(host.strip("[]") if host.startswith("[") else host)
    except ValueError:
        msg = f"host must be {HOST_HELP}; got {host!r} (no name but localhost is resolved)"
        raise ValueError(msg) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        msg = (
            f"host must be {HOST_HELP}; got the IPv4-mapped {host!r}: "
            f"use {str(address.ipv4_mapped)!r}, which is what a socket binds"
        )
        raise ValueError(msg)
    return str(address)


def env_flag(name: str) -> bool:
    """An on/off environment variable: unset or ``0`` is off, ``1`` is on."""
    setting = os.environ.get(name)
    if not setting:
        return False
    setting = setting.strip().lower()
    if setting in ("", "0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    msg = f"{name} must be 1 or 0 (or true/false, yes/no, on/off), got {setting!r}"
    raise ValueError(msg)


def check_reuse_address(value: object) -> bool:
    """``reuse_address``: True or False, or ``None`` for ``LOCALPORT_REUSEADDR`` (``1`` is on)."""
    if value is None:
        return env_flag(REUSE_ENV)
    return check_bool(value, "reuse_address")


def check_lock_dir(lock_dir: object) -> str | None:
    """The ``lock_dir`` argument: a non-empty path, or ``None`` for the default."""
    if lock_dir is None:
        return None
    if not isinstance(lock_dir, (str, os.PathLike)):
        msg = f"lock_dir must be a path (str or os.PathLike) or None, got {type(lock_dir).__name__}"
        raise TypeError(msg)
    path = os.fspath(lock_dir)
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        msg = f"lock_dir must be a non-empty text path without NUL, got {lock_dir!r}"
        raise ValueError(msg)
    return path


def check_text(value: object, argument: str, example: str) -> str:
    """A non-empty str (``scheme``)."""
    if not isinstance(value, str):
        msg = f"{argument} must be a str such as {example!r}, got {_type_name(value)}"
        raise TypeError(msg)
    if not value:
        msg = f"{argument} must be a non-empty str such as {example!r}, got ''"
        raise ValueError(msg)
    return value


def check_command(cmd: object, *, posix: bool) -> list[str]:
    """A command: a non-empty list of str, or a str split as a shell would (*posix* rules)."""
    if isinstance(cmd, str):
        import shlex

        cmd = shlex.split(cmd, posix=posix)
    if not (isinstance(cmd, (list, tuple)) and cmd and all(isinstance(p, str) for p in cmd)):
        msg = f"cmd must be a non-empty list of str (or a str to split), got {cmd!r}"
        raise TypeError(msg)
    if any("\x00" in part for part in cmd):
        msg = f"cmd must not contain NUL characters, got {cmd!r}"
        raise ValueError(msg)
    return list(cmd)


def check_env_var(value: object) -> list[str]:
    """``env_var``: an environment variable name, a list of them, or ``None``."""
    names = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(
        isinstance(name, str) and name.isidentifier() for name in names
    ):
        msg = (
            "env_var must be an environment variable name such as 'PORT', a list of them, "
            f"or None; got {value!r}"
        )
        raise ValueError(msg)
    return list(names)


def check_directory(value: object, argument: str) -> str | None:
    """A directory path argument (``cwd``): str or os.PathLike without NUL, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        msg = f"{argument} must be a path (str or os.PathLike) or None, got {_type_name(value)}"
        raise TypeError(msg)
    path = os.fspath(value)
    if not isinstance(path, str) or not path or "\x00" in path:
        msg = f"{argument} must be a non-empty text path without NUL, got {value!r}"
        raise ValueError(msg)
    return path


def check_environment(value: object) -> dict[str, str] | None:
    """``env``: a mapping of str to str, or ``None`` for this process's environment."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        msg = f"env must be a mapping of str to str, or None; got {value!r}"
        raise TypeError(msg)
    return dict(value)
