"""`report --paired`, manifest groups, validation labels and `--compare` conditions, on hand-made run records
with known values: the paired statistics are checked against a hand-worked case."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from scipy.stats import t as student_t

from cli_kit import run_subprocess
from pipeline.report import published
from pipeline.report.build import build_report, frames
from pipeline.report.collect import collect_runs
from pipeline.report.paired import paired, stat, t_quantile
from record_kit import write_record

T_975_4 = 2.7764451051977987  # Student t, 0.975 quantile, 4 degrees of freedom (a printed table: 2.776)
T_975_2 = 4.302652729749464   # ... 2 degrees of freedom (4.303)


def test_t_quantiles_are_students():
    assert t_quantile(5) == pytest.approx(T_975_4, abs=1e-12) == pytest.approx(student_t.ppf(0.975, 4))
    assert t_quantile(3) == pytest.approx(T_975_2, abs=1e-12)
    for n in range(2, 31):
        assert t_quantile(n) == pytest.approx(student_t.ppf(0.975, n - 1), rel=1e-12)


def test_stat_of_a_hand_worked_case():
    s = stat("hm", [1, 2, 3, 4, 5], [2.0, -1.0, 4.0, 3.0, 2.0])
    # mean 2; deviations 0, -3, 2, 1, 0: sum of squares 14, variance 14 / 4 = 3.5
    assert s.mean == pytest.approx(2.0) and s.sd == pytest.approx(math.sqrt(3.5))
    half = T_975_4 * math.sqrt(3.5) / math.sqrt(5)                                     # 2.3229
    assert half == pytest.approx(2.3229, abs=1e-4)
    assert s.ci == pytest.approx((2.0 - half, 2.0 + half))
    assert (s.better, s.worse, s.ties) == (4, 1, 0) and s.sign_count() == "4 of 5 seeds better"
    one = stat("hm", [7], [1.5])
    assert one.sd is None and one.ci is None and one.sign_count() == "1 of 1 seeds better"


# Dataset "tri", folds fold1/fold2: (base, new) per seed and fold, without and with SEPT.
OFF = {1: {"fold1": (60, 40), "fold2": (50, 50)}, 2: {"fold1": (50, 50), "fold2": (50, 50)},
       3: {"fold1": (50, 50)}, 4: {"fold1": (70, 30)}}
ON = {1: {"fold1": (80, 20), "fold2": (50, 50)}, 2: {"fold1": (60, 40), "fold2": (40, 60)},
      3: {"fold1": (50, 50), "fold2": (80, 20)}}


def tri(root: Path, sept: bool, table: dict, **kw) -> None:
    for seed, folds in table.items():
        for fold, (b, n) in folds.items():
            write_record(root, f"tri-{'on' if sept else 'off'}{kw.get('sept_settings', {}).get('lam', '')}-"
                               f"{seed}/{fold}", dataset="tri", sept=sept, seed=seed, fold=fold,
                         folds=("fold1", "fold2"), base=float(b), new=float(n), **kw)


def test_paired_differences_equal_a_hand_computation(tmp_path: Path):
    root = tmp_path / "runs"
    tri(root, False, OFF)
    tri(root, True, ON)
    [c] = paired(collect_runs(root))
    assert (c.dataset, c.method, c.key, c.reference, c.other) == ("tri", "coop", "sept.enabled", False, True)
    by = {s.metric: s for s in c.stats}
    # By hand, each seed's folds averaged first (HM: each run's own, then the mean over folds):
    # seed 1: off base 55, new 45, HM (48 + 50)/2 = 49; on base 65, new 35, HM (32 + 50)/2 = 41.
    # seed 2: off 50 / 50 / 50; on base 50, new 50, HM (48 + 48)/2 = 48 (the HM of the means would say 50).
    # seed 3: only fold1 is common: 50 / 50 / 50 on both sides. Seed 4 ran without SEPT only.
    assert by["base_acc"].seeds == [1, 2, 3] and by["base_acc"].differences == pytest.approx([10, 0, 0])
    assert by["new_acc"].differences == pytest.approx([-10, 0, 0])
    hm = by["hm"]
    assert hm.differences == pytest.approx([-8, -2, 0])
    assert hm.mean == pytest.approx(-10 / 3)
    # deviations -14/3, 4/3, 10/3: sum of squares (196 + 16 + 100) / 9 = 312 / 9; variance 156 / 9
    assert hm.sd == pytest.approx(math.sqrt(156 / 9))
    half = T_975_2 * math.sqrt(156 / 9) / math.sqrt(3)
    assert hm.ci == pytest.approx((-10 / 3 - half, -10 / 3 + half))
    assert hm.sign_count() == "0 of 3 seeds better, 1 tied"
    assert c.unpaired == {"reference": [4]}

    report = build_report(root, tmp_path / "rep", paired_by="sept.enabled")
    md = report.markdown
    assert "## Paired differences by sept.enabled" in md and "Student's t" in md
    assert ("| tri | CoOp | false → true | HM | 3 | 1: -8.00, 2: -2.00, 3: +0.00 | -3.33 | 4.16 | "
            f"[{-10 / 3 - half:+.2f}, {-10 / 3 + half:+.2f}] | 0 of 3 seeds better, 1 tied |") in md
    assert "seeds run by one side only, not paired: reference 4" in md
    with open(tmp_path / "rep" / "paired.csv") as fh:
        rows = {r["metric"]: r for r in csv.DictReader(fh)}
    assert rows["hm"]["differences"] == "1:-8.0000;2:-2.0000;3:+0.0000"
    assert float(rows["hm"]["ci_low"]) == pytest.approx(-10 / 3 - half, abs=1e-4)
    assert float(rows["hm"]["t_quantile"]) == pytest.approx(T_975_2, abs=1e-4)
    assert report.summary()["paired"][2]["metric"] == "hm"


def test_one_comparison_per_sept_setting_and_an_average_over_datasets(tmp_path: Path):
    root = tmp_path / "runs"
    for ds, shift in (("alpha", 0.0), ("beta", 2.0)):
        for seed in (1, 2):
            write_record(root, f"{ds}-off-{seed}", dataset=ds, seed=seed, base=50.0, new=50.0)
            for lam in (0.5, 1.0):
                write_record(root, f"{ds}-on{lam}-{seed}", dataset=ds, seed=seed, sept=True, base=50.0 + lam + shift,
                             new=50.0 + lam + shift, sept_settings={"lam": lam})
    comparisons = paired(collect_runs(root))
    labels = sorted((c.dataset, c.other_variant) for c in comparisons)
    assert labels == [("Average", "sept.lam=0.5"), ("Average", "sept.lam=1.0"), ("alpha", "sept.lam=0.5"),
                      ("alpha", "sept.lam=1.0"), ("beta", "sept.lam=0.5"), ("beta", "sept.lam=1.0")]
    avg = next(c for c in comparisons if c.dataset == "Average" and c.other_variant == "sept.lam=1.0")
    hm = next(s for s in avg.stats if s.metric == "hm")
    assert avg.n_datasets == 2 and hm.differences == pytest.approx([2.0, 2.0])  # (1 + 3) / 2 per seed


def test_runs_differing_in_a_second_key_are_not_paired_and_another_key_can_be_chosen(tmp_path: Path):
    root = tmp_path / "runs"
    for seed in (1, 2, 3):
        write_record(root, f"off-{seed}", seed=seed, base=50.0, new=50.0)
        # SEPT on, but also another tower mode: not a paired comparison of SEPT
        write_record(root, f"on-train-{seed}", seed=seed, sept=True, base=60.0, new=60.0,
                     manifest={"train.tower_mode": "train"})
        for flt in (True, False):
            write_record(root, f"on-filter{flt}-{seed}", seed=seed, sept=True, base=55.0 + flt * seed, new=55.0,
                         sept_settings={"boundary_filter": flt})
    by_sept = paired(collect_runs(root))
    assert {c.other_variant for c in by_sept if c.dataset == "alpha"} == {
        "sept.boundary_filter=False, train.tower_mode=eval", "sept.boundary_filter=True, train.tower_mode=eval"}
    [c] = paired(collect_runs(root), "sept.boundary_filter")
    assert (c.reference, c.other) == (False, True)
    assert next(s for s in c.stats if s.metric == "base_acc").differences == pytest.approx([1.0, 2.0, 3.0])


def test_a_generation_pairs_with_its_control_although_the_store_key_they_read_differs(tmp_path: Path):
    root = tmp_path / "runs"
    for seed in (1, 2):
        write_record(root, f"off-{seed}", seed=seed, base=50.0, new=50.0)
        for name, key, gain in (("wn-v3", "k-real", 3.0), ("wn-random", "k-rand", 1.0)):
            write_record(root, f"{name}-{seed}", seed=seed, sept=True, base=50.0 + gain * seed, new=50.0,
                         sept_settings={"generation": name}, manifest={"sept.generation_used": key})
        # also another lambda: differs in a second key, so never paired with the two above
        write_record(root, f"wn-v3-lam2-{seed}", seed=seed, sept=True, base=70.0, new=50.0,
                     sept_settings={"generation": "wn-v3", "lam": 2.0}, manifest={"sept.generation_used": "k-real"})
    [c] = paired(collect_runs(root), "sept.generation")
    assert (c.reference, c.other) == ("wn-random", "wn-v3")  # the lower value is the reference
    assert next(s for s in c.stats if s.metric == "base_acc").differences == pytest.approx([2.0, 4.0])
    # by the default key each of the three SEPT settings still pairs with the runs without SEPT
    assert len([c for c in paired(collect_runs(root)) if (c.reference, c.other) == (False, True)]) == 3


def test_paired_through_the_cli_json_and_a_bad_key(tmp_path: Path):
    root = tmp_path / "runs"
    tri(root, False, OFF)
    tri(root, True, ON)
    cli = ["report", root, "--paired"]
    proc = run_subprocess(*cli, "--json", "--out", tmp_path / "rep")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["paired"]
    assert [r["metric"] for r in rows] == ["base_acc", "new_acc", "hm"] and rows[2]["better"] == 0
    proc = run_subprocess(*cli, "--by", "train.no_such_key", "--out", tmp_path / "bad")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--by train.no_such_key: no run here" in proc.stderr
    assert not (tmp_path / "bad").exists()


# ---- groups by manifest, validation runs, --compare -----------------------------------------------------

def test_runs_of_different_manifests_are_never_averaged_together(tmp_path: Path):
    root = tmp_path / "runs"
    for seed in (1, 2):
        write_record(root, f"eval-{seed}", seed=seed, base=60.0, new=40.0)
        write_record(root, f"train-{seed}", seed=seed, base=70.0, new=30.0, manifest={"train.tower_mode": "train"})
    # A second dataset run only in train mode: its Average row is not the first dataset's
    write_record(root, "beta-train", dataset="beta", seed=1, base=80.0, new=20.0,
                 manifest={"train.tower_mode": "train"})
    table = frames(root)["base2new"]
    rows = {(r["dataset"], r["variant"]): r for r in table.iter_rows(named=True)}
    assert rows[("alpha", "train.tower_mode=eval")]["base_mean"] == 60.0
    assert rows[("alpha", "train.tower_mode=train")]["base_mean"] == 70.0
    assert rows[("Average", "train.tower_mode=eval")]["n_datasets"] == 1
    avg_train = rows[("Average", "train.tower_mode=train")]
    assert avg_train["n_datasets"] == 2 and avg_train["base_mean"] == pytest.approx(75.0)


def test_validation_runs_are_labelled_and_never_in_a_test_table(tmp_path: Path):
    root = tmp_path / "runs"
    write_record(root, "test-1", base=60.0, new=40.0)
    write_record(root, "val-1", base=90.0, new=80.0, eval_split="val")
    report = build_report(root, tmp_path / "rep")
    md = report.markdown
    test_part, val_part = md.split("## Base-to-new generalisation — validation runs (eval_split = val)")
    assert "| alpha | CoOp | 16 |" in test_part and "90.00" not in test_part
    assert "| alpha | CoOp (validation) | 16 |" in val_part and "60.00" not in val_part
    assert "they are not results" in md
    names = {p.name for p in report.files}
    assert {"base2new.csv", "base2new-val.csv"} <= names
    with open(tmp_path / "rep" / "base2new.csv") as fh:
        assert {r["eval_split"] for r in csv.DictReader(fh)} == {"test"}
    with open(tmp_path / "rep" / "base2new-val.csv") as fh:
        assert {r["eval_split"] for r in csv.DictReader(fh)} == {"val"}


def test_compare_puts_a_published_number_only_beside_runs_of_its_conditions(tmp_path: Path):
    root = tmp_path / "runs"
    conditions = published.SEPT_CONDITIONS
    for seed in (1, 2):
        # our default protocol (palm recipe, LAION-CLAP): other conditions than the paper's
        write_record(root, f"ours-{seed}", seed=seed, base=60.0, new=40.0)
        # runs made under the recorded conditions of SEPT's CoOp row
        write_record(root, f"lab-{seed}", seed=seed, base=64.0 + seed, new=34.0, manifest=dict(conditions))
        write_record(root, f"lab-sept-{seed}", seed=seed, sept=True, base=66.0, new=44.0, manifest=dict(conditions))
    report = build_report(root, tmp_path / "rep", compare=True)
    md = report.markdown
    compared = md.split("## Compared with published numbers")[1]
    with open(tmp_path / "rep" / "compare.csv") as fh:
        rows = list(csv.DictReader(fh))
    # separate groups: the lab runs are labelled by what sets them apart, and only they get published numbers
    assert {r["variant"] for r in rows} == {next(r["variant"] for r in rows)} and "recipe.name=sept-lab" in rows[0]["variant"]
    coop = next(r for r in rows if r["sept"] == "false")
    assert float(coop["published_base"]) == 65.00 and float(coop["delta_base"]) == pytest.approx(65.5 - 65.00)
    sept = next(r for r in rows if r["sept"] == "true")
    assert float(sept["published_hm"]) == 49.70 and float(sept["delta_hm"]) == pytest.approx(2 * 66 * 44 / 110 - 49.70)
    assert len(rows) == 2  # no published number beside the runs of our default protocol
    table_lines = [line for line in compared.splitlines() if line.startswith("| CoOp")]
    assert table_lines and all("recipe.name=sept-lab" in line for line in table_lines)
    # CoCoOp and KgCoOp have published numbers but no run here: the recipe that would make one is named
    assert "CoCoOp 69.13/36.83/46.26" in compared and "The recipe `sept-lab` runs under them" in compared


def test_compare_with_no_matching_run_shows_no_published_number_and_names_the_recipe(tmp_path: Path):
    root = tmp_path / "runs"
    for method, accs in {"palm": (70.0, 80.0), "coop": (60.0, 64.0)}.items():
        for dataset, acc in zip(("alpha", "beta"), accs):
            write_record(root, f"{dataset}-{method}", protocol="fewshot", dataset=dataset, method=method, acc=acc)
    report = build_report(root, tmp_path / "rep", compare=True)
    md = report.markdown
    assert "No setting here was run under the conditions of a published number: none is shown." in md
    assert "PALM 76.60" in md and "The recipe `palm-original` runs under them (`--recipe palm-original" in md
    assert "Ours instead: CoOp (16 shots): recipe.name = palm" in md and "PALM (16 shots): recipe.name = palm" in md
    assert "compare_fewshot.csv" not in {p.name for p in report.files}


def test_fewshot_compare_beside_runs_of_palms_conditions_labelled_unchecked(tmp_path: Path):
    root = tmp_path / "runs"
    for method, accs in {"palm": (70.0, 80.0), "dept": (66.0, 66.0)}.items():
        for dataset, acc in zip(("alpha", "beta"), accs):
            write_record(root, f"{dataset}-{method}", protocol="fewshot", dataset=dataset, method=method, acc=acc,
                         manifest=dict(published.PALM_CONDITIONS))
    build_report(root, tmp_path / "rep", compare=True)
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Few-shot compared with published numbers" in md and "unchecked" in md and "Pengi" in md
    assert "| PALM | 16 | 2 | 75.00 | 76.60 | -1.60 |" in md
    with open(tmp_path / "rep" / "compare_fewshot.csv") as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"palm"}  # DePT has no published few-shot figure
    assert float(rows["palm"]["delta_acc"]) == pytest.approx(75.0 - 76.6)
    build_report(root, tmp_path / "plain")
    assert "published" not in (tmp_path / "plain" / "report.md").read_text()


def test_every_published_number_and_condition_is_in_the_method_doc():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "method.md").read_text()
    section = doc.split("## Published numbers and their conditions")[1].split("\n## ")[0]
    for pub in published.PUBLISHED:
        for value in pub.numbers.values():
            assert f"{value:.2f}" in section or f"{value:.1f}" in section, (pub.method, value)
        assert f"`{pub.recipe}`" in section
        for key, value in pub.conditions.items():
            text = "true" if value is True else "false" if value is False else str(value)
            assert f"{key} = {text}" in section, (key, value)


@pytest.mark.parametrize("pub", published.PUBLISHED, ids=lambda p: f"{p.method}-{p.recipe}")
def test_the_recipe_named_for_a_published_number_runs_under_its_conditions(pub):
    """The recipe a published row names (configs/recipes/) gives a manifest that meets the row's conditions."""
    from pipeline.config_loader import load_config
    from pipeline.protocols.record import build_manifest

    cfg = load_config(recipe=pub.recipe, method=pub.method).replace("backbone", id=pub.backbone)
    manifest = build_manifest(cfg, {"data.folds": [], "precision.autocast": "off", "sept.generation_used": ""})
    assert pub.unmet(manifest) == {}
