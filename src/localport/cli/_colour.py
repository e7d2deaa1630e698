"""One colour policy for every command: when to colour, and the few colours used.

Colour is on when the stream is a terminal, unless ``NO_COLOR`` is set to anything but the
empty string (https://no-color.org) or ``TERM=dumb``; ``--color always`` or ``never`` overrides
all of that. :func:`choose` is called once, by ``main()``, with the ``--color`` option.
"""

from __future__ import annotations

import os
from typing import IO, Literal

Choice = Literal["auto", "always", "never"]
CHOICES: tuple[Choice, ...] = ("auto", "always", "never")

#: SGR codes by meaning.
_STYLES = {
    "good": "32",  # green: listening, ready
    "reserved": "36",  # cyan: a reservation
    "warn": "33",  # yellow: warnings, a port other machines reach
    "bad": "31",  # red: errors, compromised
    "faint": "2",  # leftovers: TIME_WAIT
}

#: One colour per service of ``up``, in turn: cyan, yellow, green, magenta, blue, red.
SERVICE_COLOURS = ("36", "33", "32", "35", "34", "31")

#: The style of each state in a table (``who``, ``list``, ``ports``).
_STATES = {
    "LISTEN": "good",
    "listening": "good",
    "RESERVED": "reserved",
    "reserved": "reserved",
    "TIME_WAIT": "faint",
    "BOUND": "warn",
    "ESTABLISHED": "warn",
    "CONNECTED": "warn",
    "taken": "warn",
    "network": "warn",
}

_choice: list[Choice] = ["auto"]


def choose(choice: str) -> None:
    """Set the ``--color`` choice for this process: ``auto``, ``always`` or ``never``."""
    if choice not in CHOICES:
        msg = f"--color is one of {', '.join(CHOICES)}, not {choice!r}"
        raise ValueError(msg)
    _choice[0] = choice


def wanted(stream: IO[str]) -> bool:
    """Whether text written to *stream* is coloured."""
    if _choice[0] != "auto":
        return _choice[0] == "always"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def sgr(text: str, code: str) -> str:
    """*text* in the SGR colour *code*, reset after it."""
    return f"\033[{code}m{text}\033[0m" if text else text


def paint(text: str, style: str | None, stream: IO[str]) -> str:
    """*text* in *style* (``good``, ``reserved``, ``warn``, ``bad``, ``faint``) when *stream*
    is coloured; unchanged otherwise, or without a style."""
    if style is None or style not in _STYLES or not wanted(stream):
        return text
    return sgr(text, _STYLES[style])


def state_style(state: str) -> str | None:
    """The style of a state as a table shows it (``LISTEN``, ``reserved (pid 4242)``)."""
    return _STATES.get(state.split(" ", 1)[0])
