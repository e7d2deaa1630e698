"""Port ranges: validation, the ``LOCALPORT_RANGE`` setting, and the order of candidates."""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random
    from collections.abc import Iterator

#: The IANA dynamic/private range (RFC 6335): ports no service registers.
DEFAULT_RANGE: tuple[int, int] = (49152, 65535)
RANGE_ENV = "LOCALPORT_RANGE"

_KERNEL_RANGE_FILE = "/proc/sys/net/ipv4/ip_local_port_range"


def check_port(value: object, argument: str = "port") -> int:
    """Return *value* as a port number, or raise naming *argument* and what is allowed."""
    # bool is an int subclass; True as a port is a bug in the caller, never a port.
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{argument} must be an int from 1 to 65535, got {type(value).__name__} {value!r}"
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


def parse_range(text: str, argument: str = RANGE_ENV) -> tuple[int, int]:
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


def configured_range(port_range: object | None) -> tuple[int, int]:
    """The range to pick from: the argument, else ``LOCALPORT_RANGE``, else 49152-65535."""
    if port_range is not None:
        return check_range(port_range)
    env = os.environ.get(RANGE_ENV, "").strip()
    if env:
        return parse_range(env)
    return DEFAULT_RANGE


@functools.cache
def kernel_ephemeral_range() -> tuple[int, int] | None:
    """The range the kernel hands out as automatic source ports, where the OS tells us.

    Read once per process: it only orders candidates, so a change made by an administrator
    while we run costs nothing worse than a less preferred first pick. Only Linux publishes it
    as a file. On macOS and Windows the whole of 49152-65535 is the
    ephemeral range, which is why the guard socket matters more there.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Bytes, not text: a text read imports a codec module on first use (about 1 ms).
        with open(_KERNEL_RANGE_FILE, "rb") as file:
            low_text, high_text = file.read().split()
        return int(low_text), int(high_text)
    except (OSError, ValueError):
        return None


def _walk(segments: list[tuple[int, int]], rng: random.Random) -> Iterator[int]:
    """Every port of *segments* once, starting at a random one and wrapping around."""
    total = sum(high - low + 1 for low, high in segments)
    if total == 0:
        return
    start = rng.randrange(total)
    for step in range(total):
        index = (start + step) % total
        for low, high in segments:
            size = high - low + 1
            if index < size:
                yield low + index
                break
            index -= size


def candidates(
    port_range: tuple[int, int],
    kernel_range: tuple[int, int] | None,
    rng: random.Random,
) -> Iterator[int]:
    """Ports of *port_range* in the order to try them.

    The part outside the kernel's ephemeral range comes first: outgoing connections never take
    those ports, so they are the least likely to be busy or stolen. The overlap follows.
    """
    low, high = port_range
    if kernel_range is None:
        yield from _walk([port_range], rng)
        return
    k_low, k_high = kernel_range
    outside = [(low, min(high, k_low - 1)), (max(low, k_high + 1), high)]
    preferred = [(a, b) for a, b in outside if a <= b]
    overlap = [(max(low, k_low), min(high, k_high))]
    overlap = [(a, b) for a, b in overlap if a <= b]
    yield from _walk(preferred, rng)
    yield from _walk(overlap, rng)
