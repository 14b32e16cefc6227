"""`report` over folded runs: folds averaged within a seed, then seeds; both HM conventions; overlapping
cross-dataset targets apart. Hand-made run records with known values, checked against hand computations."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from pipeline.report.build import build_report, frames
from record_kit import write_record


def hm(b: float, n: float) -> float:
    return 2 * b * n / (b + n)


def write_run(root: Path, name: str, fold: str, **kw) -> Path:
    # tune writes the fold into the run's config too: it must not split the runs into "variants"
    return write_record(root, name, config={"data": {"fold": fold, "seed": kw["seed"]}, "train": {"lr": 0.05}},
                        fold=fold, folds=("fold1", "fold2", "fold3"), **kw)


# A 3-fold dataset "tri": (base, new) per seed and fold.
TRI = {1: {"fold1": (60.0, 30.0), "fold2": (70.0, 40.0), "fold3": (80.0, 50.0)},
       2: {"fold1": (50.0, 40.0), "fold2": (54.0, 36.0), "fold3": (58.0, 44.0)}}


@pytest.fixture()
def tri_runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, folds in TRI.items():
        for fold, (b, n) in folds.items():
            write_run(root, f"tri-seed{seed}/{fold}", fold, protocol="base2new", dataset="tri", method="coop",
                      seed=seed, base=b, new=n)
    return root


def test_folds_are_averaged_within_a_seed_then_over_seeds(tri_runs: Path):
    table = frames(tri_runs)["base2new"]
    rows = [r for r in table.iter_rows(named=True) if r["dataset"] == "tri"]
    assert len(rows) == 1, rows  # one row: fold is not a variant
    r = rows[0]
    # By hand. Seed 1: base (60+70+80)/3 = 70, new (30+40+50)/3 = 40. Seed 2: base (50+54+58)/3 = 54,
    # new (40+36+44)/3 = 40. Over seeds: base mean 62, sample std sqrt(8^2 + 8^2) = sqrt(128); new 40 +/- 0.
    assert r["n_seeds"] == 2 and r["seeds"] == "1,2"
    assert (r["folds_min"], r["folds_max"], r["folds_declared"]) == (3, 3, 3)
    assert r["base_mean"] == pytest.approx(62.0) and r["base_std"] == pytest.approx(math.sqrt(128))
    assert r["new_mean"] == pytest.approx(40.0) and r["new_std"] == pytest.approx(0.0)
    # HM, mean of per-seed HM: seed 1 = (40 + 5600/110 + 8000/130) / 3, seed 2 = (4000/90 + 3888/90 + 5104/102) / 3.
    seed1 = (40.0 + 5600 / 110 + 8000 / 130) / 3
    seed2 = (4000 / 90 + 3888 / 90 + 5104 / 102) / 3
    assert seed1 == pytest.approx(50.81585, abs=1e-5) and seed2 == pytest.approx(45.89455, abs=1e-5)
    assert r["hm_mean"] == pytest.approx((seed1 + seed2) / 2)                     # 48.3552
    assert r["hm_std"] == pytest.approx(abs(seed1 - seed2) / math.sqrt(2))
    # HM of the seed-averaged base and new (CoOp's tables): 2 * 62 * 40 / 102.
    assert r["hm_of_means"] == pytest.approx(4960 / 102)                         # 48.6275
    assert abs(r["hm_of_means"] - r["hm_mean"]) > 0.2                            # the conventions differ here


def test_average_row_gives_both_hm_conventions(tri_runs: Path, tmp_path: Path):
    # A second dataset without folds: base 80/70 (seeds 1, 2), new 20/30.
    for seed, (b, n) in {1: (80.0, 20.0), 2: (70.0, 30.0)}.items():
        write_record(tri_runs, f"duo-seed{seed}", config={"train": {"lr": 0.05}}, protocol="base2new", dataset="duo",
                     seed=seed, base=b, new=n)
    table = frames(tri_runs)["base2new"]
    avg = [r for r in table.iter_rows(named=True) if r["dataset"] == "Average"][0]
    seed1 = (40.0 + 5600 / 110 + 8000 / 130) / 3
    seed2 = (4000 / 90 + 3888 / 90 + 5104 / 102) / 3
    tri_hm = (seed1 + seed2) / 2
    duo_hm = (3200 / 100 + 4200 / 100) / 2                                       # (32 + 42) / 2 = 37
    assert avg["base_mean"] == pytest.approx((62 + 75) / 2) and avg["new_mean"] == pytest.approx((40 + 25) / 2)
    assert avg["hm_mean"] == pytest.approx((tri_hm + duo_hm) / 2)                  # mean of per-dataset HM
    assert avg["hm_of_means"] == pytest.approx(2 * 68.5 * 32.5 / 101)             # HM of the averaged base/new
    md = build_report(tri_runs, tmp_path / "rep").markdown
    assert "| Dataset | Method | Shots | Seeds | Folds | Base | New | HM (mean of per-seed HM) | HM of means |" in md
    assert f"| tri | CoOp | 16 | 1,2 | 3 | 62.00 ± 11.31 | 40.00 ± 0.00 | {tri_hm:.2f} ± " in md
    assert f"| {4960 / 102:.2f} |" in md
    assert "| duo | CoOp | 16 | 1,2 | – | 75.00 ± 7.07 | 25.00 ± 7.07 | 37.00 ± 7.07 | 37.50 |" in md
    assert "**HM of means** (CoOp's tables)" in md and "a seed's figure is the mean over its folds" in md


def test_one_fold_of_three_is_said(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "tri-fold2", "fold2", protocol="fewshot", dataset="tri", method="coop", seed=1, acc=55.0,
              macro_f1=50.0)
    md = build_report(root, tmp_path / "rep").markdown
    assert "Folds averaged per seed: tri: 1 of 3." in md


def test_seeds_averaging_different_folds_are_warned_about(tri_runs: Path, tmp_path: Path):
    # seed 3 ran fold1 only
    write_run(tri_runs, "tri-seed3/fold1", "fold1", protocol="base2new", dataset="tri", method="coop", seed=3,
              base=60.0, new=30.0)
    report = build_report(tri_runs, tmp_path / "rep")
    assert report.warnings == ["base2new tri CoOp: seeds average different folds (seed 1: fold1, fold2, fold3; "
                               "seed 2: fold1, fold2, fold3; seed 3: fold1)"]
    assert "| tri | CoOp | 16 | 1,2,3 | 1–3 of 3 |" in report.markdown


def test_cross_folds_averaged_and_overlapping_target_reported_apart(tmp_path: Path):
    root = tmp_path / "runs"
    # ESC-50 source, 2 seeds x 3 folds: target "urbansound8k" acc = 40 + seed*10 + fold index; esc50-actions
    # (named explicitly: overlaps the source) = 90 everywhere; source acc = 80 + fold index.
    for seed in (1, 2):
        for k, fold in enumerate(("fold1", "fold2", "fold3")):
            write_run(root, f"s{seed}/{fold}", fold, protocol="cross", dataset="esc50", method="coop", seed=seed,
                      source=80.0 + k, targets={"urbansound8k": 40.0 + seed * 10 + k},
                      overlapping={"esc50-actions": 90.0})
    table = frames(root)["cross"]
    cell = {r["column"]: r for r in table.iter_rows(named=True)}
    # per seed: urbansound8k 51 (seed 1), 61 (seed 2) -> 56 +/- sqrt(50); source 81 +/- 0
    assert cell["urbansound8k"]["acc_mean"] == pytest.approx(56.0)
    assert cell["urbansound8k"]["acc_std"] == pytest.approx(math.sqrt(50))
    assert cell["source"]["acc_mean"] == pytest.approx(81.0) and cell["source"]["n_seeds"] == 2
    assert cell["esc50-actions"]["overlap"] is True
    assert cell["Average"]["acc_mean"] == pytest.approx(56.0)  # esc50-actions (90) is not averaged in
    md = build_report(root, tmp_path / "rep").markdown
    assert "| esc50 (source) | urbansound8k | Average | esc50-actions (overlaps source) |" in md
    assert "| CoOp | 16 | 1,2 | 3 | 81.00 ± 0.00 | 56.00 ± 7.07 | 56.00 | 90.00 ± 0.00 |" in md


def test_targets_left_out_by_default_are_named(tmp_path: Path):
    root = tmp_path / "runs"
    write_run(root, "r", "fold1", protocol="cross", dataset="esc50", method="coop", seed=1, source=80.0,
              targets={"urbansound8k": 50.0},
              excluded={"esc50-actions": "esc50-actions declares overlaps = ['esc50']: shared clips"})
    md = build_report(root, tmp_path / "rep").markdown
    assert ("Left out as sharing clips with the source (name one in `--targets` to evaluate it apart): "
            "esc50-actions (esc50-actions declares overlaps = ['esc50']: shared clips).") in md


def test_a_fold_run_twice_counts_once_in_its_seed(tri_runs: Path):
    # seed 1 runs fold1 again with new 90: fold1's new becomes (30 + 90) / 2 = 60 and seed 1's new
    # (60 + 40 + 50) / 3 = 50, where a plain mean of its four runs would give (30 + 90 + 40 + 50) / 4 = 52.5.
    write_run(tri_runs, "tri-seed1-again/fold1", "fold1", protocol="base2new", dataset="tri", method="coop",
              seed=1, base=60.0, new=90.0)
    r = [r for r in frames(tri_runs)["base2new"].iter_rows(named=True) if r["dataset"] == "tri"][0]
    assert (r["folds_min"], r["folds_max"]) == (3, 3)
    assert r["new_mean"] == pytest.approx((50.0 + 40.0) / 2)  # seed 1: 50, seed 2: 40
