"""Port ranges: the ``LOCALPORT_RANGE`` setting, and the order in which candidates are tried."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from ._arguments import check_range, env_flag, parse_range

if TYPE_CHECKING:
    import random
    from collections.abc import Iterator

#: The IANA dynamic/private range (RFC 6335): ports no service registers.
DEFAULT_RANGE: tuple[int, int] = (49152, 65535)
RANGE_ENV = "LOCALPORT_RANGE"


#: Set to 1 to let a range include privileged ports (below 1024).
ALLOW_PRIVILEGED_ENV = "LOCALPORT_ALLOW_PRIVILEGED"
#: Ports below this are privileged: only root (or CAP_NET_BIND_SERVICE) binds them, and
#: system services (ssh, http, dns) live there.
FIRST_UNPRIVILEGED = 1024


def configured_range(port_range: object | None) -> tuple[int, int]:
    """The range to pick from: the argument, else ``LOCALPORT_RANGE``, else 49152-65535.

    A range that reaches below 1024 is refused unless ``LOCALPORT_ALLOW_PRIVILEGED=1``: a
    walk there would hand a test or dev server the port of a system service that is down.

    :raises ValueError: naming ``port_range`` or ``LOCALPORT_RANGE``.
    """
    if port_range is not None:
        chosen, source = check_range(port_range), "port_range"
    else:
        env = os.environ.get(RANGE_ENV, "").strip()
        if not env:
            return DEFAULT_RANGE
        chosen, source = parse_range(env, RANGE_ENV), RANGE_ENV
    return check_unprivileged(chosen, source)


def check_unprivileged(port_range: tuple[int, int], source: str) -> tuple[int, int]:
    """*port_range*, unless it reaches below 1024 without ``LOCALPORT_ALLOW_PRIVILEGED=1``.

    :raises ValueError: naming *source* (the argument, option or variable).
    """
    low, high = port_range
    if low < FIRST_UNPRIVILEGED and not env_flag(ALLOW_PRIVILEGED_ENV):
        msg = (
            f"{source} {low}-{high} includes privileged ports (below {FIRST_UNPRIVILEGED}), "
            f"where system services live; pick from {FIRST_UNPRIVILEGED} up, or set "
            f"{ALLOW_PRIVILEGED_ENV}=1 to allow it (reserve(PORT) of one port needs no setting)"
        )
        raise ValueError(msg)
    return port_range


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
