"""pipeline/ has no import cycles: each module's imports (top-level and deferred ones inside functions alike)
form a directed acyclic graph, so every room can be read, tested and moved without dragging its callers in.

The graph is built from the source with ast, independently of Python's import machinery (a cycle hidden by a
deferred import still counts: it is still a room that knows its caller)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_files(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the package folder."""
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` is or lies in (`a.b.f` -> `a.b` when f is a function)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports anywhere in its body."""
    modules = module_files(package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" for alias in node.names]  # a submodule, or a name in `base`
            else:
                continue
            deps |= {m for m in (_owning_module(t, modules) for t in targets) if m}
        deps.discard(name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search with three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_hand_made_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_deferred_and_relative_imports():
    graph = import_graph("pipeline")
    assert "pipeline.protocols.runner" in graph["pipeline.sweep.cell_process"]  # imported inside a function
    assert "pipeline.sweep.warm" in graph["pipeline.sweep.launch"]  # likewise
    assert "pipeline.commands.entry" in graph["pipeline.cli"]


def test_nothing_below_the_command_line_imports_it():
    """The CLI (pipeline/cli.py, pipeline/commands/) is the top floor of pipeline/: it calls the protocols, sweeps
    and reports, never the other way round (a sweep cell runs `run_tune`, not the `tune` verb)."""
    top = ("pipeline.cli", "pipeline.commands")
    graph = import_graph("pipeline")
    upward = sorted(f"{m} -> {d}" for m, deps in graph.items() if not m.startswith(top)
                    for d in deps if d.startswith(top))
    assert upward == []


@pytest.mark.parametrize("package", ["pipeline", "stages", "cache"])
def test_no_import_cycles(package):
    cycle = find_cycle(import_graph(package))
    assert cycle is None, f"import cycle in {package}/: {' -> '.join(cycle)}"


def imported_names(path: Path) -> set[str]:
    """Every absolute module name a file imports, at the top or inside a function (relative ones resolved)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    here = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - (node.level - 1)] + ([base] if base else []))
            out |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return out


STAGE_TWO = ("stages/tuning", "pipeline/report")


@pytest.mark.parametrize("folder", STAGE_TWO)
def test_stage_two_and_the_report_never_import_stage_one(folder):
    """Issue 21: tune and report read the store, never stage one's code (which resolves and hashes the LLM), so
    they run where the LLM is absent. Helpers both stages need live below both (cache/unit_vectors.py)."""
    offenders = [f"{p.relative_to(ROOT)} imports {name}" for p in sorted((ROOT / folder).rglob("*.py"))
                 for name in sorted(imported_names(p))
                 if name == "stages.neighbors" or name.startswith("stages.neighbors.")]
    assert not offenders, "; ".join(offenders)


def test_the_rule_finds_a_deferred_stage_one_import(tmp_path):
    """The checker itself, on a hand-made file: an import inside a function counts."""
    f = ROOT / "stages" / "tuning" / "_rule_probe_tmp.py"
    try:
        f.write_text("def g():\n    from stages.neighbors.filters import template_mean\n    return template_mean\n")
        assert "stages.neighbors.filters" in imported_names(f)
    finally:
        f.unlink()
