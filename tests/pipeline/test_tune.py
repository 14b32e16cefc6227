"""`sept-pipeline tune` end to end on the tiny random CLAP and the synthetic sine-tone datasets."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from stages.evaluation.metrics import harmonic_mean

# The stage-two test kit lives beside the stage tests (tests/stages/tuning/tuning_kit.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages" / "tuning"))
from tuning_kit import CLASSES, fill_store, write_dataset  # noqa: E402

TEMPLATES = ["a sound of a {}.", "the sound of {}."]
TEMPLATES_SET = "text.templates=" + json.dumps(TEMPLATES)
FAST = ["--set", "train.epochs=2", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4",
        "--set", TEMPLATES_SET, "--set", "backbone.device=cpu"]


def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", *map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clap_dir, tiny_backbone):
    """Data root with two datasets, a cache whose store holds every class's neighbors, the model dir."""
    root = tmp_path_factory.mktemp("tune")
    data = root / "data"
    spec = write_dataset(data)
    other = write_dataset(data, name="synth2", classes=["bell", "drum", "whistle"])
    cache = root / "cache"
    gkey = fill_store(cache, tiny_backbone, TEMPLATES)
    common = ["--data-root", data, "--backbone", tiny_clap_dir, "--cache-dir", cache,
              "--set", f"sept.generation_key={gkey!r}", *FAST]
    return {"root": root, "spec": spec, "other": other, "common": common, "cache": cache}


def test_base2new_coop_sept_writes_a_complete_run_and_skips_it_next_time(world, capsys, tiny_backbone):
    out = world["root"] / "runs" / "coop-sept"
    code, stdout, err = cli(capsys, "--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                            "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["method"] == "coop" and m["protocol"] == "base2new" and m["seed"] == 0 and m["shots"] == 2
    assert m["hm"] == pytest.approx(harmonic_mean(m["base_acc"], m["new_acc"]))
    assert m["base"]["num_clips"] == 6 and m["new"]["num_clips"] == 6  # 3 classes x 2 test clips each
    assert m["train_classes"] == CLASSES[:3] and m["num_train_clips"] == 6
    assert m["sept"] == {"enabled": True, "active": True, "lam": 1.0, "alpha": 1.0, "beta": 1.0,
                         "neighbors_per_step": "all", "inter_negatives": "all", "cocoop_bias": "none"}
    assert m["recipe"]["name"] == "palm" and "asif-hanif/palm" in m["recipe"]["source"]
    assert m["train"]["logit_scale"] == 100.0
    fp = m["fingerprints"]
    assert fp["backbone"] == tiny_backbone.fingerprint
    assert fp["store"]["encoder_fingerprint"] == tiny_backbone.fingerprint and fp["store"]["num_phrases"] == 15
    assert set(fp["features"]) == {"base", "new", "train"}
    for name in ("config.toml", "config.json", "train_log.jsonl", "prompt.safetensors", "base_new_split.json",
                 "checkpoints/latest.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "base_new_split.json").read_text())["new"] == CLASSES[3:]
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2

    code, stdout, _ = cli(capsys, "--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                          "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"])
    assert code == 0 and "already finished" in stdout
    before = (out / "metrics.json").stat().st_mtime_ns
    code, stdout, _ = cli(capsys, "--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                          "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"], "--force")
    assert code == 0 and "base2new coop+SEPT (seed 0, 2 shots): base" in stdout
    assert (out / "metrics.json").stat().st_mtime_ns != before


@pytest.mark.parametrize("method", ["zeroshot", "kgcoop", "cocoop"])
def test_fewshot_protocol_for_each_method(world, capsys, method):
    out = world["root"] / "runs" / f"fewshot-{method}"
    code, stdout, err = cli(capsys, "--dataset", world["spec"], "--method", method, "--no-sept", "--protocol",
                            "fewshot", "--shots", 1, "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["num_clips"] == 12 and set(m["per_class_acc"]) == set(CLASSES)
    assert 0 <= m["acc"] <= 100 and 0 <= m["macro_f1"] <= 100
    assert (out / "prompt.safetensors").is_file() == (method != "zeroshot")


def test_recipe_flag_is_applied_and_recorded(world, capsys, tiny_backbone):
    import tomllib

    out = world["root"] / "runs" / "kg-original"
    code, stdout, err = cli(capsys, "--dataset", world["spec"], "--method", "kgcoop", "--no-sept", "--protocol",
                            "fewshot", "--shots", 1, "--out", out, "--recipe", "kgcoop-original", *world["common"],
                            "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["recipe"]["name"] == "kgcoop-original" and "htyao89/KgCoOp" in m["recipe"]["source"]
    assert m["train"]["logit_scale"] == pytest.approx(tiny_backbone.logit_scale())  # "checkpoint"
    assert m["method_config"]["kg_templates"] == ["a sound of a {}."]
    assert m["method_config"]["ctx_init"] == "a sound of a"
    saved = tomllib.loads((out / "config.toml").read_text())
    # The recipe's values, under the run's own --set keys (FAST: 2 epochs, no warm-up).
    assert saved["recipe"]["name"] == "kgcoop-original" and saved["train"]["batch_size"] == 128
    assert saved["train"]["schedule"] == "cosine" and saved["train"]["epochs"] == 2
    assert saved["train"]["warmup_epochs"] == 0
    line = _one_line_exit_2(*cli(capsys, "--dataset", world["spec"], "--method", "coop", "--protocol", "fewshot",
                                 "--out", world["root"] / "runs" / "bad-recipe", "--recipe", "sgd-fast",
                                 *world["common"])[::2])
    assert "recipe 'sgd-fast': unknown (known: cocoop-original, coop, kgcoop-original, palm" in line


def test_cross_protocol_evaluates_each_target_with_its_own_classes(world, capsys):
    out = world["root"] / "runs" / "cross"
    code, stdout, err = cli(capsys, "--dataset", world["spec"], "--method", "coop", "--sept", "--protocol", "cross",
                            "--targets", world["other"], "--shots", 1, "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert list(m["targets"]) == ["synth2"]
    assert set(m["targets"]["synth2"]["per_class_acc"]) == {"bell", "drum", "whistle"}
    assert m["mean_acc"] == m["targets"]["synth2"]["acc"] and m["train_classes"] == CLASSES
    assert m["source"]["num_clips"] == 12 and m["source_acc"] == m["source"]["acc"]
    assert set(m["fingerprints"]["features"]) == {"source", "synth2", "train"}


def _one_line_exit_2(code, err):
    assert code == 2, err
    # Progress bars (transformers' weight loading) may precede it; the error itself is one last line.
    errors = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("error")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


def test_bad_method_protocol_and_context_length_exit_2(world, capsys):
    base = ["--dataset", world["spec"], "--out", world["root"] / "runs" / "bad", *world["common"]]
    line = _one_line_exit_2(*cli(capsys, *base, "--method", "coopp", "--protocol", "base2new")[::2])
    assert "method.name: 'coopp' is not one of zeroshot, coop, cocoop, kgcoop" in line
    line = _one_line_exit_2(*cli(capsys, *base, "--method", "coop", "--protocol", "base-to-new")[::2])
    assert "--protocol 'base-to-new': unknown (known: base2new, cross, fewshot)" in line
    line = _one_line_exit_2(*cli(capsys, *base, "--method", "coop", "--protocol", "base2new",
                                 "--set", "method.n_ctx=90")[::2])
    assert "method.n_ctx: 90 context tokens plus the class name" in line
    assert not (world["root"] / "runs" / "bad" / "metrics.json").exists()


def test_class_without_training_clip_exits_2(world, capsys, tmp_path):
    spec = write_dataset(tmp_path, name="holes", skip_train=["car horn"])
    args = ["--dataset", spec, "--method", "coop", "--no-sept", "--protocol", "base2new", "--out", tmp_path / "r",
            *world["common"]]
    args[args.index("--data-root") + 1] = tmp_path
    line = _one_line_exit_2(*cli(capsys, *args)[::2])
    assert "dataset holes: 1 training classes have no training clip: 'car horn'" in line


def test_missing_neighbors_stop_before_training_with_the_fill_command(world, capsys, tmp_path):
    empty_cache = tmp_path / "cache"
    args = ["--dataset", world["spec"], "--method", "coop", "--sept", "--protocol", "base2new",
            "--out", tmp_path / "r", *world["common"]]
    args[args.index("--cache-dir") + 1] = empty_cache
    line = _one_line_exit_2(*cli(capsys, *args)[::2])
    assert "3 of 3 training classes have no neighbors" in line
    assert f"sept-pipeline generate-neighbors --dataset {world['spec']}" in line and str(empty_cache) in line
    assert not (tmp_path / "r" / "train_log.jsonl").exists()


def test_unfinished_run_needs_resume_and_refuses_another_backbone(world, capsys, tmp_path, tiny_clap_dir):
    out = tmp_path / "r"
    args = ["--dataset", world["spec"], "--method", "coop", "--no-sept", "--protocol", "base2new", "--shots", 1,
            "--out", out, *world["common"]]
    assert cli(capsys, *args)[0] == 0
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint, before the metrics
    line = _one_line_exit_2(*cli(capsys, *args)[::2])
    assert "holds an unfinished run; pass --resume to continue it or --force" in line

    renamed = tmp_path / "tiny-clap-renamed"  # same weights, another folder: another fingerprint
    shutil.copytree(tiny_clap_dir, renamed)
    other = list(args)
    other[other.index("--backbone") + 1] = renamed
    line = _one_line_exit_2(*cli(capsys, *other, "--resume")[::2])
    assert "trained on backbone clap:tiny-clap@" in line and "this run uses clap:tiny-clap-renamed@" in line

    code, stdout, err = cli(capsys, *args, "--resume", "--json")
    assert code == 0, err
    assert json.loads(stdout)["train"]["resumed_from_epoch"] == 2


def test_random_crop_training_and_hardest_negatives(world, capsys, tmp_path):
    out = tmp_path / "crop"
    code, stdout, err = cli(capsys, "--dataset", world["spec"], "--method", "coop", "--sept", "--protocol", "base2new",
                            "--shots", 2, "--out", out, *world["common"], "--set", "train.random_crop=true",
                            "--set", 'sept.inter_negatives="hardest:2"', "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["sept"]["inter_negatives"] == "hardest:2"
    assert "train" not in m["fingerprints"]["features"]  # training clips were encoded per step, not cached
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(r["inter"] >= 0 and r["intra"] >= 0 for r in log)
