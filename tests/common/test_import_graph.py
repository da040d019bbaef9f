"""No import cycle in berth_common, the services or the cli.

The graph is read from the source with ``ast``: an edge goes from a module to every module of the project
it imports, including imports made only for type checking (a cycle there is still two modules that cannot
be understood one without the other). ``from a.b import c`` leads to ``a.b.c`` when that is a module,
else to ``a.b``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [ROOT / "libs" / "common" / "src", *sorted((ROOT / "services").glob("*/src")), ROOT / "cli" / "src"]


def modules(roots: Iterable[Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every module under ``roots`` (migrations are scripts, not modules)."""
    found: dict[str, Path] = {}
    for root in roots:
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            if "migrations" not in parts:
                found[".".join(parts)] = path
    return found


def imports_of(name: str, source: str, known: Iterable[str]) -> set[str]:
    """The modules among ``known`` that the module ``name`` (of text ``source``) imports; a package's
    ``__init__`` is passed as ``<package>.__init__`` so its relative imports resolve inside it."""
    known = set(known)
    package = name.rpartition(".")[0]
    edges: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in known:
                    edges.add(target)
                elif base in known:
                    edges.add(base)
    return edges


def import_graph(roots: Iterable[Path]) -> dict[str, set[str]]:
    found = modules(roots)
    graph = {}
    for name, path in found.items():
        # A package's relative imports are relative to the package itself.
        package_name = f"{name}.__init__" if path.name == "__init__.py" else name
        graph[name] = imports_of(package_name, path.read_text(), found) - {name}
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative depth-first search: (node, iterator over its successors).
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph.get(succ, ())))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_project_has_no_import_cycle():
    graph = import_graph(SOURCE_ROOTS)
    assert "berth_common.bus.client" in graph and "berth_notifier.bootstrap" in graph  # the roots were read
    assert graph["berth_common.bus.client"] >= {"berth_common.bus.consumer"}
    assert cycles(graph) == []


def test_a_cycle_is_found_however_long():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e", "e2"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_and_type_checking_imports_are_edges():
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.sub", "pkg.sub.d"}
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "from .sub.d import thing\n"
        "import pkg.c\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.sub import helper\n"
    )
    assert imports_of("pkg.a", source, known) == {"pkg.b", "pkg.sub.d", "pkg.c", "pkg.sub"}
