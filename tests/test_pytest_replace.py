"""The plugin beside other plugins: no shared fixture names, and the opt-in that replaces theirs."""

from __future__ import annotations

import json
import re
import socket
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

pytest.importorskip("anyio")
pytest.importorskip("pytest_asyncio")

# Inner runs: the outer suite's randomly and cache stay out; anyio and pytest-asyncio stay in.
QUIET = ("-p", "no:randomly", "-p", "no:cacheprovider")
INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
"""
# 64 ports of their own (see the plan in conftest.py), shared by the inner tests' workers.
REPLACE_RANGE = "29300-29363"


def fixtures_by_module(output: str) -> dict[str, set[str]]:
    """``pytest --fixtures -v`` output as fixture name -> the modules that define it."""
    found: dict[str, set[str]] = {}
    module = ""
    for line in output.splitlines():
        header = re.match(r"-+ fixtures defined from (\S+) -+$", line)
        if header:
            module = header.group(1)
            continue
        entry = re.match(r"(\w+)(?: \[\w+ scope\])? -- ", line)
        if entry and module:
            found.setdefault(entry.group(1), set()).add(module)
    return found


def test_no_localport_fixture_shares_a_name_with_another_installed_plugin(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--fixtures", "-v", "-p", "aiohttp.pytest_plugin", *QUIET)
    found = fixtures_by_module(result.stdout.str())

    ours = {name for name, modules in found.items() if "localport.pytest_plugin" in modules}
    assert "localport_tcp_port" in ours
    assert "localport_udp_port" in ours
    shared = {name: modules for name, modules in found.items() if name in ours and len(modules) > 1}
    assert shared == {}
    # Sanity: the other plugins are there, with their own names (anyio's free_udp_port was
    # also ours before 0.2.0).
    assert found["free_udp_port"] == {"anyio.pytest_plugin"}
    assert "pytest_asyncio.plugin" in found["unused_tcp_port"]
    assert "aiohttp.pytest_plugin" in found["aiohttp_unused_port"]


SEMANTICS = """
import json, os, socket

import localport

RECORD = {record!r}


def record(*ports):
    with open(RECORD, "a") as file:
        file.write(json.dumps(list(ports)) + "\\n")


def reserved(port):
    return port in {{info.port for info in localport.reservations()}}


def bind_everywhere(port, kind):
    # Plain binds (no SO_REUSEADDR), one after the other, on every address.
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "0.0.0.0"),
                         (socket.AF_INET6, "::1"), (socket.AF_INET6, "::")):
        with socket.socket(family, kind) as sock:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, host == "::1")
            try:
                sock.bind((host, port))
            except OSError as error:
                if family == socket.AF_INET6 and error.errno in (97, 99):
                    continue  # no IPv6 here
                raise


def test_anyio_ports(free_tcp_port, free_udp_port):
    bind_everywhere(free_tcp_port, socket.SOCK_STREAM)
    bind_everywhere(free_udp_port, socket.SOCK_DGRAM)
    assert reserved(free_tcp_port) is {replaced}
    record(free_tcp_port, free_udp_port)


def test_anyio_factories(free_tcp_port_factory, free_udp_port_factory):
    ports = [free_tcp_port_factory(), free_tcp_port_factory(socket.AF_INET),
             free_tcp_port_factory(socket.AF_INET6)]
    assert len(set(ports)) == 3
    assert free_tcp_port_factory.kind == socket.SOCK_STREAM
    assert free_udp_port_factory.kind == socket.SOCK_DGRAM
    udp = free_udp_port_factory(family=socket.AF_INET)
    for port in ports:
        bind_everywhere(port, socket.SOCK_STREAM)
    bind_everywhere(udp, socket.SOCK_DGRAM)
    assert reserved(udp) is {replaced}
    record(*ports, udp)


def test_pytest_asyncio_ports(unused_tcp_port, unused_udp_port):
    bind_everywhere(unused_tcp_port, socket.SOCK_STREAM)
    bind_everywhere(unused_udp_port, socket.SOCK_DGRAM)
    assert reserved(unused_udp_port) is {replaced}
    record(unused_tcp_port, unused_udp_port)


def test_pytest_asyncio_factories(unused_tcp_port_factory, unused_udp_port_factory):
    ports = [unused_tcp_port_factory(), unused_tcp_port_factory(), unused_udp_port_factory()]
    assert len(set(ports)) == 3
    assert reserved(ports[0]) is {replaced}
    record(*ports)
"""


def _run_semantics(
    pytester: pytest.Pytester, tmp_path: Path, *, replaced: bool, workers: int, copies: int
) -> list[list[int]]:
    record = tmp_path / f"ports-{replaced}-{workers}.jsonl"
    pytester.makeini(INI)
    source = SEMANTICS.format(record=str(record), replaced=replaced)
    pytester.makepyfile(**{f"test_semantics_{index}": source for index in range(copies)})
    options = ["--localport-range", REPLACE_RANGE]
    if replaced:
        options += ["--localport-replace", "anyio", "--localport-replace=pytest-asyncio"]
    if workers:
        result = pytester.runpytest_subprocess("-n", str(workers), *options, *QUIET)
    else:
        result = pytester.runpytest(*options, *QUIET)
    result.assert_outcomes(passed=4 * copies)
    return [json.loads(line) for line in record.read_text().splitlines()]


@pytest.mark.parametrize("workers", [0, 4], ids=["plain", "xdist"])
def test_replaced_fixtures_keep_their_promises_and_come_from_localport(
    pytester: pytest.Pytester, tmp_path: Path, workers: int
) -> None:
    if workers:
        pytest.importorskip("xdist")
    recorded = _run_semantics(pytester, tmp_path, replaced=True, workers=workers, copies=3)
    ports = [port for line in recorded for port in line]
    low, high = (int(end) for end in REPLACE_RANGE.split("-"))
    assert all(low <= port <= high for port in ports)
    # Within a test and a session's factories, never the same port twice.
    for line in recorded:
        assert len(set(line)) == len(line)


def test_without_the_opt_in_the_other_plugins_serve_their_own_fixtures(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    recorded = _run_semantics(pytester, tmp_path, replaced=False, workers=0, copies=1)
    assert len(recorded) == 4  # each test asserted its port is not a localport reservation


def test_the_replace_ini_key_works_and_an_unknown_plugin_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI + "localport_replace = anyio, pytest-asyncio\n")
    pytester.makepyfile(
        """
        import localport

        def test_served(free_tcp_port, unused_udp_port):
            held = {info.port for info in localport.reservations()}
            assert {free_tcp_port, unused_udp_port} <= held
        """
    )
    pytester.runpytest(*QUIET).assert_outcomes(passed=1)

    result = pytester.runpytest("--localport-replace=nose", *QUIET)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--localport-replace: no port fixtures of nose*known:*anyio*"])


def test_the_aiohttp_replacement_gives_a_function_that_reserves(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import localport

        def test_unused_port(aiohttp_unused_port):
            first, second = aiohttp_unused_port(), aiohttp_unused_port()
            assert first != second
            held = {info.port for info in localport.reservations()}
            assert {first, second} <= held
        """
    )
    result = pytester.runpytest(
        "-p", "aiohttp.pytest_plugin", "--localport-replace=aiohttp", *QUIET
    )
    result.assert_outcomes(passed=1)


# -- TIME_WAIT and the report ------------------------------------------------------------------

TIME_WAIT_PORTS = (29370, 29371)


def test_the_reuseaddr_ini_key_lets_fixtures_take_time_wait_ports(
    pytester: pytest.Pytester,
) -> None:
    from helpers import leave_time_wait, time_wait_table_full

    if time_wait_table_full():
        pytest.skip("the kernel's TIME_WAIT table is full: new entries are dropped")
    for port in TIME_WAIT_PORTS:
        leave_time_wait(port)
    low, high = TIME_WAIT_PORTS
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import socket

        def test_serves(localport_tcp_port):
            with socket.socket() as server:
                server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                server.bind(("127.0.0.1", localport_tcp_port))
                server.listen()
        """
    )
    without = pytester.runpytest(f"--localport-range={low}-{high}", *QUIET)
    without.assert_outcomes(errors=1)
    without.stdout.fnmatch_lines(["*only by TIME_WAIT leftovers*LOCALPORT_REUSEADDR=1*"])

    pytester.makeini(INI + "localport_reuseaddr = true\n")
    with_ini = pytester.runpytest(f"--localport-range={low}-{high}", *QUIET)
    with_ini.assert_outcomes(passed=1)


def test_the_report_for_a_fixed_port_suggests_the_fixture(pytester: pytest.Pytester) -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        pytester.makeini(INI)
        pytester.makepyfile(
            f"""
            import socket

            def test_binds_a_fixed_port():
                with socket.socket() as server:
                    server.bind(("127.0.0.1", {port}))
            """
        )
        result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"port {port} is in use by this process*localport_tcp_port fixture*"]
    )


def test_the_report_for_a_fixture_port_never_suggests_the_fixture(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import socket

        def test_binds_every_address_of_a_loopback_reservation(localport_tcp_port):
            # A dual-stack [::] bind without SO_REUSEADDR meets the reservation's own guard.
            with socket.socket(socket.AF_INET6) as server:
                server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                server.bind(("::", localport_tcp_port))
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "localport: who holds port" in text
    assert "localport_port_factory(host=...)" in text
    assert "use the localport_tcp_port fixture" not in text


def test_the_report_says_when_the_holder_is_gone_and_spares_advice_the_test_follows(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import socket

        def test_a_holder_that_went_away():
            holder = socket.create_server(("127.0.0.1", 0))
            port = holder.getsockname()[1]
            client = socket.create_connection(("127.0.0.1", port))
            connection, _ = holder.accept()
            connection.close()  # leaves TIME_WAIT on the port
            client.close()
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                server.bind(("127.0.0.1", port))  # fails: the listener is still there
            finally:
                holder.close()  # ...but has gone by the time the report is written
                server.close()
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "its holder has let go since" in text
    assert "set it on the server's socket" not in text


def test_an_exception_whose_str_fails_is_reported_as_pytest_would(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        class Unprintable(Exception):
            def __str__(self):
                raise RuntimeError("no words")

        def test_fails_oddly():
            raise Unprintable()
        """
    )
    result = pytester.runpytest(*QUIET)
    result.assert_outcomes(failed=1)
    assert "INTERNALERROR" not in result.stdout.str()
