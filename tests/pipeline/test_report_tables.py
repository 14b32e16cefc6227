"""`report`: tables from hand-made run records with known values, checked against a hand computation."""
from __future__ import annotations

import csv
import json
import statistics
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.report.build import build_report, frames
from cli_kit import run_subprocess
from record_kit import make_record, write_record


def hm(b: float, n: float) -> float:
    return 2 * b * n / (b + n)


def b2n(root: Path, name: str, dataset: str, method: str, sept: bool, seed: int, base: float, new: float, **kw):
    return write_record(root, name, protocol="base2new", dataset=dataset, method=method, sept=sept, seed=seed,
                        base=base, new=new, **kw)


# Known values: dataset "alpha" (3 seeds) and "beta" (2 seeds), CoOp without SEPT; "alpha" CoOp+SEPT 1 seed.
ALPHA = [(1, 60.0, 30.0), (2, 70.0, 40.0), (3, 80.0, 50.0)]
BETA = [(1, 50.0, 20.0), (2, 54.0, 24.0)]


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, b, n in ALPHA:
        b2n(root, f"alpha-coop-seed{seed}", "alpha", "coop", False, seed, b, n)
    for seed, b, n in BETA:
        b2n(root, f"beta-coop-seed{seed}", "beta", "coop", False, seed, b, n)
    b2n(root, "alpha-coop-sept-seed1", "alpha", "coop", True, 1, 66.0, 44.0)
    return root


def row(frame, **match) -> dict:
    rows = [r for r in frame.iter_rows(named=True) if all(r[k] == v for k, v in match.items())]
    assert len(rows) == 1, (match, rows)
    return rows[0]


def test_base2new_per_dataset_mean_std_and_hm_equal_hand_computation(runs: Path):
    table = frames(runs)["base2new"]
    alpha = row(table, dataset="alpha", method="coop", sept=False)
    # Hand: base 60/70/80 -> mean 70, sample std 10; new 30/40/50 -> 40, 10.
    assert alpha["base_mean"] == pytest.approx(70.0) and alpha["base_std"] == pytest.approx(10.0)
    assert alpha["new_mean"] == pytest.approx(40.0) and alpha["new_std"] == pytest.approx(10.0)
    alpha_hms = [hm(b, n) for _, b, n in ALPHA]  # 40, 50.909..., 61.538...
    assert alpha_hms[0] == pytest.approx(40.0)
    assert alpha["hm_mean"] == pytest.approx(statistics.mean(alpha_hms))
    assert alpha["hm_std"] == pytest.approx(statistics.stdev(alpha_hms))
    assert alpha["n_seeds"] == 3 and alpha["seeds"] == "1,2,3"

    beta = row(table, dataset="beta", method="coop", sept=False)
    assert beta["base_mean"] == pytest.approx(52.0) and beta["base_std"] == pytest.approx(2 ** 1.5)  # sqrt(8)

    single = row(table, dataset="alpha", method="coop", sept=True)
    assert single["base_mean"] == 66.0 and single["base_std"] is None  # one seed: no std


def test_average_row_averages_per_dataset_hm(runs: Path):
    table = frames(runs)["base2new"]
    avg = row(table, dataset="Average", method="coop", sept=False)
    alpha_hm = statistics.mean(hm(b, n) for _, b, n in ALPHA)
    beta_hm = statistics.mean(hm(b, n) for _, b, n in BETA)
    assert avg["n_datasets"] == 2
    assert avg["base_mean"] == pytest.approx((70.0 + 52.0) / 2)
    assert avg["new_mean"] == pytest.approx((40.0 + 22.0) / 2)
    assert avg["hm_mean"] == pytest.approx((alpha_hm + beta_hm) / 2)
    # ... which is not the HM of the averaged base and new: the two conventions differ on these numbers.
    assert abs(avg["hm_mean"] - hm(61.0, 31.0)) > 0.1


def test_markdown_and_csv_say_the_same_numbers(runs: Path, tmp_path: Path):
    report = build_report(runs, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| alpha | CoOp | 16 | 1,2,3 | – | 70.00 ± 10.00 | 40.00 ± 10.00 |" in md
    assert "| alpha | CoOp+SEPT | 16 | 1 | – | 66.00 | 44.00 | 52.80 | 52.80 |" in md  # hm(66, 44) = 52.8
    assert "**Average (2 datasets)** | CoOp | 16 |  |  | 61.00 | 31.00 |" in md
    assert "in Average rows, the mean over datasets of the per-dataset HM" in md
    with open(tmp_path / "rep" / "base2new.csv") as fh:
        rows = list(csv.DictReader(fh))
    beta = [r for r in rows if r["dataset"] == "beta"][0]
    assert float(beta["base_mean"]) == pytest.approx(52.0) and float(beta["base_std"]) == pytest.approx(2.8284, abs=1e-4)
    assert {r["dataset"] for r in rows} == {"alpha", "beta", "Average"}
    assert report.summary()["runs"] == 6


def test_cross_dataset_table(tmp_path: Path):
    root = tmp_path / "runs"
    for seed, (us, vs, src) in {1: (50.0, 30.0, 90.0), 2: (54.0, 36.0, 94.0)}.items():
        write_record(root, f"cross-{seed}", protocol="cross", dataset="esc50", method="coop", sept=True, seed=seed,
                     source=src, targets={"urbansound8k": us, "vocalsound": vs})
    table = frames(root)["cross"]
    us = row(table, column="urbansound8k")
    assert us["acc_mean"] == pytest.approx(52.0) and us["acc_std"] == pytest.approx(2 ** 1.5)
    assert row(table, column="source")["acc_mean"] == pytest.approx(92.0)
    # Average over targets of per-target means: (52 + 33) / 2; the source is not in it.
    assert row(table, column="Average")["acc_mean"] == pytest.approx(42.5)
    md = build_report(root, tmp_path / "rep").markdown
    assert "| CoOp+SEPT | 16 | 1,2 | – | 92.00 ± 2.83 | 52.00 ± 2.83 | 33.00 ± 4.24 | 42.50 |" in md


def test_fewshot_table(tmp_path: Path):
    root = tmp_path / "runs"
    for ds, accs in {"alpha": [60.0, 70.0], "beta": [40.0, 44.0]}.items():
        for seed, acc in enumerate(accs, start=1):
            write_record(root, f"{ds}-{seed}", protocol="fewshot", dataset=ds, method="kgcoop", sept=False,
                         seed=seed, shots=4, acc=acc, macro_f1=acc - 10)
    table = frames(root)["fewshot"]
    assert row(table, dataset="alpha")["acc_mean"] == pytest.approx(65.0)
    assert row(table, dataset="alpha")["macro_f1_mean"] == pytest.approx(55.0)
    assert row(table, dataset="Average")["acc_mean"] == pytest.approx((65.0 + 42.0) / 2)
    md = build_report(root, tmp_path / "rep").markdown
    assert "| KgCoOp | 4 | 65.00 ± 7.07 | 42.00 ± 2.83 | 53.50 |" in md


def test_runs_differing_in_a_setting_are_not_averaged_together(tmp_path: Path):
    root = tmp_path / "runs"
    cfg = lambda lam, lr: {"sept": {"enabled": True, "lam": lam}, "train": {"lr": lr}, "data": {"seed": 1}}
    b2n(root, "lam0.5", "alpha", "coop", True, 1, 60.0, 40.0, config=cfg(0.5, 0.05), sept_settings={"lam": 0.5})
    b2n(root, "lam1", "alpha", "coop", True, 1, 70.0, 30.0, config=cfg(1.0, 0.05), sept_settings={"lam": 1.0})
    # Two no-SEPT runs whose (unused) sept.lam differs are the same experiment: averaged, no label.
    for seed, lam in ((1, 0.5), (2, 1.0)):
        c = cfg(lam, 0.05)
        c["sept"]["enabled"] = False
        b2n(root, f"base{seed}", "alpha", "coop", False, seed, 50.0 + seed, 20.0, config=c,
            sept_settings={"lam": lam})
    table = frames(root)["base2new"]
    assert row(table, dataset="alpha", sept=True, variant="sept.lam=0.5")["base_mean"] == 60.0
    assert row(table, dataset="alpha", sept=True, variant="sept.lam=1.0")["base_mean"] == 70.0
    assert row(table, dataset="alpha", sept=False)["n_seeds"] == 2
    assert "CoOp+SEPT [sept.lam=0.5]" in build_report(root, tmp_path / "rep").markdown


def test_same_seed_twice_is_reported(tmp_path: Path):
    root = tmp_path / "runs"
    b2n(root, "a", "alpha", "coop", False, 1, 60.0, 40.0)
    b2n(root, "b", "alpha", "coop", False, 1, 62.0, 40.0)
    report = build_report(root, tmp_path / "rep")
    assert report.warnings == ["base2new alpha CoOp seed 1: 2 runs (a, b), all averaged in"]
    assert "## Warnings" in report.markdown


def _record_json(**changes) -> str:
    data = make_record(base=60.0, new=40.0).to_dict()
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize("content, reason", [
    ('{"method": ', "not valid JSON"),
    ("[1, 2]", "expected a JSON object, found list"),
    # the shape written before the run record: refused with what to do, never guessed into one
    (json.dumps({"protocol": "base2new", "dataset": "alpha", "method": "coop", "seed": 1, "shots": 16,
                 "base_acc": 1.0, "new_acc": 1.0, "hm": 1.0}), "predates the run record (no schema_version)"),
    (_record_json(base={"acc": "high", "macro_f1": 1.0, "per_class_acc": {}, "num_clips": 1}),
     "key 'base.acc': expected float, got str 'high'"),
    (_record_json(protocol="sideways"), "key 'protocol' is 'sideways'"),
    (_record_json(manifest=None), "key 'manifest' is None"),
    (_record_json(hm=99.0), "key 'hm' is 99.0, but its parts give 48.0"),
    (_record_json(schema_version=7), "schema_version 7 is not one this sept-pipeline reads"),
])
def test_corrupt_metrics_file_is_named_and_skipped(runs: Path, tmp_path: Path, content: str, reason: str):
    bad = runs / "broken-run" / "metrics.json"
    bad.parent.mkdir()
    bad.write_text(content)
    proc = run_subprocess("report", runs, "--out", tmp_path / "rep")
    assert proc.returncode == 0, proc.stderr
    assert f"warning: skipped {bad}: " in proc.stderr and reason in proc.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"- `{bad}`: " in md and reason in md
    assert "6 finished runs" in md  # the good runs are all still there


def test_no_usable_runs_is_a_user_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "only-bad" / "r" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("not json")
    for folder, expect in ((tmp_path / "empty", "no finished run found"), (tmp_path / "only-bad", str(bad)),
                           (tmp_path / "missing", "not a folder")):
        proc = run_subprocess("report", folder)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and expect in proc.stderr
        assert proc.stderr.count("\n") == 1  # one line
    assert not (tmp_path / "empty" / "report").exists()  # nothing half-written


def test_base_vs_new_picture_is_written_as_png_and_svg(runs: Path, tmp_path: Path):
    from matplotlib.image import imread

    report = build_report(runs, tmp_path / "rep")
    png, svg = tmp_path / "rep" / "base_vs_new.png", tmp_path / "rep" / "base_vs_new.svg"
    assert png in report.files and svg in report.files
    pixels = imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400
    assert pixels[..., :3].std() > 0.01  # not a blank canvas
    tree = ET.parse(svg)
    assert tree.getroot().tag.endswith("svg")
    text = svg.read_text()
    assert "alpha" in text and "beta" in text  # one panel per dataset (titles are kept as text)
    assert not list((tmp_path / "rep").glob(".*tmp"))  # no temp files left behind
