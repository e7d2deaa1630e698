"""Errors are OSErrors a caller already catches, read as sentences, and cross process boundaries."""

from __future__ import annotations

import errno
import pickle
import socket

import pytest

import localport
from localport import Holder, LocalportError, LockDirError, NoFreePortError, PortInUseError


def round_trip(error: BaseException) -> BaseException:
    copy: BaseException = pickle.loads(pickle.dumps(error))
    return copy


def _listener(pid: int) -> Holder:
    return Holder(
        pid=pid,
        process_name="node",
        cmdline=("node", "server.js"),
        username="ana",
        uid=1000,
        local_address=("127.0.0.1", 62893),
        remote_address=None,
        status="LISTEN",
        proto="tcp",
        family=socket.AF_INET,
        started=1_700_000_000.0,
        reservation=None,
    )


def test_port_in_use_error_pickles_with_its_port_holders_and_detail() -> None:
    holders = (_listener(4242), _listener(4243))
    error = PortInUseError(62893, holders, detail="by pid 4242 (node server.js)")

    copy = round_trip(error)

    assert type(copy) is PortInUseError
    assert copy.port == 62893
    assert copy.holders == holders
    assert copy.errno == errno.EADDRINUSE
    assert str(copy) == str(error) == "port 62893 is in use by pid 4242 (node server.js)"
    assert copy.strerror == error.strerror
    assert copy.args == error.args


def test_no_free_port_error_pickles_with_its_range_busy_count_and_wanted_count() -> None:
    single = NoFreePortError((50000, 50009), 7)
    block = NoFreePortError((50000, 50009), 3, count=4)

    for error in (single, block):
        copy = round_trip(error)
        assert type(copy) is NoFreePortError
        assert copy.port_range == error.port_range
        assert copy.busy == error.busy
        assert copy.errno == errno.EADDRNOTAVAIL
        assert str(copy) == str(error)
        assert copy.args == error.args
    assert "4 consecutive free ports" in str(round_trip(block))


def test_lock_dir_error_pickles_with_its_directory_and_reason() -> None:
    error = LockDirError("/run/user/1000/localport", "it is a symbolic link")

    copy = round_trip(error)

    assert type(copy) is LockDirError
    assert copy.lock_dir == "/run/user/1000/localport"
    assert copy.reason == "it is a symbolic link"
    assert copy.errno == error.errno
    assert str(copy) == str(error)
    assert copy.args == error.args


@pytest.mark.parametrize(
    ("error", "builtin", "code"),
    [
        pytest.param(PortInUseError(50000), OSError, errno.EADDRINUSE, id="PortInUseError"),
        pytest.param(
            NoFreePortError((50000, 50001), 2), OSError, errno.EADDRNOTAVAIL, id="NoFreePortError"
        ),
        pytest.param(LockDirError("/tmp/x", "why"), OSError, errno.EPERM, id="LockDirError"),
    ],
)
def test_every_error_is_a_localport_error_and_the_builtin_a_caller_already_catches(
    error: OSError, builtin: type[Exception], code: int
) -> None:
    assert isinstance(error, LocalportError)
    assert isinstance(error, builtin)
    assert error.errno == code
    with pytest.raises(builtin):
        raise error


def test_the_messages_are_sentences_naming_the_port_range_and_directory() -> None:
    assert str(PortInUseError(50123)) == "port 50123 is in use"
    assert str(PortInUseError(50123, detail="on 127.0.0.1 (tcp)")) == (
        "port 50123 is in use on 127.0.0.1 (tcp)"
    )

    exhausted = str(NoFreePortError((50000, 50009), 7))
    assert exhausted.startswith("no free port left in 50000-50009: 7 of 10 ports")
    assert "LOCALPORT_RANGE" in exhausted  # says what to do about it

    refused = str(LockDirError("/tmp/locks", "it is a symbolic link"))
    assert refused == "refusing lock directory /tmp/locks: it is a symbolic link"


def test_reserving_a_port_a_plain_listener_holds_raises_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port: int = server.getsockname()[1]

        with pytest.raises(PortInUseError) as info:
            localport.reserve(port)

    error = info.value
    assert error.port == port
    assert error.errno == errno.EADDRINUSE
    assert isinstance(error, OSError)
    assert str(error).startswith(f"port {port} is in use")
    assert "127.0.0.1" in str(error)  # where it is taken
    assert localport.reservations() == []  # the failed attempt let go of its lock
    copy = round_trip(error)
    assert str(copy) == str(error)


def test_an_exhausted_range_raises_no_free_port_naming_the_range() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port: int = server.getsockname()[1]

        with pytest.raises(NoFreePortError) as info:
            localport.reserve(port_range=(port, port))

    assert info.value.port_range == (port, port)
    assert info.value.busy == 1
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert f"in {port}-{port}: 1 of 1 ports" in str(info.value)


def test_a_host_that_is_not_on_this_machine_raises_address_not_available() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    with pytest.raises(localport.AddressNotAvailableError) as info:
        localport.reserve(host="192.0.2.77")

    error = info.value
    assert isinstance(error, OSError)
    assert isinstance(error, LocalportError)
    assert error.errno == errno.EADDRNOTAVAIL
    assert error.host == "192.0.2.77"
    assert "not an address of this machine" in str(error)
    assert localport.reservations() == []  # nothing was left reserved
    copy = round_trip(error)
    assert type(copy) is localport.AddressNotAvailableError
    assert copy.host == error.host
    assert str(copy) == str(error)
