"""`sept-pipeline tune` end to end on the tiny random CLAP and the synthetic sine-tone datasets."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from cli_kit import run_in_process
from pipeline.config_loader import recipe_names
from stages.evaluation.metrics import harmonic_mean

# The stage-two test kit lives beside the stage tests (tests/stages/tuning/tuning_kit.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stages" / "tuning"))
from tuning_kit import CLASSES, fill_store, write_dataset  # noqa: E402

TEMPLATES = ["a sound of a {}.", "the sound of {}."]
TEMPLATES_SET = "text.templates=" + json.dumps(TEMPLATES)
FAST = ["--set", "train.epochs=2", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4",
        "--set", TEMPLATES_SET, "--set", "backbone.device=cpu"]


def tune(*args):
    """`sept-pipeline tune ARGS` in this process: (exit code, stdout, stderr)."""
    return run_in_process("tune", *args)


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
              "--set", f"sept.generation={gkey!r}", *FAST]
    return {"root": root, "spec": spec, "other": other, "common": common, "cache": cache}


def fp_key(world) -> str:
    return next(a for a in world["common"] if str(a).startswith("sept.generation=")).split("=", 1)[1].strip("'")


def test_base2new_coop_sept_writes_a_complete_run_and_skips_it_next_time(world, tiny_backbone):
    out = world["root"] / "runs" / "coop-sept"
    code, stdout, err = tune("--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                             "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["method"] == "coop" and m["protocol"] == "base2new" and m["seed"] == 0 and m["shots"] == 2
    assert m["hm"] == pytest.approx(harmonic_mean(m["base_acc"], m["new_acc"]))
    assert m["base"]["num_clips"] == 6 and m["new"]["num_clips"] == 6  # 3 classes x 2 test clips each
    assert m["train_classes"] == CLASSES[:3] and m["num_train_clips"] == 6
    # [sept] and [method] as the resolved config wrote them (not re-listed by hand), plus what the run adds
    config = json.loads((out / "config.json").read_text())
    assert m["sept"] == {**config["sept"], "active": True} and m["sept"]["lam"] == 1.0
    assert m["method_config"] == {**config["method"], "n_ctx_used": 4}
    # the run record: schema, times (UTC, ordered), the manifest of the protocol
    assert m["schema_version"] == 1 and m["eval_split"] == "test" and m["skipped"] is False
    assert m["started_at"].endswith("Z") and m["started_at"] <= m["finished_at"]
    manifest = m["manifest"]
    assert manifest["data.seed"] == 0 and manifest["data.shots"] == 2 and manifest["recipe.name"] == "palm"
    assert manifest["sept.enabled"] is True and manifest["sept.generation_used"] == fp_key(world)
    assert manifest["precision.autocast"] == "off" and manifest["backbone.dtype"] == "float32"
    assert manifest["text.templates"] == TEMPLATES and manifest["data.fold"] == "" and manifest["data.folds"] == []
    # the diagnostic's arrays, written while the learner was in memory: every class has stored neighbors here
    assert m["diagnostic"]["file"] == "diagnostic.npz" and m["diagnostic"]["classes"] == len(CLASSES)
    assert (out / "diagnostic.npz").is_file()
    near = m["diagnostic"]["neighbors_near_evaluated_names"]  # neighbors of base classes vs the new class names
    assert near["evaluated_names"] == 3 and near["neighbors_of_trained_classes"] == 15
    assert all(p[0] in CLASSES[:3] and p[2] in CLASSES[3:] for p in near["pairs"])
    assert m["recipe"]["name"] == "palm" and "asif-hanif/palm" in m["recipe"]["source"]
    assert m["train"]["logit_scale"] == 100.0
    assert m["neighbor_selection"]["boundary_filter"].startswith("off: the encoder does not separate")
    fp = m["fingerprints"]
    assert fp["backbone"] == tiny_backbone.fingerprint
    assert fp["store"]["encoder_fingerprint"] == tiny_backbone.fingerprint and fp["store"]["num_phrases"] == 15
    assert set(fp["features"]) == {"base", "new", "train"}
    for name in ("config.toml", "config.json", "train_log.jsonl", "prompt.safetensors", "base_new_split.json",
                 "checkpoints/latest.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "base_new_split.json").read_text())["new"] == CLASSES[3:]
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2

    code, stdout, _ = tune("--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                           "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"])
    assert code == 0 and "already finished" in stdout
    first_start = m["started_at"]
    before = (out / "metrics.json").stat().st_mtime_ns
    code, stdout, _ = tune("--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                           "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"], "--force")
    assert code == 0 and "base2new coop+SEPT (seed 0, 2 shots): base" in stdout
    assert (out / "metrics.json").stat().st_mtime_ns != before
    assert json.loads((out / "metrics.json").read_text())["started_at"] > first_start  # --force starts anew


@pytest.mark.parametrize("method", ["zeroshot", "kgcoop", "cocoop"])
def test_fewshot_protocol_for_each_method(world, method):
    out = world["root"] / "runs" / f"fewshot-{method}"
    code, stdout, err = tune("--dataset", world["spec"], "--method", method, "--no-sept", "--protocol",
                             "fewshot", "--shots", 1, "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["num_clips"] == 12 and set(m["per_class_acc"]) == set(CLASSES)
    assert 0 <= m["acc"] <= 100 and 0 <= m["macro_f1"] <= 100
    assert (out / "prompt.safetensors").is_file() == (method != "zeroshot")
    assert (out / "diagnostic.npz").is_file() == (method != "zeroshot")
    if method == "zeroshot":
        assert m["diagnostic"] == {"skipped": "zeroshot has no prompt that neighbors go through"}


def test_recipe_flag_is_applied_and_recorded(world, tiny_backbone):
    import tomllib

    out = world["root"] / "runs" / "kg-original"
    code, stdout, err = tune("--dataset", world["spec"], "--method", "kgcoop", "--no-sept", "--protocol",
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
    line = _one_line_exit_2(*tune("--dataset", world["spec"], "--method", "coop", "--protocol", "fewshot",
                                 "--out", world["root"] / "runs" / "bad-recipe", "--recipe", "sgd-fast",
                                 *world["common"])[::2])
    assert f"recipe 'sgd-fast': unknown (known: {', '.join(recipe_names())};" in line


def test_palm_original_trains_with_train_mode_towers_and_scores_after_training(world, capsys, tiny_backbone):
    """The recipe's conditions reach the run: towers in train mode (their BatchNorm statistics saved beside the
    prompt), random test windows, channels end to end; the test features are computed after training."""
    from safetensors.torch import load_file

    out = world["root"] / "runs" / "palm-original"
    code, stdout, err = tune("--dataset", world["spec"], "--method", "palm", "--protocol", "fewshot",
                            "--shots", 1, "--out", out, "--recipe", "palm-original", *world["common"], "--json",
                            "--set", "train.epochs=1")
    assert code == 0, err
    m = json.loads(stdout)
    saved = json.loads((out / "config.json").read_text())
    assert m["train"]["tower_mode"] == "train" and m["train"]["amp"] == "off" and m["recipe"]["name"] == "palm-original"
    assert "train" not in m["fingerprints"]["features"]  # encoded at every step, never cached
    buffers = load_file(str(out / "tower_buffers.safetensors"))
    frozen = tiny_backbone.tower_buffers()
    assert set(buffers) == set(frozen) and not torch.equal(buffers[next(k for k in frozen if "running_mean" in k)],
                                                           frozen[next(k for k in frozen if "running_mean" in k)])
    assert saved["data"]["channels"] == "concat" and saved["train"]["eval_crop"] == "random"


def test_sept_lab_runs_base2new_with_the_datasets_template_and_the_lowest_loss_epoch(world, capsys, tmp_path):
    """Recipe sept-lab end to end: the dataset's own template, SubT's selection rule recorded, SEPT on."""
    spec = tmp_path / "synth.toml"
    spec.write_text(world["spec"].read_text() + 'template = "a sound of a {}."\n')  # the store holds it
    out = world["root"] / "runs" / "sept-lab"
    code, stdout, err = tune("--dataset", spec, "--method", "coop", "--sept", "--protocol", "base2new",
                            "--shots", 2, "--seed", 0, "--out", out, "--recipe", "sept-lab", *world["common"],
                            "--json", "--set", "train.epochs=3", "--set", "sept.boundary_filter=false")
    assert code == 0, err
    m = json.loads(stdout)
    rows = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    lowest = min(range(len(rows)), key=lambda i: (rows[i]["loss"], i))
    assert m["train"]["select"] == "lowest_train_loss" and m["train"]["selected_epoch"] == lowest
    assert m["train"]["tower_mode"] == "train_bn_eval" and m["sept"]["active"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["text"]["templates"] == ["a sound of a {}."] and saved["text"]["dataset_template"]
    line = _one_line_exit_2(*tune("--dataset", world["spec"], "--method", "coop", "--protocol", "base2new",
                                 "--out", world["root"] / "runs" / "no-template", "--recipe", "sept-lab",
                                 *world["common"])[::2])
    assert "text.dataset_template" in line and "has no template" in line


def test_cross_protocol_evaluates_each_target_with_its_own_classes(world):
    out = world["root"] / "runs" / "cross"
    code, stdout, err = tune("--dataset", world["spec"], "--method", "coop", "--sept", "--protocol", "cross",
                             "--targets", world["other"], "--shots", 1, "--out", out, *world["common"], "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert list(m["targets"]) == ["synth2"]
    assert set(m["targets"]["synth2"]["per_class_acc"]) == {"bell", "drum", "whistle"}
    assert m["mean_acc"] == m["targets"]["synth2"]["acc"] and m["train_classes"] == CLASSES
    assert m["source"]["num_clips"] == 12 and m["source_acc"] == m["source"]["acc"]
    assert set(m["fingerprints"]["features"]) == {"source", "synth2", "train"}
    # The class boundary is drawn among the source's classes only, never the target's.
    assert m["neighbor_selection"]["against"] == "the 6 training classes"
    assert set(m["neighbor_selection"]["kept"]) == set(CLASSES)


def _one_line_exit_2(code, err):
    assert code == 2, err
    # Progress bars (transformers' weight loading) may precede it; the error itself is one last line.
    errors = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("error")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


def test_bad_method_protocol_and_context_length_exit_2(world):
    base = ["--dataset", world["spec"], "--out", world["root"] / "runs" / "bad", *world["common"]]
    line = _one_line_exit_2(*tune(*base, "--method", "coopp", "--protocol", "base2new")[::2])
    assert "method.name: 'coopp' is not one of zeroshot, coop, cocoop, kgcoop" in line
    line = _one_line_exit_2(*tune(*base, "--method", "coop", "--protocol", "base-to-new")[::2])
    assert "--protocol 'base-to-new': unknown (known: base2new, cross, fewshot)" in line
    line = _one_line_exit_2(*tune(*base, "--method", "coop", "--protocol", "base2new",
                                  "--set", "method.n_ctx=90")[::2])
    assert "method.n_ctx: 90 context tokens plus the class name" in line
    assert not (world["root"] / "runs" / "bad" / "metrics.json").exists()


def test_class_without_training_clip_exits_2(world, tmp_path):
    spec = write_dataset(tmp_path, name="holes", skip_train=["car horn"])
    args = ["--dataset", spec, "--method", "coop", "--no-sept", "--protocol", "base2new", "--out", tmp_path / "r",
            *world["common"]]
    args[args.index("--data-root") + 1] = tmp_path
    line = _one_line_exit_2(*tune(*args)[::2])
    assert "dataset holes: 1 training classes have no training clip: 'car horn'" in line


def test_missing_neighbors_stop_before_training_with_the_fill_command(world, tmp_path):
    empty_cache = tmp_path / "cache"
    args = ["--dataset", world["spec"], "--method", "coop", "--sept", "--protocol", "base2new",
            "--out", tmp_path / "r", *world["common"]]
    args[args.index("--cache-dir") + 1] = empty_cache
    line = _one_line_exit_2(*tune(*args)[::2])  # the key the common arguments name is not in this store
    assert "neither a name nor a generation key in the store" in line and "names: none; keys: none" in line
    line = _one_line_exit_2(*tune(*args, "--set", "sept.generation=auto")[::2])
    assert "sept.generation = 'auto': the neighbor store" in line and "holds no generation" in line
    assert f"sept-pipeline generate-neighbors --dataset {world['spec']}" in line and str(empty_cache) in line
    assert "sept-pipeline neighbors import FILE --name NAME" in line
    assert not (tmp_path / "r" / "train_log.jsonl").exists()


def test_unfinished_run_needs_resume_and_refuses_another_backbone(world, tmp_path, tiny_clap_dir):
    out = tmp_path / "r"
    args = ["--dataset", world["spec"], "--method", "coop", "--no-sept", "--protocol", "base2new", "--shots", 1,
            "--out", out, *world["common"]]
    assert tune(*args)[0] == 0
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint, before the metrics
    line = _one_line_exit_2(*tune(*args)[::2])
    assert "holds an unfinished run; pass --resume to continue it or --force" in line

    renamed = tmp_path / "tiny-clap-renamed"  # same weights, another folder: another fingerprint
    shutil.copytree(tiny_clap_dir, renamed)
    other = list(args)
    other[other.index("--backbone") + 1] = renamed
    line = _one_line_exit_2(*tune(*other, "--resume")[::2])
    assert "trained on backbone clap:tiny-clap@" in line and "this run uses clap:tiny-clap-renamed@" in line

    code, stdout, err = tune(*args, "--resume", "--json")
    assert code == 0, err
    assert json.loads(stdout)["train"]["resumed_from_epoch"] == 2


def test_resume_accepts_a_change_in_how_the_run_executes_only(world, tmp_path):
    """method.cocoop_chunk and train.log_to only bound memory or choose log files (identity=False)."""
    out = tmp_path / "r"
    args = ["--dataset", world["spec"], "--method", "cocoop", "--no-sept", "--protocol", "base2new", "--shots", 1,
            "--out", out, *world["common"], "--set", "method.cocoop_chunk=4"]
    assert tune(*args)[0] == 0
    (out / "metrics.json").unlink()  # as if killed after its last checkpoint, before the metrics
    line = _one_line_exit_2(*tune(*args, "--set", "train.lr=0.01", "--resume")[::2])
    assert "made with a different config.train.lr (0.05 vs now 0.01)" in line
    code, stdout, err = tune(*args, "--set", "method.cocoop_chunk=1", "--set", 'train.log_to=["jsonl"]',
                             "--resume", "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["train"]["resumed_from_epoch"] == 2 and m["method_config"]["cocoop_chunk"] == 1


def test_random_crop_training_and_hardest_negatives(world, tmp_path):
    out = tmp_path / "crop"
    code, stdout, err = tune("--dataset", world["spec"], "--method", "coop", "--sept", "--protocol", "base2new",
                             "--shots", 2, "--out", out, *world["common"], "--set", "train.random_crop=true",
                             "--set", 'sept.inter_negatives="hardest:2"', "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["sept"]["inter_negatives"] == "hardest:2"
    assert "train" not in m["fingerprints"]["features"]  # training clips were encoded per step, not cached
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(r["inter"] >= 0 and r["intra"] >= 0 for r in log)


def _spy(monkeypatch, module_name, name, calls):
    """Wrap the real function, recording what it receives (name, args, kwargs); its result is unchanged.
    A function that does not exist is not wrapped (the caller asserts which ones were called)."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return
    real = getattr(module, name, None)
    if real is None:
        return

    def recording(*args, **kwargs):
        calls.append((name, args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, recording)


def _strings_and_arrays(value):
    """Every str and every numeric array (numpy or torch) inside an argument, recursively."""
    import numpy as np
    import torch

    if isinstance(value, str):
        yield value
    elif isinstance(value, torch.Tensor):
        yield value.detach().double().numpy()
    elif isinstance(value, np.ndarray):
        yield value.astype(np.float64)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_and_arrays(k)
            yield from _strings_and_arrays(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings_and_arrays(v)


def test_base2new_boundary_sees_only_base_classes_and_is_recorded(world, monkeypatch, tiny_backbone):
    """No new-class name or frozen embedding reaches anything that selects neighbors for training, and the
    run records the tune-time boundary's kept/dropped counts per base class, which match an independent
    float64 computation on the backbone's own frozen text tower."""
    import numpy as np

    from stages.neighbors import filters
    from tuning_kit import NEIGHBORS, frozen_template_embeddings

    base, new = CLASSES[:3], CLASSES[3:]
    template_mean = filters.template_mean  # the real one, for this test's own reference numbers
    forbidden_texts = set(new) | {p for c in new for p in NEIGHBORS[c]}
    frozen = frozen_template_embeddings(tiny_backbone, sorted(forbidden_texts), TEMPLATES).astype(np.float64)
    forbidden_rows = np.concatenate([frozen.reshape(-1, frozen.shape[-1]), template_mean(frozen)])
    calls: list = []
    _spy(monkeypatch, "stages.tuning.neighbor_source", "load_neighbor_bank", calls)
    _spy(monkeypatch, "stages.tuning.neighbor_source", "template_mean", calls)
    _spy(monkeypatch, "stages.tuning.neighbor_boundary", "separates_texts", calls)
    _spy(monkeypatch, "stages.tuning.neighbor_boundary", "class_boundary_view", calls)

    out = world["root"] / "runs" / "coop-sept-boundary"
    # The random tiny CLAP keeps its texts within cosine 0.999: a threshold of 1 lets the boundary decide.
    code, stdout, err = tune("--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                             "base2new", "--seed", 0, "--shots", 2, "--out", out, *world["common"],
                             "--set", "sept.same_text_cos=1.0", "--json")
    assert code == 0, err
    m = json.loads(stdout)

    names = [name for name, _, _ in calls]
    assert {"class_boundary_view", "load_neighbor_bank", "template_mean", "separates_texts"} <= set(names)
    for name, args, kwargs in calls:
        for item in _strings_and_arrays([args, kwargs]):
            if isinstance(item, str):
                assert item not in forbidden_texts, f"{name} received new-class text {item!r}"
            elif item.size and item.shape[-1] == forbidden_rows.shape[1]:
                rows = item.reshape(-1, item.shape[-1])
                gap = np.abs(rows[:, None, :] - forbidden_rows[None, :, :]).max(axis=2)
                assert gap.min() > 1e-5, f"{name} received a new-class embedding"
    assert [a[3] for name, a, _ in calls if name == "load_neighbor_bank"] == [base]

    # The record, checked against the frozen tower run now in float64: a neighbor is dropped iff another
    # base class name is strictly closer to it than its own.
    sel = m["neighbor_selection"]
    assert sel["boundary_filter"] == "on" and sel["against"] == "the 3 training classes"
    assert m["sept"]["boundary_filter"] is True
    means = {t: v for t, v in zip(base + [p for c in base for p in NEIGHBORS[c]], template_mean(
        frozen_template_embeddings(tiny_backbone, base + [p for c in base for p in NEIGHBORS[c]], TEMPLATES)))}
    expected = {}
    for i, c in enumerate(base):
        sims = np.array([[means[p] @ means[b] for b in base] for p in NEIGHBORS[c]])
        expected[c] = [p for p, s in zip(NEIGHBORS[c], sims) if np.delete(s, i).max() > s[i]]
    assert sel["dropped_phrases"] == {c: v for c, v in expected.items() if v}
    assert sel["dropped"] == {c: len(expected[c]) for c in base}
    assert sel["kept"] == {c: len(NEIGHBORS[c]) - len(expected[c]) for c in base}
    assert 0 < sum(sel["dropped"].values()) < sum(len(NEIGHBORS[c]) for c in base)  # the view did something
    assert m["fingerprints"]["store"]["num_phrases"] == sum(sel["kept"].values())
    assert m["fingerprints"]["store"]["neighbors_per_class"] == {c: len(NEIGHBORS[c]) for c in base}


def test_validation_run_trains_and_scores_inside_the_base_classes(world):
    """data.eval_split=val: validation-base = the first 2 of the 3 base classes, validation-new = the third;
    4 training items per class -> 1 held out (round(1.2)) per validation-base class, all 4 of the third."""
    out = world["root"] / "runs" / "coop-sept-val"
    code, stdout, err = tune("--dataset", world["spec"], "--method", "coop", "--sept", "--protocol",
                             "base2new", "--seed", 1, "--shots", 2, "--out", out, *world["common"],
                             "--set", "data.eval_split='val'", "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["eval_split"] == "val" and m["train_classes"] == CLASSES[:2]
    assert m["base"]["num_clips"] == 2 and m["new"]["num_clips"] == 4 and m["num_train_clips"] == 4
    split = json.loads((out / "base_new_split.json").read_text())
    assert split["base"] == CLASSES[:2] and split["new"] == [CLASSES[2]] and split["eval_split"] == "val"
    # SEPT's neighbors and their class boundary: the validation-base classes only
    sel = m["neighbor_selection"]
    assert set(sel["kept"]) == set(sel["dropped"]) == set(CLASSES[:2])
