"""The pytest plugin through pytester: fixtures, options, xdist, and EADDRINUSE reports."""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

import pytest

import localport
from helpers import LISTENING_CHILD

if TYPE_CHECKING:
    from pathlib import Path

# Each of these tests runs a pytest of its own; the outer suite's plugins (randomly, xdist)
# stay out of the inner runs unless a test asks for them.
QUIET = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:asyncio")


def test_fixtures_give_reserved_ports_that_are_released_after_each_test(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    record = tmp_path / "ports.json"
    pytester.makepyfile(
        f"""
        import json, socket
        import localport

        def test_uses_every_fixture(
            localport_tcp_port,
            localport_udp_port,
            localport_port_factory,
            localport_reservation_factory,
        ):
            reservation = localport_reservation_factory()
            ports = [
                (localport_tcp_port, "tcp"),
                (localport_udp_port, "udp"),
                (localport_port_factory(), "tcp"),
                (localport_port_factory(proto="udp"), "udp"),
                (localport_port_factory(name="named"), "tcp"),
                (reservation.port, "tcp"),
            ]
            assert len(set(port for port, _ in ports)) == len(ports)
            for port, proto in ports:
                assert 49152 <= port <= 65535
                assert not localport.is_free(port, proto=proto)
            with socket.socket() as server:
                server.bind(("127.0.0.1", localport_tcp_port))
                server.listen()
            with reservation.listen() as server:
                assert server.getsockname()[1] == reservation.port
            with open({str(record)!r}, "w") as file:
                json.dump(ports, file)

        def test_the_ports_are_free_again():
            with open({str(record)!r}) as file:
                ports = json.load(file)
            assert all(localport.is_free(port, proto=proto) for port, proto in ports)
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)


def test_session_fixtures_live_for_the_session(pytester: pytest.Pytester, tmp_path: Path) -> None:
    record = tmp_path / "session-port.json"
    pytester.makeconftest(
        f"""
        import json
        import pytest

        @pytest.fixture(scope="session")
        def server_port(localport_session_port_factory):
            port = localport_session_port_factory(name="session-server")
            with open({str(record)!r}, "w") as file:
                json.dump(port, file)
            return port

        @pytest.fixture(scope="session")
        def server_reservation(localport_session_reservation_factory):
            return localport_session_reservation_factory()
        """
    )
    pytester.makepyfile(
        """
        import localport

        def test_first(server_port, server_reservation):
            assert not localport.is_free(server_port)
            assert not server_reservation.released

        def test_second(server_port, server_reservation):
            assert not localport.is_free(server_port)
            assert not server_reservation.released
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(passed=2)
    port = json.loads(record.read_text())
    assert localport.is_free(port)  # released when the session ended


SERVER_SUITE = """
    import socket
    import pytest

    @pytest.mark.parametrize("n", range(200))
    def test_a_server_on_its_own_port(localport_tcp_port, n):
        with socket.socket() as server:
            server.bind(("127.0.0.1", localport_tcp_port))  # plain bind: no SO_REUSEADDR
            server.listen()
            with socket.create_connection(("127.0.0.1", localport_tcp_port), timeout=5) as client:
                connection, _ = server.accept()
                with connection:
                    client.sendall(b"%d" % n)
                    assert connection.recv(8) == b"%d" % n
"""


def test_two_hundred_servers_pass_under_xdist_every_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SERVER_SUITE)
    for _ in range(3):
        result = pytester.runpytest_subprocess("-n", "4", *QUIET)
        result.assert_outcomes(passed=200)


def test_the_fixtures_work_with_pytest_randomly(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_randomly")
    pytester.makepyfile(SERVER_SUITE.replace("range(200)", "range(20)"))
    result = pytester.runpytest("-p", "randomly", "-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=20)


def test_a_failed_bind_gets_a_report_naming_the_holder(
    pytester: pytest.Pytester, spawn: Any
) -> None:
    holder = spawn(LISTENING_CHILD)
    port = holder.read()
    pytester.makepyfile(
        f"""
        import socket

        def test_binds_a_taken_port():
            with socket.socket() as server:
                server.bind(("127.0.0.1", {port}))  # the error will not name the port
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*localport: who holds port {port}*",
            f"port {port} is in use by PID {holder.pid} (*listening on 127.0.0.1*",
            f"*tcp*LISTEN*127.0.0.1*pid {holder.pid}*",
        ]
    )


def test_an_error_message_that_names_the_port_is_explained_too(
    pytester: pytest.Pytester,
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        # asyncio's wording; uvicorn's is the same.
        pytester.makepyfile(
            f"""
            import errno

            def test_a_server_that_reports_its_own_error():
                raise OSError(
                    errno.EADDRINUSE,
                    "error while attempting to bind on address ('127.0.0.1', {port}): "
                    "address already in use",
                )
            """
        )
        result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*localport: who holds port {port}*", "*this process*"])


def test_other_failures_get_no_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_fails():
            raise OSError(2, "No such file or directory")
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    assert "localport: who holds" not in result.stdout.str()


def test_the_range_option_and_ini_key_bound_the_ports(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def test_port_in_range(localport_tcp_port):
            low, high = (int(part) for part in os.environ["EXPECTED_RANGE"].split("-"))
            assert low <= localport_tcp_port <= high
        """
    )
    pytester.makeini("[pytest]\nlocalport_range = 24960-24969\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPECTED_RANGE", "24960-24969")
        result = pytester.runpytest(*QUIET)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["localport: ports 24960-24969, lock directory *"])
        # The option beats the ini key.
        patch.setenv("EXPECTED_RANGE", "24970-24979")
        result = pytester.runpytest("--localport-range=24970-24979", *QUIET)
        result.assert_outcomes(passed=1)


def test_the_dir_option_chooses_the_lock_directory(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-locks"
    pytester.makepyfile(
        f"""
        import os

        def test_lock_file_lands_there(localport_reservation_factory):
            reservation = localport_reservation_factory()
            assert os.path.dirname(reservation.lock_path) == {str(shared)!r}
        """
    )
    result = pytester.runpytest(f"--localport-dir={shared}", *QUIET)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"localport: ports *, lock directory {shared}"])


@pytest.mark.parametrize("value", ["abc", "60000-50000", "0-10", "50000-70000", "50000-"])
def test_a_bad_range_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(f"--localport-range={value}", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--localport-range" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_wants_a_port(localport_tcp_port): pass")
    result = pytester.runpytest("-p", "no:localport", *QUIET)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'localport_tcp_port' not found*"])
    assert "localport: ports" not in result.stdout.str()


def test_a_failed_bind_in_a_fixture_gets_a_report_too(
    pytester: pytest.Pytester, spawn: Any
) -> None:
    holder = spawn(LISTENING_CHILD)
    port = holder.read()
    pytester.makepyfile(
        f"""
        import socket
        import pytest

        @pytest.fixture
        def server():
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", {port}))
                yield sock

        def test_uses_it(server):
            pass
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*localport: who holds port {port}*", f"*PID {holder.pid}*"])


def test_a_relative_lock_dir_is_resolved_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def test_chdir_does_not_move_it(localport_reservation_factory, tmp_path, monkeypatch):
            monkeypatch.chdir(tmp_path)
            reservation = localport_reservation_factory()
            assert reservation.lock_path.startswith(os.environ["EXPECTED_DIR"])
        """
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EXPECTED_DIR", str(pytester.path / "locks"))
        result = pytester.runpytest("--localport-dir=locks", *QUIET)
    result.assert_outcomes(passed=1)


def test_a_bad_localport_range_setting_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    monkeypatch.setenv("LOCALPORT_RANGE", "50000-")
    result = pytester.runpytest(*QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "LOCALPORT_RANGE" in result.stderr.str()
