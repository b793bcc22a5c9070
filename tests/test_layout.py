"""The package layout the architecture promises (DESIGN.md), parsed with ast, not by running code.

Every `import lbbench.x` / `from lbbench.x import y` anywhere in a module (function-level imports
count too) is an edge of the import graph. The graph of all of lbbench must be a DAG, and no
package may import "upward": a package imports only itself and packages of a lower layer. A
submodule importing its own package's __init__ counts as an edge to it, so it is caught as a cycle.
`__main__` modules are executables (`python -m lbbench.sweep`), not library code, and may call the CLI.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository
LAYERS = {  # lower layers first; a package may import its own modules and those of lower layers only
    "config": 0,
    "curvature": 1,
    "models": 1,
    "runs": 2,
    "data": 3,
    "study": 3,
    "instruments": 3,
    "results": 3,
    "training": 4,
    "sweep": 5,
    "report": 5,
    "bench": 6,
    "experiments": 6,
    "cli": 7,
    "main": 8,
}
MAX_TOP_LEVEL_MODULES = 6


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
    files = [f for f in (ROOT / "lbbench").rglob("*.py") if f.name != "__main__.py"]
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
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def _package(module: str) -> str | None:
    """The top-level part of lbbench a module belongs to ('training' for lbbench.training.loop)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_find_cycle_detects_a_cycle_and_accepts_a_dag():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_whole_package_has_no_import_cycle():
    graph = import_graph()
    assert "lbbench.curvature.loss" in graph["lbbench.curvature.hvp"]  # edges are really read
    assert "lbbench.training.loop" in graph and "lbbench.instruments.scheduler" in graph["lbbench.training.loop"]
    assert find_cycle(graph) is None, find_cycle(graph)


def test_no_package_imports_upward():
    graph = import_graph()
    unknown = sorted({_package(m) for m in graph} - set(LAYERS) - {None})
    assert not unknown, f"packages without a layer: {unknown}"
    upward = []
    for module, deps in graph.items():
        here = _package(module)
        for dep in deps:
            there = _package(dep)
            if here and there and here != there and LAYERS[there] >= LAYERS[here]:
                upward.append(f"{module} -> {dep}")
    assert not upward, "\n".join(sorted(upward))


def test_few_top_level_modules_beside_the_packages():
    modules = sorted(p.name for p in (ROOT / "lbbench").glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules


def test_curvature_is_pure_math():
    """curvature/ imports nothing else of lbbench: the instruments build on it, never the reverse."""
    for module, deps in import_graph().items():
        if module.startswith("lbbench.curvature"):
            assert all(d.startswith("lbbench.curvature") for d in deps), (module, deps)


@pytest.mark.parametrize("old", ["sharpness", "eps_sharpness", "layer_sharpness", "train", "trainer", "sweep"])
def test_old_flat_modules_are_gone(old):
    assert not (ROOT / "lbbench" / f"{old}.py").exists()
