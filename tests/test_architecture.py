"""The package's shape: no import cycle between its modules, and the shared text helpers at the
bottom (house style 14). Read from the source with `ast`, so function-level imports count too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "qa"
MODULES = {f"qa.{p.stem}": p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__init__"}
TEXT_MAY_IMPORT = {"qa.types", "qa.errors"}
TEXT_HELPERS = {"split_sentences", "sentence_spans", "fold", "folded_words", "normalize", "tokenize", "anchors",
                "anchor_spans", "numbers", "figure_spans", "figures"}


def imported_modules(path: Path) -> set[str]:
    """The package's modules that `path` imports, anywhere in the file (module or function level).

    `from qa import reader` names the module qa.reader; `from qa.index import Index` names qa.index.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from .x import y
                base = "qa" + (f".{node.module}" if node.module else "")
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in MODULES)
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    True
    """
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node):], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_graph_sees_module_and_function_level_imports() -> None:
    graph = import_graph()
    assert "qa.text" in graph["qa.evidence"]
    assert "qa.pipeline" in graph["qa.cli"]  # imported inside the command functions only


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_text_helpers_import_no_stage() -> None:
    assert imported_modules(MODULES["qa.text"]) <= TEXT_MAY_IMPORT


def test_the_text_helpers_are_defined_only_in_qa_text() -> None:
    elsewhere = {f"{name}.{node.name}"
                 for name, path in MODULES.items() if name != "qa.text"
                 for node in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(node, ast.FunctionDef) and node.name in TEXT_HELPERS}
    assert not elsewhere, f"define these in qa/text.py and import them from there: {sorted(elsewhere)}"
