"""The training core and the GPU check run where only torch and transformers are installed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

# Importing any of these raises ImportError in the child: as on the GPU machines, which lack them.
BLOCK = "import sys\nfor m in ('vllm', 'faiss', 'polars', 'pyarrow'):\n    sys.modules[m] = None\n"


def test_gpu_check_runs_without_vllm_faiss_polars_or_pyarrow(tmp_path):
    code = BLOCK + (
        "import stages.tuning.trainer, stages.tuning.learners, stages.tuning.scoring\n"
        "from benchmarks import gpu_check\n"
        f"gpu_check.main(['--device', 'cpu', '--size', 'tiny', '--classes', '3', '--batch', '4', '--steps', '1',"
        f" '--warmup', '0', '--recipe-batch', '2', '--out', {str(tmp_path / 'report.json')!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    row = report["results"]["fp32"]
    assert report["texts_per_sept_step"] == 3 * (1 + 4)
    assert row["coop_step_ms"] > 0 and row["coop_sept_step_ms"] > 0 and 0 < row["text_tower_share"]
    assert all(row[k] > 0 for k in ("dept_step_ms", "palm_step_ms", "palm_eval_towers_encoding_step_ms",
                                    "palm_train_towers_encoding_step_ms"))
    from pipeline.config_loader import recipe_names

    assert sorted(report["recipes"]) == recipe_names()  # every recipe's step, for its own method
    assert report["recipes"]["palm-original"]["tower_mode"] == "train" and report["recipes"]["palm-original"][
        "method"] == "palm"
    assert {r["batch"] for r in report["recipes"].values()} == {2}  # --recipe-batch: the smoke test's size


def test_every_recipe_names_the_method_the_gpu_check_times_it_with():
    from benchmarks.gpu_check import RECIPE_METHODS
    from pipeline.config_loader import RECIPES_DIR, recipe_names

    assert sorted(RECIPE_METHODS) == recipe_names()
    for name, method in RECIPE_METHODS.items():  # the recipe's own first line names the method it is meant for
        first = (RECIPES_DIR / f"{name}.toml").read_text().splitlines()[0]
        assert f"--method {method}" in first or name == "palm", (name, first)
