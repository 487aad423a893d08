"""The package's shape: each layer imports only the layers below it, and no module imports itself in a circle.

Layers, lowest first (README, "Layout"): ``core`` < ``pipeline`` < ``learning`` and ``transport``
(independent of each other) < ``adapt`` and ``state`` (independent of each other) < ``offline``, ``demo`` and ``preview`` (independent of each other) < ``runtime``. ``edge/__init__.py``
is the public facade (names resolved lazily) and may name any layer. Imports inside
``if TYPE_CHECKING:`` are annotations, not dependencies, and are skipped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edge"
RANK = {"core": 0, "pipeline": 1, "learning": 2, "transport": 2, "adapt": 3, "state": 3, "offline": 4, "demo": 4, "preview": 4, "runtime": 5}
INDEPENDENT = {frozenset({"learning", "transport"}), frozenset({"adapt", "state"}), frozenset({"offline", "demo"}), frozenset({"offline", "preview"}), frozenset({"demo", "preview"})}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The ``edge.*`` modules ``path`` imports (at module level or in functions), TYPE_CHECKING blocks skipped."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("edge."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("edge"):
            for alias in node.names:
                # ``from edge.core import metrics`` imports the module edge.core.metrics; ``from edge.core.metrics
                # import REQUESTS`` the module edge.core.metrics (a package's __init__ runs either way).
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: {m for m in _imports(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in RANK) else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_a_module_imports_only_its_own_layer_and_those_below(module):
    layer = _layer(module)
    wrong = []
    for target in sorted(GRAPH[module]):
        other = _layer(target)
        if other is None or other == layer:
            continue
        if RANK[other] > RANK[layer] or (RANK[other] == RANK[layer] and frozenset({layer, other}) in INDEPENDENT):
            wrong.append(target)
    assert not wrong, f"{module} ({layer}) imports {wrong}: a layer above it or beside it"


def test_no_module_imports_itself_in_a_circle():
    # Tarjan's strongly connected components over module imports (edge/__init__.py, the facade, left out).
    graph = {m: {t for t in ts if t != "edge"} for m, ts in GRAPH.items() if m != "edge"}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"modules importing each other in a circle: {circles}"


def test_the_checker_sees_the_imports_it_judges():
    # The checks above pass vacuously if the graph is empty: the wiring module must be seen importing the middleware.
    assert "edge.adapt.middleware" in GRAPH["edge.runtime.app"]
    assert "edge.core.metrics" in GRAPH["edge.transport.proxy"]
