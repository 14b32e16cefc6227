"""benchmarks/efficacy_select.py: the validation rule of docs/efficacy.md on hand-made report rows."""
from __future__ import annotations

import json

import pytest

from benchmarks.efficacy_select import check_sweep_file, check_validation_only, winners


def row(variant: str, hm: float, sept: str = "true", method: str = "coop") -> dict:
    return {"dataset": "wordnet-sounds", "method": method, "sept": sept, "variant": variant, "seeds": "1,2",
            "base_mean": "80.0", "new_mean": "70.0", "hm_mean": str(hm), "hm_std": "1.0"}


def test_highest_mean_hm_wins_and_a_tie_goes_to_the_smaller_lambda():
    rows = [row("sept.lam=4.0", 77.0), row("sept.lam=1.0", 77.0), row("sept.lam=0.5", 76.9),
            row("train.epochs=5", 75.5, sept="false"), row("train.epochs=2", 75.6, sept="false")]
    by_group = {g["sept"]: g for g in winners(rows)}
    assert by_group["true"]["winner"] == {"sept.lam": "1.0"}          # tie at 77.0: the smaller lambda
    assert by_group["false"]["winner"] == {"train.epochs": "2"}       # plain maximum
    assert [r["val_hm"] for r in by_group["true"]["grid"]] == [77.0, 77.0, 76.9]


def test_the_sweep_file_check_names_each_disagreement(tmp_path):
    sweep = tmp_path / "final.toml"
    sweep.write_text('[set]\n"sept.lam" = 4.0\n')
    chosen = winners([row("sept.lam=4.0", 78.0), row("sept.lam=1.0", 77.0),
                      row("train.epochs=5", 75.5, sept="false"), row("train.epochs=2", 74.0, sept="false")])
    problems = check_sweep_file(sweep, chosen)
    assert len(problems) == 1 and '"train.epochs" = 5' in problems[0]
    sweep.write_text('[set]\n"sept.lam" = 1.0\n"train.epochs" = 5\n')
    assert "validation chose 4.0" in check_sweep_file(sweep, chosen)[0]


def test_a_run_scored_on_the_test_split_is_refused(tmp_path):
    for name, split in (("a", "val"), ("b", "test")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"eval_split": split}))
    with pytest.raises(SystemExit, match="b/metrics.json: eval_split is 'test'"):
        check_validation_only(tmp_path)
    (tmp_path / "b" / "metrics.json").write_text(json.dumps({"eval_split": "val"}))
    assert check_validation_only(tmp_path) == 2


def test_per_dataset_winners_become_tables_that_the_check_reads_first(tmp_path):
    from benchmarks.efficacy_select import per_dataset_toml

    rows = [dict(row("sept.lam=0.5", 70.0), dataset="esc50"), dict(row("sept.lam=2.0", 71.0), dataset="esc50"),
            dict(row("sept.lam=1.0", 60.0), dataset="sesa"), dict(row("sept.lam=0.5", 59.0), dataset="sesa")]
    chosen = winners(rows)
    tables = per_dataset_toml(chosen)
    assert tables == '[per_dataset."esc50"]\n"sept.lam" = 2.0\n\n[per_dataset."sesa"]\n"sept.lam" = 1.0\n'
    sweep = tmp_path / "final.toml"
    sweep.write_text('[set]\n"sept.lam" = 1.0\n\n' + tables)
    assert check_sweep_file(sweep, chosen) == []
    sweep.write_text('[set]\n"sept.lam" = 1.0\n')  # sesa's winner is the [set] value, esc50's is not
    problems = check_sweep_file(sweep, chosen)
    assert len(problems) == 1 and "validation chose 2.0 for esc50" in problems[0]
