"""benchmarks/efficacy_select.py: the pre-registered selection rules of docs/efficacy.md on hand-made report rows,
and the efficacy sweep files agreeing with each other."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from benchmarks.efficacy_select import (check_sweep_file, check_validation_only, per_dataset_toml, value_of,
                                        winners)

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = ROOT / "configs" / "sweeps"


def row(variant: str, hm: float, sept: str = "true", method: str = "coop", dataset: str = "wordnet-sounds") -> dict:
    return {"dataset": dataset, "method": method, "sept": sept, "variant": variant, "seeds": "1,2,3",
            "base_mean": "80.0", "new_mean": "70.0", "hm_mean": str(hm), "hm_std": "1.0"}


def by_group(result: list[dict]) -> dict[tuple, dict]:
    return {(g["method"], g["sept"]): g for g in result}


def sweep_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "final.toml"
    path.write_text(text)
    return path


def test_the_best_mean_hm_wins_and_a_tie_within_the_margin_goes_to_the_smaller_lambda():
    rows = [row("sept.lam=2.0", 77.0), row("sept.lam=1.0", 76.95), row("sept.lam=0.25", 76.85),
            row("sept.lam=0.5", 76.91)]
    [g] = winners(rows, margin=0.1)
    assert g["winner"] == {"sept.lam": "0.5"}          # 0.5 and 1.0 are within 0.1 of 77.0; 0.25 is not
    assert [r["val_hm"] for r in g["grid"]] == [77.0, 76.95, 76.91, 76.85]
    [g] = winners(rows)                                 # margin 0: only an equal mean ties
    assert g["winner"] == {"sept.lam": "2.0"}
    [g] = winners([row("sept.lam=2.0", 77.0), row("sept.lam=1.0", 77.0)])
    assert g["winner"] == {"sept.lam": "1.0"}


def test_fewer_epochs_win_a_tie_and_more_win_outside_it():
    rows = [row("train.epochs=10", 75.08, sept="false"), row("train.epochs=5", 75.0, sept="false")]
    assert winners(rows, margin=0.1)[0]["winner"] == {"train.epochs": "5"}
    rows[0]["hm_mean"] = "75.11"
    assert winners(rows, margin=0.1)[0]["winner"] == {"train.epochs": "10"}


def test_a_tie_goes_to_the_preferred_generation_and_the_key_a_run_read_is_no_setting():
    rows = [row("sept.generation=wn-v1, sept.generation_used=aaaa", 78.05),
            row("sept.generation=wn-v3, sept.generation_used=bbbb", 77.96),
            row("sept.generation=wn-v3-task, sept.generation_used=cccc", 78.0)]
    prefer = {"sept.generation": "wn-v3"}
    [g] = winners(rows, prefer, margin=0.1)
    assert g["winner"] == {"sept.generation": "wn-v3"}  # within 0.1 of the best: the default
    [g] = winners(rows, prefer, margin=0.05)
    assert g["winner"] == {"sept.generation": "wn-v1"}  # wn-v3 is outside; of the tied two the higher HM
    rows[0]["hm_mean"] = "78.2"
    [g] = winners(rows, prefer, margin=0.1)
    assert g["winner"] == {"sept.generation": "wn-v1"}
    assert value_of([g], "sept.generation") == "wn-v1"


KGCOOP = [row("method.kg_weight=2.0, sept.lam=0.25", 70.0, method="kgcoop"),
          row("method.kg_weight=2.0, sept.lam=1.0", 71.0, method="kgcoop"),
          row("method.kg_weight=8.0, sept.lam=0.5", 71.05, method="kgcoop"),
          row("method.kg_weight=8.0, sept.lam=2.0", 69.0, method="kgcoop"),
          row("method.kg_weight=2.0", 72.0, sept="false", method="kgcoop"),
          row("method.kg_weight=8.0", 70.0, sept="false", method="kgcoop")]


def test_kgcoop_sept_chooses_w_and_lambda_and_its_baseline_arm_runs_at_that_w():
    groups = by_group(winners(KGCOOP, margin=0.1))
    sept, base = groups[("kgcoop", True)], groups[("kgcoop", False)]
    # 71.05 and 71.0 tie (within 0.1): the smaller lambda, 0.5 at w 8, wins over lambda 1 at w 2
    assert sept["winner"] == {"method.kg_weight": "8.0", "sept.lam": "0.5"}
    assert base["winner"] == {"method.kg_weight": "2.0"}               # its own best w, reported beside
    assert base["baseline_arm"] == {"method.kg_weight": "8.0"}         # what the final's baseline runs at
    assert "baseline_arm" not in sept


def test_the_check_wants_the_sept_winners_w_in_the_baseline_file_and_sept_keys_only_where_sept_runs(tmp_path: Path):
    result = winners(KGCOOP, margin=0.1)
    base = sweep_file(tmp_path, '[grid]\nmethod = ["zeroshot", "kgcoop"]\nsept = [false]\n'
                                '[set]\n"method.kg_weight" = 8.0\n')
    assert check_sweep_file(base, result) == []          # sept.lam is not asked of a file without SEPT
    base.write_text('[grid]\nmethod = ["kgcoop"]\nsept = [false]\n[set]\n"method.kg_weight" = 2.0\n')
    [problem] = check_sweep_file(base, result)           # the baseline's own best w is not the final's
    assert '"method.kg_weight" = 2.0, but validation chose 8.0' in problem
    sept = sweep_file(tmp_path, '[grid]\nmethod = ["kgcoop"]\nsept = [true]\n[set]\n"method.kg_weight" = 8\n')
    [problem] = check_sweep_file(sept, result)
    assert 'lacks "sept.lam" = 0.5' in problem


def test_a_winner_applies_to_files_of_its_method_unless_one_method_stood_in_for_all(tmp_path: Path):
    result = winners([row("sept.lam=0.5", 70.0), row("sept.lam=1.0", 71.0),
                      row("sept.lam=2.0", 60.0, method="dept"), row("sept.lam=0.25", 65.0, method="dept")])
    dept = sweep_file(tmp_path, '[grid]\nmethod = ["dept"]\nsept = [true]\n[set]\n"sept.lam" = 0.25\n')
    assert check_sweep_file(dept, result) == []          # CoOp's lambda 1.0 is not DePT's
    epochs = winners([row("train.epochs=5", 70.0, sept="false"), row("train.epochs=10", 69.0, sept="false")])
    [problem] = check_sweep_file(dept, epochs)           # a CoOp winner, no CoOp here: said, not passed
    assert "no winner of this validation folder applies" in problem
    [problem] = check_sweep_file(dept, epochs, every_method=True)
    assert 'lacks "train.epochs" = 5' in problem


def test_a_grid_axis_passes_when_it_holds_the_winner_among_its_arms(tmp_path: Path):
    result = winners([row("sept.generation=wn-v1", 70.0), row("sept.generation=wn-v3", 69.0)])
    path = sweep_file(tmp_path, '[grid]\nmethod = ["coop"]\nsept = [true]\n'
                                '"sept.generation" = ["wn-v1", "wn-random", "wn-classname"]\n')
    assert check_sweep_file(path, result) == []
    path.write_text('[grid]\nmethod = ["coop"]\nsept = [true]\n"sept.generation" = ["wn-v3", "wn-random"]\n')
    [problem] = check_sweep_file(path, result)
    assert "lacks wn-v1" in problem


def test_a_grid_of_one_value_still_names_the_chosen_key_from_the_runs_configs(tmp_path: Path):
    from benchmarks.efficacy_select import add_shared_keys

    for seed in (1, 2):
        run = tmp_path / f"coop-{seed}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"dataset": "wordnet-sounds", "method": "coop",
                                                      "sept": {"enabled": False}, "eval_split": "val"}))
        (run / "config.json").write_text(json.dumps({"train": {"epochs": 5, "lr": 0.05 * seed}}))
    result = winners([row("", 71.0, sept="false")])
    assert result[0]["winner"] == {}                     # nothing varies, so the report names no key
    add_shared_keys(result, tmp_path, ["train.epochs"])
    assert result[0]["winner"] == {"train.epochs": "5"} and value_of(result, "train.epochs") == "5"
    with pytest.raises(SystemExit, match="do not share one value"):
        add_shared_keys(result, tmp_path, ["train.lr"])


def test_a_run_scored_on_the_test_split_is_refused(tmp_path: Path):
    for name, split in (("a", "val"), ("b", "test")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"eval_split": split}))
    with pytest.raises(SystemExit, match="b/metrics.json: eval_split is 'test'"):
        check_validation_only(tmp_path)
    (tmp_path / "b" / "metrics.json").write_text(json.dumps({"eval_split": "val"}))
    assert check_validation_only(tmp_path) == 2


def test_per_dataset_winners_become_tables_that_the_check_reads_first(tmp_path: Path):
    rows = [row("sept.lam=0.5", 70.0, dataset="esc50"), row("sept.lam=2.0", 71.0, dataset="esc50"),
            row("sept.lam=1.0", 60.0, dataset="sesa"), row("sept.lam=0.5", 59.0, dataset="sesa")]
    chosen = winners(rows)
    tables = per_dataset_toml(chosen)
    assert tables == '[per_dataset."esc50"]\n"sept.lam" = 2.0\n\n[per_dataset."sesa"]\n"sept.lam" = 1.0\n'
    head = '[grid]\nmethod = ["coop", "kgcoop"]\nsept = [false, true]\n'
    sweep = sweep_file(tmp_path, head + '[set]\n"sept.lam" = 1.0\n\n' + tables)
    assert check_sweep_file(sweep, chosen) == []
    sweep.write_text(head + '[set]\n"sept.lam" = 1.0\n')  # sesa's winner is the [set] value, esc50's is not
    problems = check_sweep_file(sweep, chosen)
    assert len(problems) == 1 and "validation chose 2.0 for esc50" in problems[0]


# ---- the benchmark's own sweep files -------------------------------------------------------------------

def load(name: str) -> dict:
    return tomllib.loads((SWEEPS / name).read_text(encoding="utf-8"))


FINAL = ["efficacy-wordnet.toml", *(f"efficacy-wordnet-{m}{s}.toml" for m in ("coop", "kgcoop", "dept")
                                    for s in ("", "-nofilter")), "efficacy-wordnet-cross.toml"]


def test_the_final_files_share_epochs_and_w_and_each_method_one_sept_setting():
    files = {name: load(name) for name in FINAL}
    shared = {(f["set"]["train.epochs"], f["set"]["method.kg_weight"]) for f in files.values()}
    assert len(shared) == 1                               # every run of a method pairs with its baseline
    assert {f["sweep"]["runs_dir"] for n, f in files.items() if "cross" not in n} == {"efficacy-out/runs/test"}
    for m in ("coop", "kgcoop", "dept"):
        arms, nofilter = files[f"efficacy-wordnet-{m}.toml"], files[f"efficacy-wordnet-{m}-nofilter.toml"]
        real, *controls = arms["grid"]["sept.generation"]
        assert controls == ["wn-random", "wn-classname"] and nofilter["set"]["sept.generation"] == real
        for key in ("sept.lam", "sept.neighbors_per_step"):
            assert arms["set"][key] == nofilter["set"][key]
        assert nofilter["grid"]["sept.boundary_filter"] == [False]
        assert arms["grid"]["seed"] == nofilter["grid"]["seed"] == files["efficacy-wordnet.toml"]["grid"]["seed"]
    coop = files["efficacy-wordnet-coop.toml"]
    cross = files["efficacy-wordnet-cross.toml"]
    assert cross["set"]["sept.lam"] == coop["set"]["sept.lam"]
    assert cross["set"]["sept.generation"] == coop["grid"]["sept.generation"][0]


def test_every_efficacy_sweep_file_parses():
    from pipeline.sweep.spec import parse_sweep

    for path in sorted(SWEEPS.glob("efficacy-wordnet*.toml")):
        spec = parse_sweep(path)
        assert spec.max_parallel == 2 and str(spec.runs_dir).split("efficacy-out/runs/")[1]
