"""Cross-dataset targets: the source's suite by default (a dataset of no suite, such as demo, never), every clip
of a folded target (the union of its folds' test files), class names shared with the source listed; targets
that share clips with the source: ESC50-Actions is left out of ESC-50's target mean, a declared overlap named
explicitly is reported apart with a warning, and a target whose test clips are byte-copies of the source's
training clips is refused. Real `tune` runs (zero-shot, tiny random CLAP) on tiny ESC-50 layouts."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
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
    layout made of byte-copies of those clips (as PALM distributes it), small PALM datasets of suite palm11:
    `toy` (its own clips), `leaky` (its test clips are copies of ESC-50 fold-2 clips), `twin` (its own clips,
    declared as overlapping ESC-50), `foldy` (two official folds, 3 test clips each), and `demo/`, a dataset of
    no suite."""
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

    for k, (name, leak) in enumerate((("toy", False), ("leaky", True), ("twin", False))):
        folder = root / name
        train, test = [], []
        for i, c in enumerate(("bell", "drum", "whistle")):
            tone(folder / "audios" / f"{c}_train.wav", 3000 + 50 * i + 7 * k)
            train.append((f"audios/{c}_train.wav", c))
            if leak:  # a copy of an ESC-50 fold-2 clip: in the source's train split when it tests on fold 1
                shutil.copy(esc / "audio" / f"2-{i:03d}-A-{i}.wav", folder / "audios" / f"{c}_test.wav")
            else:
                tone(folder / "audios" / f"{c}_test.wav", 3020 + 50 * i + 7 * k)
            test.append((f"audios/{c}_test.wav", c))
        csv(folder / "train.csv", train)
        csv(folder / "test.csv", test)
    foldy = root / "foldy"
    for fold in (1, 2):  # fold k tests on its own 3 clips and trains on the other fold's
        rows = []
        for i, c in enumerate(("siren", "dog bark", "rain")):
            tone(foldy / "audios" / f"{c}-{fold}.wav", 4000 + 60 * i + 9 * fold)
            rows.append((f"audios/{c}-{fold}.wav", c))
        csv(foldy / "csv_files" / f"test_{fold}.csv", rows)
        csv(foldy / "csv_files" / f"train_{3 - fold}.csv", rows)
    demo = root / "demo"
    classes = dataset_spec("demo").classes
    for i, c in enumerate(classes):
        for split in ("train", "test"):
            tone(demo / "audios" / f"{i}-{split}.wav", 5000 + 40 * i + (split == "test"))
    csv(demo / "train.csv", [(f"audios/{i}-train.wav", c) for i, c in enumerate(classes)])
    csv(demo / "test.csv", [(f"audios/{i}-test.wav", c) for i, c in enumerate(classes)])
    configs = root / "configs"
    configs.mkdir()
    for name in ("toy", "leaky", "twin"):
        overlap = 'overlaps = ["esc50"]\noverlap_reason = "declared for a test"\n' if name == "twin" else ""
        (configs / f"{name}.toml").write_text(f'name = "{name}"\ndisplay_name = "{name}"\nlayout = "palm"\n'
                                              f'suite = "palm11"\nclasses = ["bell", "drum", "whistle"]\n{overlap}')
    (configs / "foldy.toml").write_text('name = "foldy"\ndisplay_name = "foldy"\nlayout = "palm"\nsuite = "palm11"\n'
                                        'folds = ["fold1", "fold2"]\nclasses = ["dog bark", "rain", "siren"]\n')
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
    """The configs folder without `leaky`, so that the default targets hold no refused one."""
    folder = tmp_path / "configs"
    folder.mkdir()
    for name in ("toy", "twin", "foldy"):
        shutil.copy(data / "configs" / f"{name}.toml", folder / f"{name}.toml")
    monkeypatch.setenv("SEPT_DATASET_CONFIGS", str(folder))


def test_esc50_to_its_suite_scores_every_clip_of_a_folded_target_and_never_demo(data, no_leaky, tiny_clap_dir,
                                                                                tmp_path):
    code, out, err = tune("--dataset", "esc50", "--data-root", data, "--backbone", tiny_clap_dir,
                          "--out", tmp_path / "all", *FAST)
    assert code == 0, err
    m = json.loads(out)
    # the suite's datasets present are targets; demo/ (no suite) is none, even though it is under the data root
    assert list(m["targets"]) == ["foldy", "toy"] and m["overlapping_targets"] == {}
    assert "demo" not in m["targets"] and "demo" not in m["targets_missing"]
    # a folded target is scored on all its clips: both folds' test files, not its first fold's
    assert m["targets"]["foldy"]["num_clips"] == 6 and m["target_folds"] == {"foldy": ["fold1", "fold2"], "toy": []}
    assert m["fold"] == "fold1" and m["folds"] == ["fold1", "fold2", "fold3", "fold4", "fold5"]
    # declared overlaps are left out, and said why
    assert sorted(m["targets_excluded"]) == ["esc50-actions", "twin"]
    assert "ESC-50's own" in m["targets_excluded"]["esc50-actions"]
    assert m["mean_acc"] == pytest.approx((m["targets"]["toy"]["acc"] + m["targets"]["foldy"]["acc"]) / 2)
    assert "crema-d" in m["targets_missing"] and "esc50-actions" not in m["targets_missing"]
    # class names the source shares with a target are listed (kept, as CoCoOp's protocol keeps them)
    assert m["class_overlaps"]["foldy"] == [["dog", "dog bark"], ["rain", "rain"], ["siren", "siren"]]
    assert m["class_overlaps"]["toy"] == [["church bells", "bell"]]  # a plural is the same word
    report = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", str(tmp_path / "all")],
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    assert "foldy: dog ~ dog bark, rain ~ rain, siren ~ siren; toy: church bells ~ bell" in report.stdout


def test_a_source_of_no_suite_needs_named_targets(data, configs, tiny_clap_dir, tmp_path):
    code, _, err = tune("--dataset", "demo", "--data-root", data, "--backbone", tiny_clap_dir,
                        "--out", tmp_path / "demo", *FAST)
    assert code == 2 and "dataset demo belongs to no suite" in one_error_line(err)
    assert not (tmp_path / "demo").exists()


def test_naming_an_overlapping_target_reports_it_apart_with_a_warning(data, no_leaky, tiny_clap_dir,
                                                                        tmp_path):
    code, out, err = tune("--dataset", "esc50", "--data-root", data, "--backbone", tiny_clap_dir, *FAST,
                          "--targets", "toy,twin", "--out", tmp_path / "named")
    assert code == 0, err
    m = json.loads(out)
    assert list(m["targets"]) == ["toy"] and list(m["overlapping_targets"]) == ["twin"]
    assert m["overlapping_targets"]["twin"]["num_clips"] == 3
    assert m["mean_acc"] == m["targets"]["toy"]["acc"]  # never averaged in
    assert "warning: --targets twin: shares clips with the source" in err
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
    # ESC50-Actions named: all its clips are scored (the union of its folds' test files), and those of the folds
    # ESC-50 trains on are ESC-50's own: refused whichever fold ESC-50 tests
    for fold in ("fold1", "fold2"):
        code, _, err = tune(*common, "--fold", fold, "--targets", "esc50-actions", "--out", tmp_path / fold)
        assert code == 2
        line = one_error_line(err)
        assert "target esc50-actions: 10 of its 20 test clips" in line and "source esc50" in line


def test_the_benchmark_is_one_suite_and_demo_is_none_of_it(tmp_path):
    from stages.data.specs import list_datasets, parse_spec

    palm11 = sorted(n for n in list_datasets() if dataset_spec(n).suite == "palm11")
    assert palm11 == ["beijing-opera", "crema-d", "esc50", "esc50-actions", "gt-music-genre", "ns-instruments",
                      "ravdess", "sesa", "tut2017", "urbansound8k", "vocalsound"]
    assert dataset_spec("demo").suite == "" and dataset_spec("wordnet-sounds").suite != "palm11"
    assert dataset_spec("wordnet-sounds").suite == dataset_spec("gcide-sounds").suite == "text-proxy"
    bad = tmp_path / "odd.toml"
    bad.write_text('name = "odd"\ndisplay_name = "odd"\nlayout = "palm"\nclasses = ["a"]\nsuite = 11\n')
    with pytest.raises(Exception, match=r"dataset config .*odd.toml: key suite 11 must be a non-empty string"):
        parse_spec(bad)


def test_class_names_esc50_shares_with_the_other_datasets():
    from pipeline.protocols.plans import class_name_overlaps

    def shared(target):
        return class_name_overlaps(ESC50, dataset_spec(target).classes)

    assert shared("urbansound8k") == [("car horn", "car horn"), ("dog", "dog bark"), ("engine", "engine idling"),
                                      ("siren", "siren")]
    assert shared("vocalsound") == [("coughing", "Cough"), ("laughing", "Laughter"), ("sneezing", "Sneeze")]
    assert shared("sesa") == [("siren", "siren")]
    assert shared("crema-d") == [] and shared("beijing-opera") == []
