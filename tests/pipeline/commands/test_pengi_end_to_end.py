"""`tune` (CoOp +/- SEPT, base2new) and `evaluate` through the CLI on a tiny random Pengi checkpoint.

The checkpoint has Pengi's real key layout and loads through the path a user's base.pth takes
(`--backbone FOLDER`, kind detected from its keys). Stage one's embedding part is the store filled
with the backbone's own frozen text embeddings (tests/stages/tuning/tuning_kit.py), as test_tune does.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stages" / "tuning"))
from tuning_kit import fill_store, write_dataset  # noqa: E402

TEMPLATES = ["a sound of a {}."]
FAST = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4",
        "--set", "text.templates=" + json.dumps(TEMPLATES), "--set", "backbone.device=cpu"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone
    from stages.backbones.random_checkpoints import make_random_checkpoint

    root = tmp_path_factory.mktemp("pengi-e2e")
    model = make_random_checkpoint("pengi", "tiny", 0, root / "tiny-pengi")
    backbone = load_backbone(model, BackboneConfig(device="cpu"))
    spec = write_dataset(root / "data")
    gkey = fill_store(root / "cache", backbone, TEMPLATES)
    common = ["--data-root", root / "data", "--backbone", model, "--cache-dir", root / "cache",
              "--set", f"sept.generation_key={gkey!r}", *FAST]
    return {"root": root, "spec": spec, "common": common, "backbone": backbone, "model": model}


def cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize("sept", [False, True])
def test_tune_coop_base2new_on_pengi(world, capsys, sept):
    out = world["root"] / "runs" / f"coop-{sept}"
    code, stdout, err = cli(capsys, "tune", "--dataset", world["spec"], "--method", "coop",
                            *(["--sept"] if sept else []), "--protocol", "base2new", "--seed", 0, "--shots", 2,
                            "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["sept"]["enabled"] is sept and 0.0 <= m["hm"] <= 100.0
    assert m["train"]["logit_scale"] == 100.0  # PALM's fixed scale, from the backbone
    fp = json.loads((out / "fingerprints.json").read_text()) if (out / "fingerprints.json").exists() else None
    assert world["backbone"].fingerprint.startswith("pengi:tiny-pengi@")
    if fp is not None:
        assert fp["backbone"] == world["backbone"].fingerprint


def test_evaluate_zeroshot_on_pengi(world, capsys):
    out = world["root"] / "runs" / "zs"
    code, stdout, err = cli(capsys, "evaluate", "--method", "zeroshot", "--dataset", world["spec"],
                            "--data-root", world["root"] / "data", "--backbone", world["model"],
                            "--set", "backbone.device=cpu", "--set", "text.templates=" + json.dumps(TEMPLATES),
                            "--out", out, "--json")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone_fingerprint"] == world["backbone"].fingerprint


def test_backbones_info_and_make_random_for_pengi(world, capsys, tmp_path):
    code, stdout, err = cli(capsys, "backbones", "make-random", "--kind", "pengi", "--size", "tiny", "--seed", 0,
                            "--out", tmp_path / "again", "--json")
    assert code == 0, err
    # Same seed, same bytes: the same fingerprint hash as the fixture's checkpoint.
    assert json.loads(stdout)["fingerprint"].split("@")[1] == world["backbone"].fingerprint.split("@")[1]
    code, stdout, err = cli(capsys, "backbones", "info", world["model"], "--json", "--set", "backbone.device=cpu")
    assert code == 0, err
    info = json.loads(stdout)
    assert (info["sample_rate"], info["clip_seconds"], info["text_pooling"], info["logit_scale"]) == (44100, 7.0, "eos", 100.0)
