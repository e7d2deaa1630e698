"""The public surface is exactly ``__all__``, documented, versioned and type-checked."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

import localport

if TYPE_CHECKING:
    import types

TYPING_CHECK = Path(__file__).parent / "typing" / "check_public_api.py"
API_REFERENCE = Path(__file__).parents[1] / "docs" / "reference" / "api.md"

#: An autodoc directive for ``localport.NAME``, as reST (``.. autoclass:: localport.Holder()``,
#: inside ``{eval-rst}``) or as MyST (``{autofunction} localport.reserve``). A dotted name
#: such as ``localport.pytest_plugin.PortFactory`` is the plugin's namespace, not this one.
AUTODOC = re.compile(
    r"(?:\.\.\s+|\{)auto(?:function|class|exception|data|attribute)(?:::|\})"
    r"[ \t]*localport\.(\w+)(?![\w.])"
)


def documented_names() -> set[str]:
    """The names docs/reference/api.md documents as ``localport.NAME``."""
    return set(AUTODOC.findall(API_REFERENCE.read_text(encoding="utf-8")))


def _speaks_for_the_package(module: str) -> bool:
    """Whether the names of MODULE may be API of the ``localport`` namespace.

    Not ``__main__`` (importing it runs the command), not ``pytest_plugin`` (the plugin's own
    namespace, documented as ``localport.pytest_plugin.NAME``), and nothing of the command line
    (``_cli``, or a ``cli`` package and its submodules).
    """
    parts = module.split(".")[1:]
    if parts[-1] == "__main__" or module == "localport.pytest_plugin":
        return False
    return not any(part.lstrip("_") == "cli" for part in parts)


def _unimportable(package: str) -> NoReturn:
    msg = f"{package} does not import, so the names it defines cannot be checked"
    raise ImportError(msg)


def localport_modules() -> list[types.ModuleType]:
    """Every module of the package whose names may be API, imported.

    A module that does not import fails the test: skipping it could hide a public name.
    """
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(localport.__path__, "localport.", onerror=_unimportable)
        if _speaks_for_the_package(info.name)
    ]


def public_definitions() -> set[str]:
    """The public names, found in the code and the reference, never in ``localport.__all__``.

    Every module of the package is imported (:func:`localport_modules`) and a name counts when
    that module defines it (its ``__module__``, so not what it imports), it has no leading
    underscore, and either

    - docs/reference/api.md documents it as ``localport.NAME``, or
    - it is an exception class: what localport raises, callers must be able to name in an
      ``except``, so it is public even before anyone exports or documents it.

    Why these and not the other ways to tell:

    - ``dir(localport)`` is computed from ``__all__``, and ``_HOMES`` and the ``TYPE_CHECKING``
      imports sit beside it in ``__init__.py``, kept by the same hand in the same edit:
      comparing with them cannot find what that edit forgot.
    - No leading underscore alone is not enough: the modules themselves are private
      (``localport._reserve``), so by PEP 8 everything in them is internal unless documented,
      and they are full of plain-named helpers (``check_port``, ``explain``) that are no API.
    - A module's own ``__all__`` says what it exports to the rest of the package (star imports,
      mypy's re-export rule), not to users: it may list names the module only imports, and a
      private helper package may well list its internals. Trusting it would make this test
      demand internals in ``localport.__all__``, or a hand-kept list of exceptions to the rule,
      which is what this test must not depend on; and most modules have none.
    - The reference is the project's own statement of what is public (PEP 8: documented
      interfaces are public), in another file and kept for another reason. Its directives are
      plain to read, and :func:`test_the_reference_documents_exactly_all` checks it the other
      way round too: it may name nothing that ``localport`` does not export.

    The exception rule covers what the reference alone would miss: a new error class that a
    change adds, raises and forgets to export.
    """
    documented = documented_names()
    public: set[str] = set()
    for module in localport_modules():
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            if name in documented or (isinstance(value, type) and issubclass(value, BaseException)):
                public.add(name)
    return public


def test_all_lists_exactly_the_public_names() -> None:
    exported = set(localport.__all__)
    dunders = {name for name in exported if name.startswith("__")}
    assert dunders == {"__version__"}
    public = public_definitions()
    missing = sorted(public - exported)
    assert missing == [], f"public, but not in localport.__all__: {missing}"
    unexplained = sorted(exported - dunders - public)
    assert unexplained == [], (
        f"in localport.__all__, but no localport module defines it as an error class "
        f"or a name the API reference documents: {unexplained}"
    )


def test_every_name_in_all_resolves_to_its_definition_and_all_is_sorted() -> None:
    for name in localport.__all__:
        assert hasattr(localport, name), f"localport.{name} does not import"
        if name == "__version__":
            continue  # a string, read from the installed metadata
        value = getattr(localport, name)
        home = getattr(value, "__module__", "")
        assert home.startswith("localport."), f"localport.{name} comes from {home!r}"
        assert vars(sys.modules[home]).get(name) is value, f"{home} does not define {name}"
    assert localport.__all__ == sorted(set(localport.__all__)), "unsorted, or a name twice"


def test_a_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from localport import *", namespace)  # noqa: S102
    del namespace["__builtins__"]
    assert sorted(namespace) == sorted(localport.__all__)
    for name, value in namespace.items():
        assert value is getattr(localport, name), name


def test_the_reference_documents_exactly_all() -> None:
    documented = documented_names()
    # __version__ is no API to document: every distribution has one.
    exported = set(localport.__all__) - {"__version__"}
    undocumented = sorted(exported - documented)
    assert undocumented == [], f"in __all__, but not in {API_REFERENCE.name}: {undocumented}"
    not_exported = sorted(documented - exported)
    assert not_exported == [], f"documented, but not in __all__: {not_exported}"


def test_the_version_is_a_non_empty_string() -> None:
    assert isinstance(localport.__version__, str)
    assert localport.__version__.strip() == localport.__version__ != ""


def _public_callables() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for name in localport.__all__:
        # A name that does not import is the failure of a test above, not of collection.
        value = getattr(localport, name, None)
        if not callable(value):
            continue
        found.append((name, value))
        if inspect.isclass(value):
            # What localport defines, inherited from its own bases too (Reservation gets
            # socket() from a base class); inherited OSError methods are not ours.
            for member, attribute in inspect.getmembers(value, inspect.isfunction):
                if not member.startswith("_") and attribute.__module__.startswith("localport."):
                    found.append((f"{name}.{member}", attribute))
    return found


@pytest.mark.parametrize(
    ("name", "value"), _public_callables(), ids=[n for n, _ in _public_callables()]
)
def test_every_public_callable_has_a_docstring(name: str, value: object) -> None:
    # __doc__ directly: inspect.getdoc() would borrow a docstring from a base class.
    doc = value.__doc__
    assert isinstance(doc, str), f"{name} has no docstring"
    assert doc.strip(), f"{name} has an empty docstring"


def test_the_typing_check_file_runs_with_the_public_api_only() -> None:
    spec = importlib.util.spec_from_file_location("check_public_api", TYPING_CHECK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    module.use_the_public_api()

    assert localport.reservations() == []  # everything it reserved, it released
