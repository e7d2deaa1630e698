"""Whatever bytes sit at a lock path, readers and reservers answer or raise documented errors.

In a shared directory any user who holds a lock file writes its record, so a record is input
from a stranger. Hypothesis writes arbitrary bytes, and arbitrary JSON-ish records (with the
record's own keys, out-of-range numbers, NaN and infinities, deep nesting), at the lock paths
of ports 29830-29832 (see the plan in conftest.py), then calls every reader and reserver.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import localport
from localport.cli import main

if TYPE_CHECKING:
    from pathlib import Path

PORTS = (29830, 29831, 29832)
KEYS = [
    "v",
    "pid",
    "process_started",
    "port",
    "proto",
    "host",
    "name",
    "created",
    "guarded",
    "released",
    "lease_until",
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
records = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=12)


def _encoded(record: Any) -> bytes:
    # Python's JSON writes NaN and Infinity as bare words, which its reader accepts again.
    return json.dumps(record, allow_nan=True).encode()


contents = (
    st.binary(max_size=6000)
    | records.map(_encoded)
    | json_values.map(_encoded)
    | st.integers(min_value=1, max_value=3000).map(lambda depth: b"[" * depth)
    | st.integers(min_value=1, max_value=3000).map(lambda depth: b'{"a":' * depth)
)


def _call_list() -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["list", "--json"])
    assert "Traceback" not in err.getvalue()
    json.loads(out.getvalue())  # always a whole JSON document
    return code


@settings(
    max_examples=100,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.lists(contents, min_size=1, max_size=len(PORTS)))
def test_any_bytes_at_a_lock_path_never_raise_anything_undocumented(
    lock_dir: Path, data: list[bytes]
) -> None:
    for port, content in zip(PORTS, data, strict=False):
        (lock_dir / f"port-{port}.lock").write_bytes(content)
    port = PORTS[0]

    listed = localport.reservations()
    assert all(info.port in PORTS for info in listed)
    for info in listed:
        assert 0 < info.pid < 2**31
        assert math.isfinite(info.created)
    assert isinstance(localport.is_free(port), bool)
    assert isinstance(localport.who_holds(port), list)
    assert _call_list() == 0

    # Nobody holds these locks: a port is granted, or a live lease in the record refuses it.
    with contextlib.suppress(localport.PortInUseError), localport.reserve(port) as reservation:
        assert reservation.port == port
    with (
        contextlib.suppress(localport.NoFreePortError),
        localport.reserve(port_range=(PORTS[0], PORTS[-1])) as walked,
    ):
        assert walked.port in PORTS


@pytest.mark.parametrize(
    "record",
    [
        {"pid": 1, "created": 1.0, "released": 1.0, "lease_until": 2**34},
        {"pid": 1, "created": 1.0, "released": 1.0, "lease_until": 1e300},
    ],
    ids=["lease-in-range", "lease-absurd"],
)
def test_a_lease_is_honoured_only_while_in_range(lock_dir: Path, record: dict[str, Any]) -> None:
    # The one refusal a crafted record may cause: a plausible lease. An absurd one is ignored.
    (lock_dir / f"port-{PORTS[0]}.lock").write_bytes(_encoded(record))
    plausible = record["lease_until"] < 2**35
    if plausible:
        with pytest.raises(localport.PortInUseError):
            localport.reserve(PORTS[0])
    else:
        with localport.reserve(PORTS[0]) as reservation:
            assert reservation.port == PORTS[0]
