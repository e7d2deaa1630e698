"""Ranges that reach below 1024 are refused before any I/O, unless explicitly allowed.

Nothing here binds a port: a refused range touches nothing, and the opt-in is shown by a
check that passes on to the next argument check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

import localport
from localport._ranges import configured_range

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

CALLS: list[Any] = [
    pytest.param(lambda: localport.reserve(port_range=(1, 1023)), "port_range 1-1023", id="pair"),
    pytest.param(lambda: localport.reserve(port_range="80-80"), "port_range 80-80", id="text"),
    pytest.param(
        lambda: localport.reserve_many(2, port_range=(1000, 2000)),
        "port_range 1000-2000",
        id="reserve_many",
    ),
    pytest.param(
        lambda: localport.reserve(29820, fallback=True, port_range=(1023, 1030)),
        "port_range 1023-1030",
        id="fallback",
    ),
]


@pytest.mark.parametrize(("call", "named"), CALLS)
def test_a_privileged_range_is_refused_naming_it_before_anything_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: Callable[[], object], named: str
) -> None:
    missing = tmp_path / "never-made"
    monkeypatch.setenv("LOCALPORT_DIR", str(missing))

    with pytest.raises(ValueError, match=f"{named} includes privileged ports") as info:
        call()
    assert "LOCALPORT_ALLOW_PRIVILEGED=1" in str(info.value)
    assert not missing.exists()  # no lock directory made, so no lock file either


def test_a_privileged_localport_range_is_refused_by_the_api_and_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "never-made"
    monkeypatch.setenv("LOCALPORT_DIR", str(missing))
    monkeypatch.setenv("LOCALPORT_RANGE", "1-1023")

    with pytest.raises(ValueError, match="LOCALPORT_RANGE 1-1023 includes privileged ports"):
        localport.reserve()
    result = subprocess.run(
        [sys.executable, "-m", "localport", "reserve"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "LOCALPORT_RANGE 1-1023 includes privileged ports" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not missing.exists()


def test_a_privileged_plugin_range_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("--localport-range=80-90")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--localport-range 80-90 includes privileged ports*"])


@pytest.mark.parametrize("setting", ["1", "yes"])
def test_the_opt_in_lets_a_privileged_range_through(
    monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    monkeypatch.setenv("LOCALPORT_ALLOW_PRIVILEGED", setting)
    assert configured_range((1, 1023)) == (1, 1023)
    monkeypatch.setenv("LOCALPORT_RANGE", "80-80")
    assert configured_range(None) == (80, 80)
    # Through the public API: the range check passes and the next check (count) speaks.
    with pytest.raises(ValueError, match="count 2000 is more than the 1023 ports"):
        localport.reserve_many(2000, port_range=(1, 1023))


def test_an_invalid_opt_in_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALPORT_ALLOW_PRIVILEGED", "please")
    with pytest.raises(ValueError, match="LOCALPORT_ALLOW_PRIVILEGED must be 1 or 0"):
        localport.reserve(port_range=(80, 90))


def test_ranges_from_1024_up_need_no_opt_in() -> None:
    assert "LOCALPORT_ALLOW_PRIVILEGED" not in os.environ
    assert configured_range((1024, 1024)) == (1024, 1024)
    assert configured_range("29821-29822") == (29821, 29822)
