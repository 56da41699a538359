"""The package's shape: no import cycle, one definition of the log schema, a public API that is typed."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import cascade

PACKAGE = Path(cascade.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports (at import time or lazily in a
    function; imports only for type checkers do not count: they never run)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if _under_type_checking(node, parents):
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _resolve(module, is_package, node.level, node.module)
                elif node.module and node.module.startswith("cascade"):
                    base = node.module
                else:
                    continue
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("cascade")]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != module:
                    graph[module].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + ".") or node == "cascade":  # a package re-exporting its own modules
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["cascade._walk"] >= {"cascade._types", "cascade._gates", "cascade._ledger"}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_does_not_import_the_concrete_validators_protocol_from_them() -> None:
    """The check protocol lives in _types: the validators depend on the core, never the reverse for it."""
    graph = import_graph()
    for core in ("cascade._types", "cascade._errors", "cascade._events", "cascade._config", "cascade._gates"):
        assert not any(m.startswith("cascade.validators") for m in graph[core]), (core, graph[core])


def test_the_published_event_schema_is_generated_from_the_typed_definitions() -> None:
    published = json.loads((PACKAGE / "event-schema.json").read_text(encoding="utf-8"))
    assert published == cascade.event_json_schema(), "regenerate: cascade schema > cascade/event-schema.json"
    kinds = {
        d["properties"]["event"]["const"] for d in published["$defs"].values() if "event" in d.get("properties", {})
    }
    assert kinds == {"attempt", "request", "breaker", "idle", "resume"}
