"""The text proxy's two datasets through the real CLI: `datasets prepare` prints what each masking rule did, and
`tune --protocol cross` trains on WordNet-Sounds and scores GCIDE-Sounds (another author's words for the same
kinds of things) with the packaged all-MiniLM-L6-v2 as both towers (`packaged:minilm-dual`).

The cross run uses 6-class slices of both built datasets (the first items of each class, in each dataset's own
split) so that it takes seconds; the zero-shot figures of the full datasets are a slow test (minutes on 2 cores).
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main

PACKAGED = "packaged:minilm-dual"
CLASSES = ["dog", "duck", "gun", "horse", "ship", "stringed instrument"]  # base: dog, duck, gun
FAST = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=4",
        "--set", 'text.templates=["a sound of a {}."]', "--set", "backbone.device=cpu"]


def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def write_slice(full: Path, folder: Path, configs: Path, per_split: dict[str, int]) -> None:
    """<folder> in PALM's layout with the first items of CLASSES per split, and <configs>/<name>.toml naming it."""
    for split, count in per_split.items():
        with open(full / f"{split}.csv", newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r["classname"] in CLASSES]
        picked = [r for c in CLASSES for r in [r for r in rows if r["classname"] == c][:count]]
        for r in picked:
            (folder / r["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(full / r["path"], folder / r["path"])
        (folder / f"{split}.csv").write_text(
            "path,classname\n" + "".join(f"{r['path']},{r['classname']}\n" for r in picked), encoding="utf-8")
    quoted = ", ".join(f'"{c}"' for c in CLASSES)
    (configs / f"{full.name}.toml").write_text(
        f'name = "{full.name}"\ndisplay_name = "{full.name} slice"\nlayout = "palm"\nsuite = "text-proxy"\n'
        f'classes = [{quoted}]\n')


def test_prepare_prints_what_each_rule_did(capsys, text_proxy_root):
    code, out, err = cli(capsys, "datasets", "prepare", "gcide-sounds", "--root", text_proxy_root)
    assert code == 0, err
    manifest = json.loads((text_proxy_root / "gcide-sounds" / "manifest.json").read_text())
    rules, dropped = manifest["rules"], manifest["rules"]["dropped"]
    assert out.startswith(f"reused {text_proxy_root / 'gcide-sounds'}: ")
    assert f"  hyponyms left out: {dropped['no_entry']} without a GCIDE entry" in out
    for i, rule in enumerate(("lemma", "substring", "derivation", "head", "modifier"), 1):
        n = rules["changed_per_rule"][rule]
        assert f"  rule {i} ({rule}): changed {n['items']} kept items ({n['candidates']} candidates)" in out
    code, out, _ = cli(capsys, "datasets", "prepare", "wordnet-sounds", "--root", text_proxy_root, "--json")
    assert code == 0 and json.loads(out)["rules"]["items_changed_beyond_rule_1"] > 0


def test_cross_from_wordnet_sounds_to_gcide_sounds(capsys, text_proxy_root, tmp_path, monkeypatch):
    data, configs = tmp_path / "data", tmp_path / "configs"
    configs.mkdir()
    write_slice(text_proxy_root / "wordnet-sounds", data / "wordnet-sounds", configs, {"train": 4, "test": 3})
    write_slice(text_proxy_root / "gcide-sounds", data / "gcide-sounds", configs, {"train": 1, "test": 3})
    monkeypatch.setenv("SEPT_DATASET_CONFIGS", str(configs))
    common = ["--dataset", "wordnet-sounds", "--data-root", data, "--protocol", "cross", "--backbone", PACKAGED,
              "--cache-dir", tmp_path / "cache", "--seed", 1, "--shots", 4, *FAST]
    code, _, err = cli(capsys, "tune", *common, "--method", "coop", "--no-sept", "--targets", "gcide-sounds",
                       "--out", tmp_path / "runs" / "coop")
    assert code == 0, err
    m = json.loads((tmp_path / "runs" / "coop" / "metrics.json").read_text())
    target = m["targets"]["gcide-sounds"]
    assert m["protocol"] == "cross" and list(m["targets"]) == ["gcide-sounds"] and not m["overlapping_targets"]
    assert target["num_clips"] == 3 * len(CLASSES) and sorted(target["per_class_acc"]) == CLASSES
    assert m["mean_acc"] == target["acc"] and m["source"]["num_clips"] == 3 * len(CLASSES)
    assert m["train_classes"] == CLASSES and m["num_train_clips"] == 4 * len(CLASSES)
    # without --targets the other dataset of the data root is the target
    code, _, err = cli(capsys, "tune", *common, "--method", "zeroshot", "--out", tmp_path / "runs" / "zeroshot")
    assert code == 0, err
    assert list(json.loads((tmp_path / "runs" / "zeroshot" / "metrics.json").read_text())["targets"]) == [
        "gcide-sounds"]


@pytest.mark.slow
def test_zero_shot_is_well_above_chance_and_below_90_percent_on_both(capsys, text_proxy_root, tmp_path):
    """The figures of docs/benchmarks.md ("Datasets: the text proxy's zero-shot sanity"), 8 default templates."""
    code, _, err = cli(capsys, "tune", "--dataset", "wordnet-sounds", "--data-root", text_proxy_root,
                       "--method", "zeroshot", "--protocol", "cross", "--targets", "gcide-sounds",
                       "--backbone", PACKAGED, "--cache-dir", tmp_path / "cache", "--seed", 1, "--shots", 1,
                       "--set", "backbone.device=cpu", "--out", tmp_path / "zs")
    assert code == 0, err
    m = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    target = m["targets"]["gcide-sounds"]
    print(json.dumps({"wordnet-sounds": m["source_acc"], "gcide-sounds": target["acc"]}))
    chance = 100 / 49
    assert 10 * chance < m["source_acc"] < 90 and m["source"]["num_clips"] > 800
    assert 10 * chance < target["acc"] < 90 and target["num_clips"] > 400


def test_an_untouched_older_build_is_rebuilt_an_edited_one_is_not(capsys, text_proxy_root, tmp_path):
    folder = tmp_path / "wordnet-sounds"
    shutil.copytree(text_proxy_root / "wordnet-sounds", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    # an older build: another item text and rule version, its manifest consistent with its files
    item = next(rel for rel in manifest["files"] if rel.endswith(".txt"))
    (folder / item).write_text("an older text of this item\n", encoding="utf-8")
    manifest["files"][item] = hashlib.sha256((folder / item).read_bytes()).hexdigest()
    manifest["recipe"]["rule_version"] = 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, out, err = cli(capsys, "datasets", "prepare", "wordnet-sounds", "--root", tmp_path)
    assert code == 0, err
    assert out.startswith(f"rebuilt {folder} (it held rule version 1): ")
    fresh = text_proxy_root / "wordnet-sounds" / "manifest.json"
    assert (folder / "manifest.json").read_bytes() == fresh.read_bytes()
    # a file edited by hand (its sha256 no longer the manifest's): not ours to replace without --force
    (folder / item).write_text("edited by hand\n", encoding="utf-8")
    code, out, err = cli(capsys, "datasets", "prepare", "wordnet-sounds", "--root", tmp_path)
    assert code == 2 and "exists but is not this WordNet-Sounds build" in err and "--force" in err
    assert (folder / item).read_text() == "edited by hand\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".wordnet-sounds.") and p.is_dir()]
