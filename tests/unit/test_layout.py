"""The package's shape: dependencies point down the pipeline, no import cycles, short functions.

Read from the source with ``ast`` (no imports executed), so it runs in milliseconds.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "search_service"

# Lower layers never import higher ones: channels -> service -> answering -> ranking -> indexing -> content,
# with settings at the bottom and persistence beside content.
LAYERS = {
    "settings": 0,
    "content": 1, "store": 1, "migrations": 1,
    "indexing": 2, "auth": 2, "portal": 2,
    "ranking": 3,
    "answering": 4,
    "evaluation": 5, "gaps": 5, "responses": 5,
    "service": 6,
    "api": 7, "cli": 7,
}
# Leaf modules import nothing from the package, so any layer may use them: the ranking defaults are
# read by the settings class (the only source of those defaults) without pulling in the ranking stage.
LEAVES = {"search_service.ranking.config"}
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        if "versions" in parts:  # alembic revision scripts are data, not code
            continue
        found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every package module a file imports, at module level or inside a function (a lazy import
    does not make a dependency go away)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("search_service"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("search_service"))
    return names


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_layer():
    unplaced = sorted(m for m in _modules() if m != "search_service" and _layer(m) is None)
    assert unplaced == [], f"add these to LAYERS: {unplaced}"


def test_dependencies_point_down_the_pipeline():
    modules = _modules()
    upward = []
    for module, path in modules.items():
        own = _layer(module)
        for target in _imports(path):
            if target in LEAVES:
                continue
            if target in modules and _layer(target) is not None and own is not None and _layer(target) > own:
                upward.append(f"{module} -> {target}")
    assert upward == [], "imports that point up the pipeline:\n" + "\n".join(sorted(set(upward)))


def test_leaves_import_nothing_from_the_package():
    modules = _modules()
    assert {leaf: _imports(modules[leaf]) for leaf in LEAVES} == {leaf: set() for leaf in LEAVES}


def test_no_import_cycles():
    modules = _modules()
    # A package's own __init__ re-exporting its modules is not a cycle through them.
    graph = {m: {t for t in _imports(p) if t in modules and t != m and not m.startswith(t + ".")}
             for m, p in modules.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target):], target] if target in trail else [node, target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{module}.{node.name}: {length} lines")
    assert long == [], "split these functions:\n" + "\n".join(sorted(long))
