"""Reading Procfiles and ``.env`` files, and the placeholders of a command."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from localport import PlaceholderError, ProcfileError
from localport._placeholders import Address, environment_names, expand, is_server
from localport._procfile import read_procfile

if TYPE_CHECKING:
    from pathlib import Path


def test_a_procfile_is_read_as_honcho_reads_it(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(
        "# services\n"
        "\n"
        "api: uvicorn app:app --port $PORT\n"
        "web-ui:   npm run dev -- --port {port} --api {url:api}  \n"
        "worker_2: celery worker\n"
        "socket: uvicorn app:app --fd {fd}\n"
    )
    (tmp_path / ".env").write_text(
        "# settings\n"
        "export DEBUG=1\n"
        "NAME='single # quoted'\n"
        'GREETING="two\\nlines \\"quoted\\""\n'
        "EMPTY=\n"
    )
    procfile = read_procfile(str(tmp_path / "Procfile"))
    assert [(e.name, e.line, e.server, e.fd) for e in procfile.entries] == [
        ("api", 3, True, False),
        ("web-ui", 4, True, False),
        ("worker_2", 5, False, False),
        ("socket", 6, True, True),
    ]
    assert procfile.entry("web-ui") is not None
    assert procfile.entries[1].command == "npm run dev -- --port {port} --api {url:api}"
    assert procfile.entries[1].references == ("api",)
    assert procfile.env == {
        "DEBUG": "1",
        "NAME": "single # quoted",
        "GREETING": 'two\nlines "quoted"',
        "EMPTY": "",
    }
    assert procfile.directory == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe api: x\n", "not UTF-8 text"),
        (b"api x {port}\n", "Procfile:1: not a service line"),
        (b"api: x\n" + b"\x1b]0;title\x07: y\n", r"Procfile:2: not a service line"),
    ],
)
def test_a_procfile_that_is_not_one_is_refused_with_its_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    (tmp_path / "Procfile").write_bytes(content)
    with pytest.raises(ProcfileError, match=message) as caught:
        read_procfile(str(tmp_path / "Procfile"))
    assert "\x1b" not in str(caught.value)  # a line is shown escaped
    assert isinstance(caught.value, ValueError)


def test_a_procfile_too_big_to_be_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
    with pytest.raises(ProcfileError, match="more than 1024 KiB"):
        read_procfile(str(tmp_path / "Procfile"))


def test_servers_are_the_commands_that_mention_their_own_port() -> None:
    assert is_server("serve --port {port}")
    assert is_server("serve --url {url}")
    assert is_server("uvicorn --fd {fd}")
    assert is_server("serve --port $PORT")
    assert is_server("serve --port=${PORT}")
    assert is_server("gunicorn -b 127.0.0.1:${PORT:-5000}")
    assert not is_server("worker --api {url:api} --api-port {port:api}")
    assert not is_server("echo $PORTAL ${PORTS}")
    assert not is_server("celery worker")


def test_expand_fills_only_its_placeholders() -> None:
    api = Address(50001, "http://127.0.0.1:50001", "127.0.0.1")
    own = Address(50002, "http://[::1]:50002", "::1")
    text = 'run {port} {host} {url} {fd} {port:api} {url:api} {"json": {}} ${HOME} {other}'
    assert expand(text, own=own, others={"api": api}, fd=7) == (
        'run 50002 ::1 http://[::1]:50002 7 50001 http://127.0.0.1:50001 {"json": {}} '
        "${HOME} {other}"
    )
    with pytest.raises(PlaceholderError, match=r"\{url:db\}: no service named 'db'"):
        expand("x {url:db}", own=own, others={"api": api})
    with pytest.raises(PlaceholderError, match="no listening socket"):
        expand("x {fd}", own=own, others={})
    with pytest.raises(PlaceholderError, match="this command has no port"):
        expand("x {port}", own=None, others={})


def test_environment_names_are_upper_case_with_underscores() -> None:
    assert environment_names("api") == ("API_PORT", "API_URL")
    assert environment_names("web-ui.v2") == ("WEB_UI_V2_PORT", "WEB_UI_V2_URL")
    assert environment_names("2fa") == ("_2FA_PORT", "_2FA_URL")
