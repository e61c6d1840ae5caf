"""The shape of the code: small modules, no private names used across modules, and the
layers (web -> services -> db) without an arrow back up."""
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


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) of every `import` and `from ... import` of calsvc."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("calsvc"):
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.startswith("calsvc")]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_short(path):
    lines = len(path.read_text().splitlines())
    assert lines <= LIMIT, f"{path.name}: {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_uses_another_modules_private_names(path):
    tree = ast.parse(path.read_text())
    private = [f"{module}.{name}" for module, names in _imports(tree) for name in names
               if name.startswith("_") and not name.startswith("__") and module != _name(path)]
    # module._name after `from calsvc import module` or `from calsvc.x import module as alias`
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module and node.module.startswith("calsvc") for a in node.names}
    private += [f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__")]
    assert not private, f"{path.name} uses {private}"


LAYERS = {"web": 3, "services": 2, "db": 1}  # a layer imports only from layers below it


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_layers_only_import_downwards(path):
    parts = path.relative_to(ROOT).parts
    own = LAYERS.get(parts[0]) if len(parts) > 1 else None
    if own is None:
        return
    tree = ast.parse(path.read_text())
    upward = []
    for module, _ in _imports(tree):
        layer = module.split(".")[1] if module.count(".") >= 1 else None
        if layer in LAYERS and LAYERS[layer] > own:
            upward.append(module)
    assert not upward, f"{path} imports {upward}"


PURE = (
    "conflicts", "drafts", "errors", "models", "occurrences", "patterns", "recurrence", "rules", "snapshots", "zones"
)


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_touch_neither_sql_nor_http(name):
    tree = ast.parse((ROOT / f"{name}.py").read_text())
    modules = [m for m, _ in _imports(tree)] + [n for m, names in _imports(tree) if m == "calsvc" for n in names]
    impure = [m for m in modules if m.removeprefix("calsvc.").split(".")[0] not in PURE and m != "calsvc"]
    others = {n.names[0].name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)} | {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not impure and not others & {"asyncpg", "aiohttp", "redis", "psycopg"}, (impure, others)
