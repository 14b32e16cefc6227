"""`tune --fold all|foldN` on a tiny 3-fold dataset in PALM's fold layout, and `report` over the fold runs."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cli_kit import run_in_process
from pipeline.report.build import frames

CLASSES = ["bell", "drum", "whistle"]
FAST = ["--set", 'text.templates=["a sound of a {}."]', "--set", "backbone.device=cpu", "--set", "train.epochs=1",
        "--set", "train.warmup_epochs=0", "--set", "method.n_ctx=2", "--method", "coop", "--no-sept",
        "--protocol", "fewshot", "--shots", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """tri/: audios/ + csv_files/train_k.csv, test_k.csv for k = 1..3 (fold k = test, the others = train),
    plus a stray train.csv/test.csv that must never be read; tri.toml declares the 3 folds."""
    root = tmp_path_factory.mktemp("folds")
    folder = root / "tri"
    (folder / "audios").mkdir(parents=True)
    t = np.arange(3200) / 16000
    by_fold = {}
    for k in (1, 2, 3):
        rows = []
        for i, c in enumerate(CLASSES):
            for j in range(2):
                name = f"f{k}_{c}{j}.wav"
                wave = 0.5 * np.sin(2 * np.pi * (300 * (i + 1) + 17 * k + 7 * j) * t)
                sf.write(str(folder / "audios" / name), wave.astype(np.float32), 16000)
                rows.append(f"audios/{name},{c}")
        by_fold[k] = rows
    (folder / "csv_files").mkdir()
    for k in (1, 2, 3):
        train = [r for other in (1, 2, 3) if other != k for r in by_fold[other]]
        (folder / "csv_files" / f"train_{k}.csv").write_text("path,classname\n" + "\n".join(train) + "\n")
        (folder / "csv_files" / f"test_{k}.csv").write_text("path,classname\n" + "\n".join(by_fold[k]) + "\n")
    (folder / "train.csv").write_text("path,classname\naudios/f1_bell0.wav,bell\n")
    (folder / "test.csv").write_text("path,classname\naudios/f1_bell0.wav,bell\n")
    (root / "tri.toml").write_text('name = "tri"\ndisplay_name = "Tri"\nlayout = "palm"\n'
                                   'folds = ["fold1", "fold2", "fold3"]\nclasses = ["bell", "drum", "whistle"]\n')
    return root


def tune(*args):
    """`sept-pipeline tune ARGS` in this process: (exit code, stdout, stderr)."""
    return run_in_process("tune", *args)


def test_fold_all_runs_every_fold_in_its_own_folder_and_report_averages_them(data, tiny_clap_dir, tmp_path):
    out = tmp_path / "tri-coop"
    common = ["--dataset", data / "tri.toml", "--data-root", data, "--backbone", tiny_clap_dir, *FAST]
    code, stdout, err = tune(*common, "--fold", "all", "--out", out, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert [m["fold"] for m in result["folds"]] == ["fold1", "fold2", "fold3"]
    accs = []
    for k, m in enumerate(result["folds"], start=1):
        run = out / f"fold{k}"
        saved = json.loads((run / "metrics.json").read_text())
        assert saved["fold"] == f"fold{k}" and saved["folds"] == ["fold1", "fold2", "fold3"]
        assert f'fold = "fold{k}"' in (run / "config.toml").read_text()
        # fold k tests on fold k's 6 clips and trains on the other folds' 12 (never the stray train.csv's 1)
        assert saved["num_clips"] == 6 and saved["num_train_clips"] == 12
        accs.append(saved["acc"])
    assert result["mean_over_folds"]["num_folds"] == 3
    assert result["mean_over_folds"]["acc"] == pytest.approx(statistics.mean(accs))

    # report: one row, the mean over the 3 folds of this one seed, saying it averages 3 folds of 3
    row = [r for r in frames(out)["fewshot"].iter_rows(named=True) if r["dataset"] == "tri"]
    assert len(row) == 1
    assert row[0]["acc_mean"] == pytest.approx(statistics.mean(accs)) and row[0]["n_seeds"] == 1
    assert (row[0]["folds_min"], row[0]["folds_max"], row[0]["folds_declared"]) == (3, 3, 3)

    # a rerun finds every fold finished; the plain summary says so per fold and gives the mean
    code, stdout, _ = tune(*common, "--fold", "all", "--out", out)
    assert code == 0 and stdout.count("already finished") == 3
    assert f"mean over 3 folds (fold1, fold2, fold3): acc {statistics.mean(accs):.2f}" in stdout


def test_single_fold_and_bad_fold(data, tiny_clap_dir, tmp_path):
    common = ["--dataset", data / "tri.toml", "--data-root", data, "--backbone", tiny_clap_dir, *FAST]
    code, stdout, err = tune(*common, "--fold", "fold2", "--out", tmp_path / "one", "--json")
    assert code == 0, err
    m = json.loads(stdout)
    assert m["fold"] == "fold2" and (tmp_path / "one" / "metrics.json").is_file()
    code, _, err = tune(*common, "--fold", "fold9", "--out", tmp_path / "bad")
    assert code == 2 and err.rstrip().splitlines()[-1] == (
        "error: fold 'fold9': not an official fold of dataset tri (accepted: fold1, fold2, fold3)")
    code, _, err = tune(*common, "--fold", "third", "--out", tmp_path / "bad")
    assert code == 2 and "config key data.fold: 'third' is not one of '', 'all' or a fold name" in err
