"""Cross-dataset targets that share data with the source: ESC50-Actions is left out of ESC-50's target mean,
named explicitly it is reported apart with a warning, and a target whose test clips are byte-copies of the
source's training clips is refused. Real `tune` runs (zero-shot, tiny random CLAP) on tiny ESC-50 layouts."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_kit import run_in_process
from stages.data.specs import dataset_spec

ESC50 = list(dataset_spec("esc50").classes)
ACTIONS = list(dataset_spec("esc50-actions").classes)
FAST = ["--set", 'text.templates=["a sound of a {}."]', "--set", "backbone.device=cpu", "--method", "zeroshot",
        "--no-sept", "--protocol", "cross", "--json"]


def tone(path: Path, freq: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(1600) / 16000
    sf.write(str(path), (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)


def csv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("path,classname\n" + "".join(f"{p},{c}\n" for p, c in rows))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """ESC50/ in ESC-50's own layout (folds 1 and 2, one clip per class each), ESC50-Actions/ in PALM's fold
    layout made of byte-copies of those clips (as PALM distributes it), and two small PALM datasets:
    `toy` (its own clips) and `leaky` (its test clips are copies of ESC-50 fold-2 clips)."""
    root = tmp_path_factory.mktemp("cross-data")
    esc = root / "ESC50"
    meta = ["filename,fold,target,category,esc10,src_file,take"]
    for i, c in enumerate(ESC50):
        for fold in (1, 2):
            name = f"{fold}-{i:03d}-A-{i}.wav"
            tone(esc / "audio" / name, 100 + 13 * i + 5 * fold)
            meta.append(f"{name},{fold},{i},{c.replace(' ', '_')},False,{i},A")
    (esc / "meta").mkdir()
    (esc / "meta" / "esc50.csv").write_text("\n".join(meta) + "\n")

    act = root / "ESC50-Actions"
    for fold in (1, 2):
        rows = []
        for c in ACTIONS:
            name = f"{fold}-{ESC50.index(c):03d}-A-{ESC50.index(c)}.wav"
            (act / "audios").mkdir(parents=True, exist_ok=True)
            shutil.copy(esc / "audio" / name, act / "audios" / name)
            rows.append((f"audios/{name}", c))
        # PALM's fold k: test = fold k, train = the others (here: just the other one)
        csv(act / "csv_files" / f"test_{fold}.csv", rows)
        csv(act / "csv_files" / f"train_{3 - fold}.csv", rows)

    for name, leak in (("toy", False), ("leaky", True)):
        folder = root / name
        train, test = [], []
        for i, c in enumerate(("bell", "drum", "whistle")):
            tone(folder / "audios" / f"{c}_train.wav", 3000 + 50 * i)
            train.append((f"audios/{c}_train.wav", c))
            if leak:  # a copy of an ESC-50 fold-2 clip: in the source's train split when it tests on fold 1
                shutil.copy(esc / "audio" / f"2-{i:03d}-A-{i}.wav", folder / "audios" / f"{c}_test.wav")
            else:
                tone(folder / "audios" / f"{c}_test.wav", 3020 + 50 * i)
            test.append((f"audios/{c}_test.wav", c))
        csv(folder / "train.csv", train)
        csv(folder / "test.csv", test)
    configs = root / "configs"
    configs.mkdir()
    for name in ("toy", "leaky"):
        (configs / f"{name}.toml").write_text(f'name = "{name}"\ndisplay_name = "{name}"\nlayout = "palm"\n'
                                              f'classes = ["bell", "drum", "whistle"]\n')
    return root


@pytest.fixture()
def configs(data, monkeypatch):
    monkeypatch.setenv("SEPT_DATASET_CONFIGS", str(data / "configs"))


def tune(*args):
    """`sept-pipeline tune ARGS` in this process: (exit code, stdout, stderr)."""
    return run_in_process("tune", *args)


def one_error_line(err: str) -> str:
    errors = [x for x in err.replace("\r", "\n").splitlines() if x.startswith("error")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    return errors[0]


@pytest.fixture()
def no_leaky(data, monkeypatch, tmp_path):
    """The configs folder without `leaky`, so that the default targets are toy and esc50-actions."""
    folder = tmp_path / "configs"
    folder.mkdir()
    shutil.copy(data / "configs" / "toy.toml", folder / "toy.toml")
    monkeypatch.setenv("SEPT_DATASET_CONFIGS", str(folder))


def test_esc50_to_all_targets_never_averages_esc50_actions(data, no_leaky, tiny_clap_dir, tmp_path):
    code, out, err = tune("--dataset", "esc50", "--data-root", data, "--backbone", tiny_clap_dir,
                          "--out", tmp_path / "all", *FAST)
    assert code == 0, err
    m = json.loads(out)
    # every other dataset present is a target, except the one sharing ESC-50's clips: left out, and said why
    assert list(m["targets"]) == ["toy"] and m["overlapping_targets"] == {}
    assert m["fold"] == "fold1" and m["folds"] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    assert list(m["targets_excluded"]) == ["esc50-actions"] and "ESC-50's own" in m["targets_excluded"]["esc50-actions"]
    assert m["mean_acc"] == m["targets"]["toy"]["acc"]
    assert "crema-d" in m["targets_missing"] and "esc50-actions" not in m["targets_missing"]


def test_naming_an_overlapping_target_reports_it_apart_with_a_warning(data, no_leaky, tiny_clap_dir,
                                                                        tmp_path):
    code, out, err = tune("--dataset", "esc50", "--data-root", data, "--backbone", tiny_clap_dir, *FAST,
                          "--targets", "toy,esc50-actions", "--out", tmp_path / "named")
    assert code == 0, err
    m = json.loads(out)
    assert list(m["targets"]) == ["toy"] and list(m["overlapping_targets"]) == ["esc50-actions"]
    assert m["overlapping_targets"]["esc50-actions"]["num_clips"] == len(ACTIONS)
    assert m["mean_acc"] == m["targets"]["toy"]["acc"]  # never averaged in
    assert "warning: --targets esc50-actions: shares data with the source" in err
    assert m["warnings"] and "reported apart" in m["warnings"][0]
    # the run's config records the fold it tested
    assert 'fold = "fold1"' in (tmp_path / "named" / "config.toml").read_text()


def test_target_testing_on_the_source_training_clips_is_refused(data, configs, tiny_clap_dir, tmp_path):
    common = ["--dataset", "esc50", "--data-root", data, "--backbone", tiny_clap_dir, *FAST]
    code, _, err = tune(*common, "--targets", "leaky", "--out", tmp_path / "leaky")
    assert code == 2
    line = one_error_line(err)
    assert "cross-dataset target leaky: 3 of its 3 test clips have the same content as training clips of the " \
           "source esc50" in line
    assert not (tmp_path / "leaky" / "metrics.json").exists()
    # the default target list holds `leaky` too: refused as well, not silently averaged
    code, _, err = tune(*common, "--out", tmp_path / "default")
    assert code == 2 and "target leaky" in one_error_line(err)
    # ESC50-Actions named while ESC-50 tests fold 2 (trains on fold 1): its fold-1 test clips are ESC-50's
    code, _, err = tune(*common, "--fold", "fold2", "--targets", "esc50-actions", "--out", tmp_path / "f2")
    assert code == 2
    line = one_error_line(err)
    assert "target esc50-actions: 10 of its 10 test clips" in line and "source esc50" in line
