"""Port ranges: the ``LOCALPORT_RANGE`` setting, and the order in which candidates are tried."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from ._arguments import check_range, parse_range

if TYPE_CHECKING:
    import random
    from collections.abc import Iterator

#: The IANA dynamic/private range (RFC 6335): ports no service registers.
DEFAULT_RANGE: tuple[int, int] = (49152, 65535)
RANGE_ENV = "LOCALPORT_RANGE"


def configured_range(port_range: object | None) -> tuple[int, int]:
    """The range to pick from: the argument, else ``LOCALPORT_RANGE``, else 49152-65535."""
    if port_range is not None:
        return check_range(port_range)
    env = os.environ.get(RANGE_ENV, "").strip()
    if env:
        return parse_range(env, RANGE_ENV)
    return DEFAULT_RANGE


def _walk(segments: list[tuple[int, int]], rng: random.Random) -> Iterator[int]:
    """Every port of *segments* once, in a scattered order that differs from call to call.

    Position ``k`` of the walk is ``(start + k * stride) mod total`` for a random start and a
    random stride coprime with *total*: a permutation, so every port comes exactly once.
    Walking neighbours in order (stride 1) made a filling range slow: reservations pile up in
    runs, every walk that starts inside a run crosses all of it, and runs grow by their ends
    (linear probing's clustering: about 400 attempts per pick on a range 99% full). Scattered
    strides keep the expected attempts near ``1 / (1 - fill)``.
    """
    total = sum(high - low + 1 for low, high in segments)
    if total == 0:
        return
    start = rng.randrange(total)
    stride = rng.randrange(1, total) if total > 1 else 1
    while math.gcd(stride, total) != 1:
        stride += 1
    for step in range(total):
        index = (start + step * stride) % total
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

    The part outside the kernel's ephemeral range (*kernel_range*, where the system says)
    comes first: outgoing connections never take those ports, so they are the least likely
    to be busy or stolen. The overlap follows.
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
