"""The public surface is exactly ``__all__``, documented, versioned and type-checked."""

from __future__ import annotations
import __future__

import importlib.util
import inspect
import types
from pathlib import Path

import pytest

import localport

TYPING_CHECK = Path(__file__).parent / "typing" / "check_public_api.py"


def public_names() -> list[str]:
    """Names a user sees in ``dir(localport)``: not private, not submodules, plus __version__.

    ``from __future__ import annotations`` leaves a name in every module; it is not API.
    """
    names = {"__version__"}
    for name in dir(localport):
        value = getattr(localport, name)
        if name.startswith("_") or isinstance(value, (types.ModuleType, __future__._Feature)):
            continue
        names.add(name)
    return sorted(names)


def test_all_lists_exactly_the_public_names() -> None:
    assert localport.__all__ == public_names()


def test_every_name_in_all_exists_and_all_is_sorted_without_duplicates() -> None:
    for name in localport.__all__:
        assert hasattr(localport, name), name
    assert localport.__all__ == sorted(set(localport.__all__))


def test_every_public_name_is_defined_by_localport_itself() -> None:
    for name in localport.__all__:
        value = getattr(localport, name)
        if callable(value):
            assert value.__module__.split(".")[0] == "localport", name


def test_the_version_is_a_non_empty_string() -> None:
    assert isinstance(localport.__version__, str)
    assert localport.__version__.strip() == localport.__version__ != ""


def _public_callables() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = []
    for name in localport.__all__:
        value = getattr(localport, name)
        if not callable(value):
            continue
        found.append((name, value))
        if inspect.isclass(value):
            # Only what the class itself defines: inherited OSError methods are not ours.
            for member, attribute in vars(value).items():
                if not member.startswith("_") and inspect.isfunction(attribute):
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
