"""A program's name as people say it, from its command line: ``flask run``, not
``/home/me/proj/.venv/bin/python3 /home/me/proj/.venv/bin/flask run --port 5000``.

Tables show this name, so that a Flask server and the ``localport run`` that started it no
longer read the same; the full command line stays available (``--wide``, JSON ``cmdline``).
Pure: it reads nothing but the list it is given.

The rules, in order:

- a wrapper is looked through: ``env VAR=1 prog``, ``sh -c 'exec prog ...'``;
- an interpreter's path is dropped: ``python -m http.server``, ``node server.js``; a script
  without a source extension (a console script in a ``bin`` directory: ``.venv/bin/flask``) is
  the program itself, and so is a module without a dot (``python -m uvicorn`` is ``uvicorn``);
- the program's own path is dropped, and its first argument that is a word or an
  ``app:object`` reference kept (``flask run``, ``uvicorn app:app``), past options and the
  paths or numbers that follow them (``flask --app src/app.py run``);
- localport's own processes are named by what they do: ``localport run: flask run`` (with the
  program it started), ``localport reserve --hold`` (the background holder).
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Interpreters named by their family: ``python3.12`` is ``python``.
_INTERPRETERS = {
    "python": "python",
    "pypy": "pypy",
    "node": "node",
    "nodejs": "node",
    "deno": "deno",
    "bun": "bun",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
}
#: Shells that run ``-c STRING``.
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash"})
#: Python options that take a value (``-W error``, ``-X dev``).
_PYTHON_VALUE_OPTIONS = frozenset({"-W", "-X", "--check-hash-based-pycs"})
#: Extensions of a script an interpreter runs; without one, the script is the program.
_SCRIPT = re.compile(r"\.(py|pyw|pyz|js|mjs|cjs|ts|mts|rb|pl|php)$")
#: An argument worth showing after the program: a subcommand word or ``module:object``.
_WORD = re.compile(r"[A-Za-z_][\w.-]*(:[\w.]+)?")
#: localport's options that take a value, for finding the command a ``run`` started.
_RUN_VALUE_OPTIONS = frozenset({"--name", "--port", "--host", "--env", "--ready-timeout"})
_HOLD_COMMAND = "_hold"
#: An option's value that is not a word: a path or a number.
_VALUE = re.compile(r"[\w.~-]*[/\\][^\s]*|\d+(\.\d+)*")
_LONGEST_WORD = 40


def command_name(cmdline: Sequence[str]) -> str:
    """The program of *cmdline* named as people name it; ``""`` for an empty one.

    >>> command_name(["/p/.venv/bin/python3", "/p/.venv/bin/flask", "run", "--port", "5000"])
    'flask run'
    >>> command_name(["/usr/bin/python3", "-m", "http.server", "8000"])
    'python -m http.server'
    """
    return _name(list(cmdline), depth=0)


def _name(argv: list[str], depth: int) -> str:
    argv = _without_wrappers(argv)
    if not argv:
        return ""
    program = _base(argv[0])
    family = _family(program)
    if program in _SHELLS:
        if len(argv) < 3 or argv[1] != "-c" or depth >= 3:
            return program  # an interactive shell, a script, or nested too deep
        try:
            inner = shlex.split(argv[2])
        except ValueError:
            inner = argv[2].split()
        return _name(inner, depth + 1) or program
    if family == "python":
        return _python(argv, depth)
    if family is not None:
        return _script(family, argv[1:], depth)
    return _program(program, argv[1:], depth)


def _without_wrappers(argv: list[str]) -> list[str]:
    """*argv* without a leading ``exec``, ``nohup`` or ``env [-i] [VAR=value]...``."""
    while argv and _base(argv[0]) in ("exec", "nohup", "env"):
        wrapper, argv = _base(argv[0]), argv[1:]
        if wrapper == "env":
            while argv and (argv[0].startswith("-") or "=" in argv[0]):
                argv = argv[1:]
    return argv


def _base(path: str) -> str:
    """The last part of *path*, without a Windows ``.exe``."""
    base = re.split(r"[\\/]", path.strip())[-1]
    return base[:-4] if base.lower().endswith(".exe") else base


def _family(program: str) -> str | None:
    """The interpreter family of *program*: ``python3.12`` is ``python``; else ``None``."""
    match = re.fullmatch(r"([a-z]+?)(\d+(\.\d+)*)?[mtw]?", program.lower())
    return _INTERPRETERS.get(match.group(1)) if match else None


def _python(argv: list[str], depth: int) -> str:
    rest = argv[1:]
    while rest and rest[0].startswith("-") and rest[0] not in ("-m", "-c", "-"):
        option = rest.pop(0)
        if option in _PYTHON_VALUE_OPTIONS and rest:
            rest.pop(0)
    if not rest:
        return "python"
    if rest[0] == "-c":
        return "python -c"
    if rest[0] == "-m" and len(rest) > 1:
        module = rest[1]
        if "." in module:
            return f"python -m {module}"  # a module of a package: http.server, json.tool
        return _program(module, rest[2:], depth)  # python -m uvicorn is uvicorn
    return _script("python", rest, depth)


def _script(interpreter: str, rest: list[str], depth: int) -> str:
    """``node server.js``; a script without a source extension is the program itself."""
    while rest and rest[0].startswith("-"):
        rest = rest[1:]
    if not rest:
        return interpreter
    script = rest[0]
    parts = re.split(r"[\\/]", script)
    if "node_modules" in parts:
        # node_modules/.bin/vite, node_modules/vite/bin/vite.js: the package's program
        index = len(parts) - 1 - parts[::-1].index("node_modules")
        package = parts[index + 1 : index + 2]
        if package and package[0] not in (".bin", ""):
            return _program(package[0], rest[1:], depth)
    base = _base(script)
    if _SCRIPT.search(base):
        return f"{interpreter} {base}"
    return _program(base, rest[1:], depth)


def _program(program: str, arguments: list[str], depth: int) -> str:
    if program == "localport":
        return _localport(arguments, depth)
    word = _first_word(arguments)
    return f"{program} {word}" if word else program


def _first_word(arguments: list[str]) -> str | None:
    """The first argument that is a word or ``module:object``, past options and the values
    that follow them (a path or a number: ``--app src/app.py run``, ``-w 4 app:app``)."""
    after_option = False
    for argument in arguments:
        if argument.startswith("-"):
            after_option = "=" not in argument
            continue
        if _WORD.fullmatch(argument) and len(argument) <= _LONGEST_WORD:
            return argument
        if not (after_option and _VALUE.fullmatch(argument)):
            return None
        after_option = False
    return None


def _localport(arguments: list[str], depth: int) -> str:
    """localport's own processes, by what they do."""
    rest = list(arguments)
    while rest and rest[0].startswith("-"):  # global options: --color WHEN
        option = rest.pop(0)
        if option == "--color" and rest:
            rest.pop(0)
    if not rest:
        return "localport"
    if rest[0] == _HOLD_COMMAND:
        return "localport reserve --hold"
    if rest[0] == "run" and depth < 3:
        inner = _name(_started_by_run(rest[1:]), depth + 1)
        return f"localport run: {inner}" if inner else "localport run"
    return f"localport {rest[0]}"


def _started_by_run(arguments: list[str]) -> list[str]:
    """The command of ``localport run [OPTIONS] [--] CMD ARGS``."""
    if "--" in arguments:
        return arguments[arguments.index("--") + 1 :]
    rest = list(arguments)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in _RUN_VALUE_OPTIONS and rest:
            rest.pop(0)
    return rest
