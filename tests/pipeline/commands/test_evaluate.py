"""End to end: `sept-pipeline evaluate --method zeroshot` on the real demo recordings and the tiny random CLAP."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stages.data.audio import load_audio
from stages.data.datasets import load_dataset
from stages.data.demo import build_demo

CLI = [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    build_demo(root, progress=False)
    return root


def run_cli(*args, env_cache):
    env = {**__import__("os").environ, "SEPT_CACHE_DIR": str(env_cache)}
    return subprocess.run(CLI + list(args), capture_output=True, text=True, env=env)


def test_zeroshot_metrics_match_the_models_own_forward(demo_root, tiny_clap_dir, tiny_backbone, tmp_path):
    out = tmp_path / "run"
    r = run_cli("evaluate", "--method", "zeroshot", "--dataset", "demo", "--data-root", str(demo_root),
                "--backbone", str(tiny_clap_dir), "--out", str(out), "--json", env_cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("acc", "macro_f1", "per_class_acc", "num_clips", "fingerprints", "manifest", "started_at"):
        assert key in metrics
    assert metrics["schema_version"] == 1 and metrics["protocol"] == "fewshot" and metrics["method"] == "zeroshot"
    assert summary["acc"] == metrics["acc"]
    assert (out / "config.toml").is_file()
    assert metrics["fingerprints"]["backbone"] == tiny_backbone.fingerprint

    # Independent computation: class embeddings from ClapModel.get_text_features per template.
    ds = load_dataset("demo", demo_root)
    templates = json.loads((out / "config.json").read_text())["text"]["templates"]
    clap = tiny_backbone.clap
    with torch.no_grad():
        per_template = []
        for t in templates:
            tok = tiny_backbone.tokenizer([t.format(c) for c in ds.classnames], padding=True, return_tensors="pt")
            out_t = clap.get_text_features(**tok)
            feats = out_t.pooler_output if hasattr(out_t, "pooler_output") else out_t
            per_template.append(F.normalize(feats, dim=-1))
        classes = F.normalize(torch.stack(per_template).mean(0), dim=-1)
        waves = [load_audio(c.path, tiny_backbone.sample_rate) for c in ds.test]
        audio = F.normalize(tiny_backbone.encode_audio(waves), dim=-1)
    preds = (audio @ classes.T).argmax(-1).numpy()
    labels = np.array([c.label for c in ds.test])
    assert metrics["num_clips"] == len(ds.test)
    assert metrics["acc"] == pytest.approx(100.0 * (preds == labels).mean())

    # Second run reuses cached audio features and gives the same numbers.
    r2 = run_cli("evaluate", "--dataset", "demo", "--data-root", str(demo_root), "--backbone", str(tiny_clap_dir),
                 "--out", str(tmp_path / "run2"), "--json", env_cache=tmp_path / "cache")
    assert r2.returncode == 0, r2.stderr
    m2 = json.loads((tmp_path / "run2" / "metrics.json").read_text())
    assert m2["per_class_acc"] == metrics["per_class_acc"]

    # `evaluate` is a zero-shot run of `tune`: the same record, the same numbers.
    r3 = run_cli("tune", "--method", "zeroshot", "--protocol", "fewshot", "--dataset", "demo", "--data-root",
                 str(demo_root), "--backbone", str(tiny_clap_dir), "--out", str(tmp_path / "run3"), "--json",
                 env_cache=tmp_path / "cache")
    assert r3.returncode == 0, r3.stderr
    m3 = json.loads((tmp_path / "run3" / "metrics.json").read_text())
    assert set(m3) == set(metrics)
    assert (m3["acc"], m3["per_class_acc"], m3["manifest"]["text.templates"]) == (
        metrics["acc"], metrics["per_class_acc"], metrics["manifest"]["text.templates"])


def test_bad_dataset_root_is_one_line_exit_2_and_writes_nothing(tiny_clap_dir, tmp_path):
    out = tmp_path / "run"
    r = run_cli("evaluate", "--dataset", "demo", "--data-root", str(tmp_path / "nowhere"), "--backbone",
                str(tiny_clap_dir), "--out", str(out), env_cache=tmp_path / "cache")
    assert r.returncode == 2
    assert str(tmp_path / "nowhere") in r.stderr and r.stderr.strip().count("\n") == 0
    assert not out.exists()


def test_unknown_dataset_exit_2(tiny_clap_dir, tmp_path):
    r = run_cli("evaluate", "--dataset", "no-such-set", "--data-root", str(tmp_path), "--backbone",
                str(tiny_clap_dir), "--out", str(tmp_path / "o"), env_cache=tmp_path / "cache")
    assert r.returncode == 2 and "no-such-set" in r.stderr
