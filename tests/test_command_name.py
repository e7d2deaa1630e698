"""command_name(): a program named as people name it, from its argv."""

from __future__ import annotations

import pytest

from localport._command_name import command_name

VENV = "/home/me/proj/.venv/bin"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # Console scripts in a virtualenv: the interpreter and both paths dropped.
        ([f"{VENV}/python3", f"{VENV}/flask", "run", "--port", "5000"], "flask run"),
        ([f"{VENV}/python3", ".venv/bin/flask", "--app", "src/x.py", "run"], "flask run"),
        ([f"{VENV}/python3", ".venv/bin/flask", "--debug", "run"], "flask run"),
        (["uvicorn", "--port=8000", "main:app"], "uvicorn main:app"),
        (["gunicorn", "-w", "4", "app:app"], "gunicorn app:app"),
        (["tool", "--flag", "some thing", "run"], "tool"),
        ([f"{VENV}/python3", f"{VENV}/uvicorn", "app:app", "--port", "8000"], "uvicorn app:app"),
        # Modules: a package's module is shown as run; a top-level one is the program.
        (["/usr/bin/python3", "-m", "http.server", "8000"], "python -m http.server"),
        (["python3.12", "-u", "-X", "dev", "-m", "http.server"], "python -m http.server"),
        (["/usr/bin/python3", "-m", "uvicorn", "main:app"], "uvicorn main:app"),
        ([f"{VENV}/python", "-m", "flask", "run"], "flask run"),
        (["python", "-c", "import socket; ..."], "python -c"),
        (["python3"], "python"),
        (["C:\\Python312\\python.exe", "C:\\proj\\manage.py", "runserver"], "python manage.py"),
        (["/usr/bin/python3", "/srv/app/server.py", "8000"], "python server.py"),
        # Other interpreters.
        (["/usr/local/bin/node", "/srv/app/server.js"], "node server.js"),
        (["node", "--inspect", "server.mjs", "--port", "3000"], "node server.mjs"),
        (["node", "/p/node_modules/.bin/vite", "--port", "5173"], "vite"),
        (["node", "/p/node_modules/vite/bin/vite.js", "dev"], "vite dev"),
        (["ruby", "bin/rails", "server"], "rails server"),
        # Plain programs: the path dropped, a word argument kept, a path or number not.
        (["/usr/sbin/nginx", "-g", "daemon off;"], "nginx"),
        (["/usr/bin/redis-server", "127.0.0.1:6379"], "redis-server"),
        (["/usr/bin/postgres", "-D", "/var/lib/pg"], "postgres"),
        (["caddy", "run"], "caddy run"),
        (["/bin/server", "/etc/server.conf"], "server"),
        # Wrappers are looked through.
        (["/bin/sh", "-c", "exec python3 -m http.server $PORT"], "python -m http.server"),
        (["/usr/bin/env", "PORT=1", "node", "app.js"], "node app.js"),
        (["sh", "-c", "unbalanced 'quote"], "unbalanced"),
        # localport's own processes say what they do.
        (
            [
                f"{VENV}/python3",
                f"{VENV}/localport",
                "run",
                "--name",
                "web",
                "--",
                f"{VENV}/flask",
                "run",
            ],
            "localport run: flask run",
        ),
        (
            ["/usr/bin/python3", "-m", "localport", "run", "--port", "8000", "npm", "run", "dev"],
            "localport run: npm run",
        ),
        (
            ["localport", "--color", "never", "run", "--", "python3", "-m", "http.server"],
            "localport run: python -m http.server",
        ),
        (["localport", "run"], "localport run"),
        (
            ["/usr/bin/python3", "-m", "localport", "_hold", "--seconds", "30.0", "--host", "::1"],
            "localport reserve --hold",
        ),
        ([f"{VENV}/python3", f"{VENV}/localport", "up", "-f", "Procfile"], "localport up"),
        (["localport"], "localport"),
        # Nothing to go on.
        ([], ""),
        ([""], ""),
    ],
)
def test_command_name(argv: list[str], expected: str) -> None:
    assert command_name(argv) == expected


def test_a_long_argument_is_not_shown() -> None:
    assert command_name(["tool", "a" * 41]) == "tool"
    assert command_name(["tool", "a" * 40]) == "tool " + "a" * 40


def test_a_tuple_is_accepted_and_nesting_ends() -> None:
    nested = ("sh", "-c", "sh -c 'sh -c \"sh -c true\"'")
    assert command_name(nested) == "sh"
    assert command_name(["bash", "deploy.sh"]) == "bash"
