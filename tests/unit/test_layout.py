"""The shape of the code: small modules, no private names used across modules, and the
layers (web -> services -> notify/db) without an arrow back up."""

from __future__ import annotations

import ast
import pathlib

import pytest

import calsvc

ROOT = pathlib.Path(calsvc.__file__).parent
MODULES = sorted(p for p in ROOT.rglob("*.py"))
LIMIT = 500


def _name(path: pathlib.Path) -> str:
    return "calsvc." + ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _package(path: pathlib.Path) -> str:
    name = _name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _absolute(path: pathlib.Path, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    base = _package(path).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(path: pathlib.Path, tree: ast.Module) -> list[str]:
    """Every calsvc module or name a module imports, as dotted names (`from calsvc.x import
    y` gives calsvc.x.y, which is either the module calsvc.x.y or the name y of calsvc.x)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            found += [f"{module}.{a.name}" for a in node.names if module.startswith("calsvc")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("calsvc")]
    return found


def _private_uses(path: pathlib.Path, tree: ast.Module) -> list[str]:
    """calsvc names starting with an underscore that `path` takes from another module: by
    import, or as an attribute of an imported module (any alias, any depth)."""
    own = _name(path)
    private = [
        name
        for name in _imports(path, tree)
        if name.rpartition(".")[2].startswith("_")
        and not name.rpartition(".")[2].startswith("__")
        and name.rpartition(".")[0] != own
    ]
    aliases: dict[str, str] = {}  # local name -> calsvc dotted name
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            if module.startswith("calsvc"):
                aliases.update({a.asname or a.name: f"{module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("calsvc"):
                    aliases[a.asname or a.name.split(".")[0]] = a.asname and a.name or a.name.split(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain, value = [node.attr], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                dotted = ".".join([aliases[value.id], *reversed(chain)])
                if dotted.rpartition(".")[0] != own:
                    private.append(dotted)
    return private


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= LIMIT, f"{path.name}: {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_modules_private_names(path):
    private = _private_uses(path, ast.parse(path.read_text()))
    assert not private, f"{path.name} uses {private}"


# A layer imports only from layers below it (and from the top-level modules, but app.py and
# __main__.py, which wire everything).
LAYERS = {"web": 4, "services": 3, "notify": 2, "db": 1}
WIRING = ("calsvc.app", "calsvc.__main__")


def _layer(dotted: str) -> int | None:
    parts = dotted.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_only_import_downwards(path):
    own = _layer(_name(path))
    imported = _imports(path, ast.parse(path.read_text()))
    if own is None:  # a top-level module: only the wiring may reach into the layers
        upward = [] if _name(path) in WIRING else [m for m in imported if _layer(m) is not None]
    else:
        upward = [m for m in imported if (_layer(m) or 0) > own]
    assert not upward, f"{path} imports {upward}"


PURE = (
    "conflicts",
    "drafts",
    "errors",
    "models",
    "occurrences",
    "patterns",
    "recurrence",
    "rules",
    "snapshots",
    "zones",
)


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_touch_neither_sql_nor_http(name):
    path = ROOT / f"{name}.py"
    tree = ast.parse(path.read_text())
    impure = [m for m in _imports(path, tree) if m.split(".")[1] not in PURE]
    others = {n.names[0].name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)} | {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert not impure and not others & {"asyncpg", "aiohttp", "redis", "psycopg"}, (impure, others)
