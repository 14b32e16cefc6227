"""The report reads records and arrays only: nothing under pipeline/report imports the backbones, the learners
or stage one (inspect.py, the verb that loads a model to read a prompt, is the one exception), and building a
report, with its diagnostic, loads none of them, nor torch (only the config sections, which the config
loader declares, come along)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("stages.backbones", "stages.tuning.learners", "stages.neighbors")
MODEL_LOADING = {"inspect.py"}
# Torch-free modules the config loader brings along: the dataclasses of the [backbone] and [neighbors] sections,
# the backbone kinds' records (each kind package's __init__ registers one; its adapter is never imported) and
# what backbone.kind / backbone.dtype are checked with.
CONFIG_SECTIONS = {"stages.backbones", "stages.backbones.config", "stages.backbones.registry",
                   "stages.backbones.clap", "stages.backbones.text_dual", "stages.backbones.pengi",
                   "stages.backbones.msclap", "stages.backbones.locate", "stages.backbones.fingerprint",
                   "stages.neighbors", "stages.neighbors.config"}


def imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return names


def test_no_report_module_imports_a_model_or_stage_one():
    found = [f"{path.relative_to(ROOT)}: {name}" for path in sorted((ROOT / "pipeline" / "report").rglob("*.py"))
             if path.name not in MODEL_LOADING
             for name in imported_names(path) if name.startswith(FORBIDDEN)]
    assert not found, found


def test_the_rule_sees_a_deferred_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from stages.backbones.factory import load_backbone\n")
    assert any(n.startswith(FORBIDDEN) for n in imported_names(bad))


def test_building_a_report_with_its_diagnostic_loads_no_model_code(tmp_path):
    code = (
        "import sys\n"
        "from pipeline.report.build import build_report\n"
        "from pipeline.report.diagnostic import diagnostic_sections\n"
        "from pipeline.report.paired import paired\n"
        "from pipeline.report.compare import compare\n"
        f"loaded = [m for m in sys.modules if m.startswith({FORBIDDEN!r}) and m not in {sorted(CONFIG_SECTIONS)!r}]\n"
        "loaded += [m for m in ('torch', 'transformers', 'faiss', 'vllm') if m in sys.modules]\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
