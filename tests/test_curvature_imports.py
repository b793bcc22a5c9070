"""The curvature and instrument packages import each other without cycles (parsed with ast).

Every `import lbbench.curvature.x` / `from lbbench.curvature[.x] import ...` inside a module, at
any depth (function-level imports count too), is an edge; the graph must be a DAG. A submodule
importing its own package's __init__ counts as an edge to it, so it is caught as a cycle.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("lbbench.curvature", "lbbench.instruments")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path, known: set[str]) -> set[str]:
    """Modules of `known` that `path` imports (a `from pkg import name` may name a submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= subs or ({node.module} & known)
    return out


def import_graph() -> dict[str, set[str]]:
    files = [f for pkg in PACKAGES for f in (ROOT / pkg.replace(".", "/")).glob("*.py")]
    known = {_module_name(f) for f in files}
    return {_module_name(f): _imports(f, known) - {_module_name(f)} for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle as a list of modules (first == last), or None: depth-first search with colours."""
    state, stack = {}, []

    def visit(node):
        state[node] = "active"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "active":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_detects_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_curvature_packages_have_no_import_cycle():
    graph = import_graph()
    assert "lbbench.curvature.loss" in graph and "lbbench.curvature.measure" in graph
    assert "lbbench.curvature.loss" in graph["lbbench.curvature.hvp"]  # edges are really read
    assert find_cycle(graph) is None, find_cycle(graph)


def test_curvature_does_not_import_instruments():
    """Layering: instruments build on curvature, never the other way round."""
    for module, deps in import_graph().items():
        if module.startswith("lbbench.curvature"):
            assert not any(d.startswith("lbbench.instruments") for d in deps), (module, deps)


@pytest.mark.parametrize("old", ["sharpness", "eps_sharpness", "layer_sharpness"])
def test_old_sharpness_modules_are_gone(old):
    assert not (ROOT / "lbbench" / f"{old}.py").exists()
