"""`tune` (CoOp +/- SEPT, base2new) and `evaluate` through the CLI on tiny random Pengi and MS-CLAP checkpoints.

Each checkpoint has its kind's real key layout and loads through the path a user's base.pth takes
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


@pytest.fixture(scope="module", params=["pengi", "msclap-2022", "msclap-2023"])
def world(request, tmp_path_factory):
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone
    from stages.backbones.random_checkpoints import make_random_checkpoint

    kind = request.param
    root = tmp_path_factory.mktemp("e2e")
    model = make_random_checkpoint(kind, "tiny", 0, root / f"tiny-{kind}")
    backbone = load_backbone(model, BackboneConfig(device="cpu"))
    spec = write_dataset(root / "data")
    gkey = fill_store(root / "cache", backbone, TEMPLATES)
    common = ["--data-root", root / "data", "--backbone", model, "--cache-dir", root / "cache",
              "--set", f"sept.generation_key={gkey!r}", *FAST]
    return {"root": root, "spec": spec, "common": common, "backbone": backbone, "model": model, "kind": kind}


def cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize("sept", [False, True])
def test_tune_coop_base2new(world, capsys, sept):
    out = world["root"] / "runs" / f"coop-{sept}"
    code, stdout, err = cli(capsys, "tune", "--dataset", world["spec"], "--method", "coop",
                            *(["--sept"] if sept else []), "--protocol", "base2new", "--seed", 0, "--shots", 2,
                            "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["sept"]["enabled"] is sept and 0.0 <= m["hm"] <= 100.0
    assert m["train"]["logit_scale"] == 100.0  # the default 'palm' recipe fixes the scale whatever the backbone
    assert world["backbone"].fingerprint.startswith(f"{world['kind']}:tiny-{world['kind']}@")


def test_evaluate_zeroshot(world, capsys):
    out = world["root"] / "runs" / "zs"
    code, stdout, err = cli(capsys, "evaluate", "--method", "zeroshot", "--dataset", world["spec"],
                            "--data-root", world["root"] / "data", "--backbone", world["model"],
                            "--set", "backbone.device=cpu", "--set", "text.templates=" + json.dumps(TEMPLATES),
                            "--out", out, "--json")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backbone_fingerprint"] == world["backbone"].fingerprint


def test_backbones_info_and_make_random(world, capsys, tmp_path):
    code, stdout, err = cli(capsys, "backbones", "make-random", "--kind", world["kind"], "--size", "tiny", "--seed", 0,
                            "--out", tmp_path / "again", "--json")
    assert code == 0, err
    # Same seed, same bytes: the same fingerprint hash as the fixture's checkpoint.
    assert json.loads(stdout)["fingerprint"].split("@")[1] == world["backbone"].fingerprint.split("@")[1]
    code, stdout, err = cli(capsys, "backbones", "info", world["model"], "--json", "--set", "backbone.device=cpu")
    assert code == 0, err
    info = json.loads(stdout)
    b = world["backbone"]
    assert (info["sample_rate"], info["clip_seconds"], info["text_pooling"], info["embed_dim"]) == (
        44100, b.clip_seconds, b.text_pooling, b.embed_dim)
    assert info["fingerprint"] == b.fingerprint and info["logit_scale"] == pytest.approx(b.logit_scale())


def test_generate_neighbors_encodes_stored_phrases_with_the_backbone(world, capsys):
    """Stage one's embedding part: phrases already stored under the default generation key (as an earlier
    run's LLM left them), so the run asks the LLM nothing and encodes every phrase with this backbone."""
    from cache.store import ClassNeighbors, NeighborStore, Provenance
    from pipeline.config_loader import load_config
    from stages.neighbors.keys import resolve_generation

    cache = world["root"] / "stage-one-cache"
    # Eight per class: the default [neighbors] asks for 8, so fewer would send the class back to the LLM.
    phrases = {"dog": ["barking puppy", "canine howl", "woof", "growling hound", "yelping dog", "dog barking",
                       "puppy yap", "snarling dog"],
               "rain": ["downpour", "raindrops falling", "drizzle", "rainfall", "heavy rain", "pouring rain",
                        "rain shower", "light rain"]}
    cfg = load_config()
    ident = resolve_generation(cfg.neighbors, cache)
    prov = Provenance(ident.llm["id"], ident.llm["revision"], ident.llm["fingerprint"], "vllm", "seeded",
                      ident.prompt_hash, ident.template.version, 8)
    NeighborStore.in_cache(cache).put_phrases([ClassNeighbors(c, p, prov, {"temperature": 0.0}, seed=0)
                                               for c, p in phrases.items()])
    classes = world["root"] / "classes.txt"
    classes.write_text("dog\nrain\n")
    code, stdout, err = cli(capsys, "generate-neighbors", "--classes-file", classes, "--backbone", world["model"],
                            "--cache-dir", cache, "--set", "backbone.device=cpu", "--json")
    assert code == 0, err
    s = json.loads(stdout)
    assert (s["llm_requests"], s["classes_reused"], s["phrases_encoded"]) == (0, 2, 18)
    assert NeighborStore.in_cache(cache).manifest().encoders() == [world["backbone"].fingerprint]
