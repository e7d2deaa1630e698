"""The layout docs/architecture.md describes: imports run one way, one platform seam, small rooms.

These read the source with :mod:`ast`; nothing is imported. Each rule names the file and line
that breaks it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "localport"

#: Every module, lowest layer first. A module may import only modules listed before it: the
#: front ends sit on the core, the core on the registry, probes and addresses, those on the
#: platform seam, and everything on the errors and argument checks. A new module gets a place
#: here (and in docs/architecture.md).
ORDER = [
    "_errors",
    "_arguments",
    "_version",
    "_ending",
    "_placeholders",
    "_procfile",
    "_project",
    "_command_name",
    "_platform.portable",
    "_platform.sockdiag",
    "_platform.procfd",
    "_platform.linux",
    "_platform.windows",
    "_platform",
    "_child",
    "_addresses",
    "_probe",
    "_ranges",
    "_lockdir",
    "_lockfile",
    "_registry",
    "_listing",
    "_explain",
    "_runtime",
    "_containers",
    "_holders",
    "_handoff",
    "_reservation",
    "_candidate",
    "_picker",
    "_reserve",
    "_wait",
    "_readiness",
    "_launch",
    "_service",
    "_services",
    "cli._shared",
    "cli._colour",
    "cli._process",
    "cli._render",
    "cli._failure",
    "cli._hold",
    "cli._show",
    "cli._kill",
    "cli._run",
    "cli._up",
    "cli._ports",
    "cli._wait",
    "cli._types",
    "cli._parser",
    "cli._main",
    "cli",
    "_pytest_report",
    "_pytest_replace",
    "pytest_plugin",
    "__init__",
    "__main__",
]
#: Where localport may ask which operating system it runs on.
PLATFORM_SEAM = "_platform"
MODULE_LINES = 400
CLASS_LINES = 150


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def sources() -> dict[str, tuple[Path, ast.Module]]:
    return {
        module_name(path): (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            return True
    return False


def runtime_imports(name: str, tree: ast.Module) -> list[tuple[int, str]]:
    """The localport modules *name* imports at run time (lazy imports in functions included;
    imports for type checkers only are not arrows)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name.split(".")[:-1] if name.count(".") or name == "cli" else []
    if name in ("cli", "_platform"):
        package = [name]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or _type_checking_only(node, parents):
            continue
        if node.level == 0:
            if node.module and node.module.startswith("localport."):
                found.append((node.lineno, node.module.removeprefix("localport.")))
            continue
        base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        target = [*base, *(node.module.split(".") if node.module else [])]
        if node.module is None:  # from . import _platform
            found.extend((node.lineno, ".".join([*base, alias.name])) for alias in node.names)
        else:
            found.append((node.lineno, ".".join(target) or "__init__"))
    return found


def test_every_module_has_a_place_in_the_order() -> None:
    assert sorted(sources()) == sorted(ORDER)


def test_imports_point_down_the_layers() -> None:
    rank = {name: index for index, name in enumerate(ORDER)}
    wrong = []
    for name, (path, tree) in sources().items():
        for line, target in runtime_imports(name, tree):
            target_rank = rank.get(target, rank.get(target.rsplit(".", 1)[0]))
            if target_rank is None or target_rank >= rank[name]:
                wrong.append(f"{path.name}:{line} imports {target}")
    assert wrong == []


def test_only_the_platform_seam_asks_which_system_this_is() -> None:
    asked = []
    for name, (path, tree) in sources().items():
        if name.split(".")[0] == PLATFORM_SEAM:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            text = ast.unparse(node)
            if text in ("sys.platform", "os.name", "platform.system"):
                asked.append(f"{path.relative_to(PACKAGE)}:{node.lineno} reads {text}")
    assert asked == []


@pytest.mark.parametrize("name", ORDER)
def test_modules_and_classes_stay_small(name: str) -> None:
    path, tree = sources()[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MODULE_LINES, f"{path.name} has {lines} lines: two concerns? split it"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
            size = node.end_lineno - node.lineno + 1
            assert size <= CLASS_LINES, f"{path.name}: class {node.name} has {size} lines"
