"""`sept-pipeline datasets ls|info|prepare`, run through the real entry point (exit codes, JSON, errors)."""
from __future__ import annotations

import json

import pytest

from cli_kit import run_in_process


def test_ls_json_lists_the_benchmark():
    code, out, _ = run_in_process("datasets", "ls", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["esc50"]["num_classes"] == 50 and len(rows["urbansound8k"]["folds"]) == 10
    assert rows["esc50-actions"]["overlaps"] == ["esc50"] and rows["esc50"]["overlaps"] == []
    assert [len(rows[n]["folds"]) for n in ("beijing-opera", "esc50", "esc50-actions", "tut2017")] == [5, 5, 5, 4]
    assert rows["demo"]["num_classes"] == 10 and len(rows) >= 12


def test_ls_table():
    code, out, _ = run_in_process("datasets", "ls")
    header, *lines = out.splitlines()
    assert code == 0 and header.split() == ["name", "classes", "layout", "folds", "task"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines}  # classes, layout, folds
    assert rows["tut2017"] == ["15", "palm", "4"] and rows["esc50"] == ["50", "palm", "5"]
    assert rows["demo"] == ["10", "palm", "-"] and rows["urbansound8k"] == ["10", "palm", "10"]


def test_prepare_then_reuse_then_info(tmp_path):
    code, out, _ = run_in_process("datasets", "prepare", "demo", "--root", str(tmp_path), "--json")
    built = json.loads(out)
    assert code == 0 and built["reused"] is False and (tmp_path / "demo" / "train.csv").is_file()
    code, out, _ = run_in_process("datasets", "prepare", "demo", "--root", str(tmp_path))
    assert code == 0 and out.startswith("reused")
    code, out, _ = run_in_process("datasets", "info", "demo", "--data-root", str(tmp_path), "--json")
    info = json.loads(out)
    assert code == 0 and info["num_train"] == built["num_train"] and info["num_test"] == built["num_test"]
    assert sum(c["train"] for c in info["classes"]) == info["num_train"]
    code, out, _ = run_in_process("datasets", "info", "demo", "--data-root", str(tmp_path / "demo"))
    assert code == 0 and "tabla" in out


def test_info_on_a_missing_folder_is_exit_2_with_the_path(tmp_path):
    code, out, err = run_in_process("datasets", "info", "esc50", "--data-root", str(tmp_path / "nope"))
    assert code == 2 and str(tmp_path / "nope") in err and err.count("\n") == 1 and out == ""


def test_info_rejects_a_fold_the_dataset_lacks(tmp_path):
    code, _, err = run_in_process("datasets", "info", "sesa", "--data-root", str(tmp_path), "--fold", "fold1")
    assert code == 2 and "not an official fold of dataset sesa" in err


def test_prepare_only_knows_the_demo(tmp_path):
    code, _, err = run_in_process("datasets", "prepare", "esc50", "--root", str(tmp_path))
    assert code == 2 and "only 'demo'" in err and not any(tmp_path.iterdir())


def test_prepare_wordnet_sounds_into_out_then_reuse_then_info(tmp_path):
    out_dir = tmp_path / "ws"
    code, out, _ = run_in_process("datasets", "prepare", "wordnet-sounds", "--out", str(out_dir), "--json")
    built = json.loads(out)
    assert code == 0 and built["reused"] is False and built["path"] == str(out_dir) and len(built["classes"]) == 49
    code, out, _ = run_in_process("datasets", "prepare", "wordnet-sounds", "--out", str(out_dir))
    assert code == 0 and out.startswith(f"reused {out_dir}: ") and "items, 49 classes" in out
    code, out, _ = run_in_process("datasets", "info", "wordnet-sounds", "--data-root", str(out_dir), "--json")
    info = json.loads(out)
    assert code == 0 and (info["num_train"], info["num_test"]) == (built["num_train"], built["num_test"])
    code, out, _ = run_in_process("datasets", "ls")
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("wordnet-sounds ")] == [
        ["wordnet-sounds", "49", "palm"]]


@pytest.mark.parametrize("where", [[], ["--root", "r", "--out", "o"]])
def test_prepare_needs_exactly_one_of_root_and_out(tmp_path, monkeypatch, where):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_in_process("datasets", "prepare", "wordnet-sounds", *where)
    assert code == 2 and "exactly one of --root DIR" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
