"""Bad input fails with a clear error naming the argument and what is allowed, before any I/O.

"No I/O" is observed, not assumed: every call below runs with ``LOCALPORT_DIR`` pointing at a
directory that does not exist yet. Any call that got as far as the lock directory would create
it (``test_a_valid_call_creates_the_missing_lock_directory`` shows that it does), so a bad call
must leave it missing.
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING, Any, Literal

import pytest

import localport

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# Deliberately wrong calls go through an untyped handle, so mypy checks everything else.
api: Any = localport

_PORT_VALUE = r"\bport must be from 1 to 65535"
_PORT_TYPE = r"\bport must be an int from 1 to 65535"
_RANGE_PAIR = r"port_range must be a \(low, high\) pair of ports or a 'low-high' string"
_RANGE_ORDER = r"port_range must have low <= high"
_RANGE_TEXT = r"port_range must look like '50000-50999'"
_PROTO = r"proto must be 'tcp', 'udp' or 'both'"
_HOST_VALUE = r"host must be an IP address such as '127.0.0.1'.* or 'localhost'"
_HOST_TYPE = r"host must be a str, an IP address such as '127.0.0.1'"
_NAME_VALUE = r"name must be 1 to 200 characters without NUL"
_NAME_TYPE = r"name must be a str or None"
_LOCK_DIR_TYPE = r"lock_dir must be a path \(str or os.PathLike\) or None"
_LOCK_DIR_VALUE = r"lock_dir must be a non-empty text path"
_COUNT_VALUE = r"count must be >= 1"
_COUNT_TYPE = r"count must be an int >= 1"


def case(
    exception: type[Exception],
    match: str,
    *,
    label: str | None = None,
    **kwargs: object,
) -> pytest.ParameterSet:
    label = label or ",".join(f"{key}={value!r}" for key, value in kwargs.items())
    return pytest.param(kwargs, exception, match, id=label)


BAD_RESERVE_ARGUMENTS = [
    case(ValueError, _PORT_VALUE, port=-1),
    case(ValueError, _PORT_VALUE, port=0),
    case(ValueError, _PORT_VALUE, port=65536),
    case(TypeError, _PORT_TYPE, port="80"),
    case(TypeError, _PORT_TYPE, port=True),
    case(TypeError, _PORT_TYPE, port=80.0),
    case(TypeError, _RANGE_PAIR, port_range=()),
    case(TypeError, _RANGE_PAIR, port_range=(1,)),
    case(ValueError, _RANGE_ORDER, port_range=(60000, 50000)),
    case(ValueError, r"port_range\[0\] must be from 1 to 65535", port_range=(0, 10)),
    case(TypeError, r"port_range\[0\] must be an int from 1 to 65535", port_range=("a", "b")),
    case(ValueError, _RANGE_TEXT, port_range="50000-"),
    case(ValueError, _RANGE_TEXT, port_range="abc"),
    case(
        ValueError, r"port_range must have low <= high, got '60000-50000'", port_range="60000-50000"
    ),
    case(ValueError, _PROTO, proto="sctp"),
    case(ValueError, _PROTO, proto="TCP"),
    case(TypeError, _PROTO, proto=6),
    case(TypeError, _PROTO, proto=None),
    case(ValueError, _HOST_VALUE, host="example.com"),
    case(ValueError, _HOST_VALUE, host=""),
    case(ValueError, _HOST_VALUE, host="999.1.1.1"),
    case(ValueError, _HOST_VALUE, host="localhost "),
    case(TypeError, _HOST_TYPE, host=127),
    case(TypeError, _HOST_TYPE, host=b"127.0.0.1"),
    case(TypeError, _HOST_TYPE, host=None),
    case(ValueError, _NAME_VALUE, name=""),
    case(TypeError, _NAME_TYPE, name=5),
    case(ValueError, _NAME_VALUE, name="a" * 201, label="name='a'*201"),
    case(ValueError, _NAME_VALUE, name="x\x00y"),
    case(TypeError, r"fallback must be True or False", fallback=1),
    case(TypeError, r"fallback must be True or False", fallback="yes"),
    case(TypeError, r"fallback must be True or False", fallback=None),
    case(TypeError, r"guard must be True or False", guard=1),
    case(TypeError, r"guard must be True or False", guard="yes"),
    case(TypeError, r"guard must be True or False", guard=None),
    case(TypeError, _LOCK_DIR_TYPE, lock_dir=5),
    case(TypeError, _LOCK_DIR_TYPE, lock_dir=b"/tmp"),
    case(ValueError, _LOCK_DIR_VALUE, lock_dir=""),
]

BAD_RESERVE_MANY_ARGUMENTS = [
    case(ValueError, _COUNT_VALUE, count=0),
    case(ValueError, _COUNT_VALUE, count=-1),
    case(TypeError, _COUNT_TYPE, count=True),
    case(TypeError, _COUNT_TYPE, count=2.0),
    case(TypeError, _COUNT_TYPE, count="3"),
    case(TypeError, _COUNT_TYPE, count=None),
    case(TypeError, r"consecutive must be True or False", count=2, consecutive=1),
    case(ValueError, _HOST_VALUE, count=2, host="example.com"),
    case(ValueError, _RANGE_TEXT, count=2, port_range="abc"),
    case(ValueError, _PROTO, count=2, proto="sctp"),
    case(TypeError, _LOCK_DIR_TYPE, count=2, lock_dir=b"/tmp"),
    case(
        ValueError,
        r"count 3 is more than the 2 ports of port_range 50000-50001",
        count=3,
        port_range=(50000, 50001),
    ),
]

BAD_IS_FREE_ARGUMENTS = [
    case(ValueError, _PORT_VALUE, port=-1),
    case(ValueError, _PORT_VALUE, port=0),
    case(ValueError, _PORT_VALUE, port=65536),
    case(TypeError, _PORT_TYPE, port="80"),
    case(TypeError, _PORT_TYPE, port=True),
    case(TypeError, _PORT_TYPE, port=80.0),
    case(TypeError, _PORT_TYPE, port=None),
    case(ValueError, _PROTO, port=50000, proto="sctp"),
    case(ValueError, _HOST_VALUE, port=50000, host="example.com"),
    case(TypeError, _LOCK_DIR_TYPE, port=50000, lock_dir=5),
]

BAD_RESERVATIONS_ARGUMENTS = [
    case(TypeError, _LOCK_DIR_TYPE, lock_dir=5),
    case(TypeError, _LOCK_DIR_TYPE, lock_dir=b"/tmp"),
    case(ValueError, _LOCK_DIR_VALUE, lock_dir=""),
]


@pytest.fixture
def missing_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``LOCALPORT_DIR`` pointing at a directory that any I/O would create."""
    path = tmp_path / "never"
    monkeypatch.setenv("LOCALPORT_DIR", str(path))
    return path


def test_a_valid_call_creates_the_missing_lock_directory(missing_lock_dir: Path) -> None:
    with localport.reserve():
        assert missing_lock_dir.is_dir()


BAD_ARGUMENTS = [
    pytest.param(function, *case.values, id=f"{function}({case.id})", marks=case.marks)
    for function, cases in (
        ("reserve", BAD_RESERVE_ARGUMENTS),
        ("reserve_many", BAD_RESERVE_MANY_ARGUMENTS),
        ("is_free", BAD_IS_FREE_ARGUMENTS),
        ("reservations", BAD_RESERVATIONS_ARGUMENTS),
    )
    for case in cases
]


@pytest.mark.parametrize(("function", "kwargs", "exception", "match"), BAD_ARGUMENTS)
def test_a_bad_argument_is_rejected_before_any_io(
    missing_lock_dir: Path,
    function: str,
    kwargs: dict[str, Any],
    exception: type[Exception],
    match: str,
) -> None:
    with pytest.raises(exception, match=match) as info:
        getattr(api, function)(**kwargs)
    assert type(info.value) is exception  # not a subclass such as LocalportError
    assert not missing_lock_dir.exists()


MALFORMED_RANGE_SETTINGS = [
    pytest.param("abc", r"LOCALPORT_RANGE must look like '50000-50999'", id="abc"),
    pytest.param("50000-", r"LOCALPORT_RANGE must look like '50000-50999'", id="50000-"),
    pytest.param("60000-50000", r"LOCALPORT_RANGE must have low <= high", id="60000-50000"),
    pytest.param("0-10", r"LOCALPORT_RANGE must use ports from 1 to 65535", id="0-10"),
    pytest.param("1-70000", r"LOCALPORT_RANGE must use ports from 1 to 65535", id="1-70000"),
]


@pytest.mark.parametrize(("setting", "match"), MALFORMED_RANGE_SETTINGS)
@pytest.mark.parametrize(
    "call",
    [
        pytest.param(localport.reserve, id="reserve"),
        pytest.param(lambda: localport.reserve_many(2), id="reserve_many"),
    ],
)
def test_a_malformed_localport_range_setting_is_named_before_any_io(
    missing_lock_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    call: Callable[[], object],
    setting: str,
    match: str,
) -> None:
    monkeypatch.setenv("LOCALPORT_RANGE", setting)
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert type(info.value) is ValueError
    assert not missing_lock_dir.exists()


def test_an_explicit_port_range_overrides_a_malformed_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCALPORT_RANGE", "abc")
    with localport.reserve(port_range=(49152, 65535)) as reservation:
        assert 49152 <= reservation.port <= 65535


def call_case(
    reserved_proto: str,
    method: str,
    exception: type[Exception],
    match: str,
    **kwargs: object,
) -> pytest.ParameterSet:
    arguments = ",".join(f"{key}={value!r}" for key, value in kwargs.items())
    label = f"{reserved_proto}-{method}({arguments})"
    return pytest.param(reserved_proto, method, kwargs, exception, match, id=label)


_LEASE = r"lease must be a number of seconds >= 0"
_BACKLOG = r"backlog must be a positive int"
_SOCKET_PROTO = r"proto must be 'tcp' or 'udp'"

BAD_RESERVATION_CALLS = [
    call_case("tcp", "release", ValueError, _LEASE, lease=-1),
    call_case("tcp", "release", ValueError, _LEASE, lease=math.nan),
    call_case("tcp", "release", ValueError, _LEASE, lease=math.inf),
    call_case("tcp", "release", TypeError, _LEASE, lease=True),
    call_case("tcp", "release", TypeError, _LEASE, lease="5"),
    call_case("tcp", "listen", ValueError, _BACKLOG, backlog=0),
    call_case("tcp", "listen", TypeError, _BACKLOG, backlog=True),
    call_case("tcp", "listen", TypeError, _BACKLOG, backlog="5"),
    call_case("tcp", "url", ValueError, r"scheme must be a non-empty str", scheme=""),
    call_case("tcp", "url", TypeError, r"scheme must be a str", scheme=5),
    call_case("tcp", "socket", ValueError, _SOCKET_PROTO, proto="sctp"),
    call_case("tcp", "socket", TypeError, _SOCKET_PROTO, proto=6),
    call_case("tcp", "socket", ValueError, r"proto='tcp', not 'udp'", proto="udp"),
    call_case("both", "socket", ValueError, _SOCKET_PROTO),
    call_case("udp", "listen", ValueError, r"needs a TCP reservation.*proto='udp'"),
]


def _open_descriptors() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts fds in /proc/self/fd")
@pytest.mark.parametrize(("proto", "method", "kwargs", "exception", "match"), BAD_RESERVATION_CALLS)
def test_a_bad_call_on_a_reservation_changes_nothing(
    proto: Literal["tcp", "udp", "both"],
    method: str,
    kwargs: dict[str, Any],
    exception: type[Exception],
    match: str,
) -> None:
    with localport.reserve(proto=proto) as reservation:
        lock_path = reservation.lock_path
        assert lock_path is not None
        with open(lock_path, "rb") as file:
            metadata = file.read()
        descriptors = _open_descriptors()

        with pytest.raises(exception, match=match) as info:
            getattr(reservation, method)(**kwargs)

        assert type(info.value) is exception
        assert _open_descriptors() == descriptors  # no socket opened, nothing left behind
        assert not reservation.released
        assert reservation.lock_path == lock_path
        with open(lock_path, "rb") as file:
            assert file.read() == metadata  # release() wrote no "released" record
        assert [info.port for info in localport.reservations()] == [reservation.port]


BAD_CALLS_BESIDE_A_RESERVATION: list[pytest.ParameterSet] = [
    pytest.param(lambda r: api.reserve(r.port, proto="sctp"), id="reserve-same-port-bad-proto"),
    pytest.param(
        lambda r: api.reserve(r.port, host="example.com"), id="reserve-same-port-bad-host"
    ),
    pytest.param(lambda r: api.reserve(r.port, lock_dir=""), id="reserve-same-port-bad-lock-dir"),
    pytest.param(lambda r: api.reserve_many(0), id="reserve_many-count-0"),
    pytest.param(lambda r: api.is_free(r.port, proto="TCP"), id="is_free-bad-proto"),
    pytest.param(lambda r: api.reservations(lock_dir=5), id="reservations-bad-lock-dir"),
    pytest.param(lambda r: r.release(lease=-1), id="release-negative-lease"),
    pytest.param(lambda r: r.listen(backlog=0), id="listen-backlog-0"),
]


@pytest.mark.parametrize("bad_call", BAD_CALLS_BESIDE_A_RESERVATION)
def test_a_failed_call_leaves_an_existing_reservation_held(
    bad_call: Callable[[localport.Reservation], object],
) -> None:
    with localport.reserve() as reservation:
        with pytest.raises((TypeError, ValueError)):
            bad_call(reservation)

        held = [(info.port, info.pid) for info in localport.reservations()]
        assert held == [(reservation.port, os.getpid())]
        assert not reservation.released
        assert reservation.lock_path is not None
