"""The package's shape: no import cycles, imports point down the pipeline.

The graph is read from the source with `ast`, so it sees every import
statement, including those inside functions (a lazy import is still a
dependency). Imports under `if TYPE_CHECKING:` are not edges: they never run.
A cycle is looked for at every level: between modules, and between the
packages (and sibling subpackages) that hold them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tools" / "llmgen"

#: The stages from the bottom up: a package may import only packages before it
#: in this list (and itself). Foundation modules sit below everything.
LAYERS = [
    ("errors", "resources"),
    ("catalog",),
    ("clouds",),
    ("plan",),
    ("render", "verify"),
    ("secrets", "gitops", "simulate", "weights"),
    ("lifecycle",),
    ("cli",),
]
STAGE_PACKAGES = {"catalog", "plan", "render", "verify", "gitops", "secrets", "lifecycle", "cli"}


def module_name(path: Path) -> str:
    parts = ("llmgen", *path.relative_to(PKG).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, here: str, is_package: bool) -> Iterator[tuple[str, str]]:
    """Every (module, name) a module imports from llmgen at run time; name is
    "" for `import x`, else the imported name (which may itself be a module)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _type_checking_block(child):
                assert isinstance(child, ast.If)
                stack.extend(child.orelse)  # the else branch does run
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "llmgen":
                        yield alias.name, ""
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    pkg = here if is_package else here.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                if base.split(".")[0] != "llmgen":
                    continue
                for alias in child.names:
                    yield base, alias.name
            stack.append(child)


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for base, imported in _imports(tree, name, path.name == "__init__.py"):
            # `from pkg import x` depends on module pkg.x where there is one,
            # else on pkg itself (x is a name defined there)
            target = f"{base}.{imported}" if f"{base}.{imported}" in files else base
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a list of nodes, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def collapsed(graph: dict[str, set[str]], parent: str) -> dict[str, set[str]]:
    """The graph among the direct children of package `parent`: every module
    below a child counts as that child; a package's own `__init__` is left out
    (it may re-export its children, which is not a dependency between them)."""
    prefix = parent + "."

    def child(name: str) -> str | None:
        if not name.startswith(prefix):
            return None
        return prefix + name[len(prefix) :].split(".")[0]

    out: dict[str, set[str]] = {}
    for src, targets in graph.items():
        a = child(src)
        if a is None:
            continue
        out.setdefault(a, set())
        for dst in targets:
            b = child(dst)
            if b is not None and b != a:
                out[a].add(b)
    return out


def packages(graph: dict[str, set[str]]) -> list[str]:
    return sorted({"llmgen"} | {n for n in graph if (PKG / n[7:].replace(".", "/")).is_dir()})


GRAPH = import_graph()


def test_the_graph_sees_the_pipeline() -> None:
    # A check that finds no edges would pass for any tree: make sure it reads.
    assert "llmgen.render.concerns" in GRAPH["llmgen.render.engine"]
    assert "llmgen.catalog.model" in GRAPH["llmgen.plan.build"]
    assert len(GRAPH) > 60


def test_no_cycle_between_modules() -> None:
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


@pytest.mark.parametrize("parent", packages(GRAPH))
def test_no_cycle_between_sibling_packages(parent: str) -> None:
    cycle = find_cycle(collapsed(GRAPH, parent))
    assert cycle is None, f"inside {parent}: " + " -> ".join(cycle or [])


def test_stages_import_only_downwards() -> None:
    rank = {name: i for i, group in enumerate(LAYERS) for name in group}
    wrong = []
    for src, targets in sorted(GRAPH.items()):
        top = src.split(".")[1] if "." in src else None
        if top not in rank:
            continue
        for dst in sorted(targets):
            other = dst.split(".")[1] if "." in dst else None
            if other in rank and other != top and rank[other] >= rank[top]:
                wrong.append(f"{src} -> {dst}")
    assert not wrong, "imports against the pipeline:\n" + "\n".join(wrong)


def test_every_stage_package_says_what_it_owns() -> None:
    for name in sorted(STAGE_PACKAGES | {"clouds"}):
        doc = ast.get_docstring(ast.parse((PKG / name / "__init__.py").read_text()))
        assert doc and len(doc) > 200, f"llmgen.{name} has no paragraph saying what it owns"
        assert "import" in doc, f"llmgen.{name}'s docstring does not say what it may import"


def test_the_checks_fail_on_a_cycle() -> None:
    # The same functions, on a graph with a known cycle and a known inversion.
    graph = {"llmgen.a.x": {"llmgen.b.y"}, "llmgen.b.y": {"llmgen.a.z"}, "llmgen.a.z": set()}
    assert find_cycle(graph) is None  # no module cycle...
    assert find_cycle(collapsed(graph, "llmgen")) == ["llmgen.a", "llmgen.b", "llmgen.a"]
