"""The arrows point one way: the import graph of `streams/`, read from the source with `ast`.

(That the emulator imports nothing of the bridge is tests/unit/test_emulator_independence.py.)

Every import counts, also the ones inside functions (a lazy import is still an arrow: it is how
the old app.py <-> worker.py cycle hid), except those under `if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STREAMS = ROOT / "streams"

# what the pure pipeline may not reach: I/O clients, the event loop, and the rooms around it
IO_LIBRARIES = {"confluent_kafka", "httpx", "aiohttp", "faust", "asyncio", "socket", "requests", "urllib", "http", "threading"}
PIPELINE_MAY_IMPORT = ("streams.pipeline", "streams.errors", "streams.codec", "streams.mapping_spec")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in STREAMS.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The module of ours an import names (`streams.a.b.C` -> `streams.a.b`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in _imports_in(child))
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
        return
    yield from _imports(node)


def _targets(module: str) -> tuple[set[str], set[str]]:
    """(modules of ours, top-level third-party/stdlib packages) that `module` imports."""
    path = MODULES[module]
    ours: set[str] = set()
    others: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            if name == "streams" or name.startswith("streams."):
                target = _resolve(name)
                if target is not None and target != module:
                    ours.add(target)
            else:
                others.add(name.partition(".")[0])
    return ours, others


GRAPH = {m: _targets(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v][0]:
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
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read() -> None:
    # the reader itself: a known arrow is seen, so an empty graph cannot pass the checks below
    assert "streams.pipeline.transform" in MODULES
    assert "streams.pipeline.outcome" in GRAPH["streams.pipeline.transform"][0]
    assert "streams.config" in GRAPH["streams.worker"][0]


def test_no_import_cycles() -> None:
    assert _cycles() == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("streams.pipeline")))
def test_the_pipeline_stays_pure(module: str) -> None:
    ours, others = GRAPH[module]
    assert sorted(t for t in ours if not t.startswith(PIPELINE_MAY_IMPORT)) == []
    assert sorted(others & IO_LIBRARIES) == []
    # the codec's registry client is HTTP: the pipeline is handed schemas, it does not fetch them
    assert sorted(t for t in ours if t.startswith("streams.codec.registry")) == []


def test_loading_the_pipeline_loads_no_io_and_no_other_room() -> None:
    # what really gets loaded, transitively, in a fresh interpreter: the static check above sees
    # only direct arrows (config, for one, would bring every destination module with it)
    pipeline = sorted(m for m in MODULES if m.startswith("streams.pipeline"))
    code = (
        f"import importlib, json, sys\nfor m in {pipeline!r}: importlib.import_module(m)\nprint(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    ours = [m for m in loaded if m.startswith("streams.") and not m.startswith(PIPELINE_MAY_IMPORT)]
    assert ours == []
    assert [m for m in loaded if m.startswith("streams.codec.registry")] == []
    assert sorted({m.partition(".")[0] for m in loaded} & (IO_LIBRARIES - {"socket", "urllib", "http", "threading"})) == []


def test_the_mapping_language_is_pure() -> None:
    # config and the pipeline both read mappings through it, so it imports neither
    ours, others = GRAPH["streams.mapping_spec"]
    assert sorted(ours) == ["streams.errors"]
    assert sorted(others & IO_LIBRARIES) == []


def test_config_does_not_import_the_pipeline() -> None:
    assert sorted(t for t in GRAPH["streams.config"][0] if t.startswith("streams.pipeline")) == []
