"""Sweep files: validation (one-line errors naming the file and key), grid expansion, cell names, identities."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cache.errors import UserError
from pipeline.config_loader import parse_override
from pipeline.sweep import grid
from pipeline.sweep.runner import plan
from pipeline.sweep.spec import parse_sweep
from record_kit import make_record

BASE = """
[sweep]
runs_dir = "{runs}"
data_root = "{data}"
backbone = "some/hub-id"
{sweep_extra}
[grid]
{grid}
{rest}
"""


def write(tmp_path: Path, grid_text: str, sweep_extra: str = "", rest: str = "", name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(BASE.format(runs=tmp_path / "runs", data=tmp_path / "data", sweep_extra=sweep_extra,
                                grid=grid_text, rest=rest))
    return path


GRID = 'dataset = ["demo"]\nmethod = ["coop", "kgcoop"]\nsept = [false, true]\nseed = [1, 2]\nshots = [4]'


def test_grid_expands_to_the_product_with_names_from_parameters(tmp_path: Path):
    spec = parse_sweep(write(tmp_path, GRID))
    cells = grid.expand(spec)
    assert len(cells) == 2 * 2 * 2
    names = [c.name for c in cells]
    assert len(set(names)) == 8
    assert "demo-base2new-coop-nosept-4shot-seed1" in names
    assert "demo-base2new-kgcoop-sept-4shot-seed2" in names
    assert spec.runs_dir == tmp_path / "runs" and spec.executor == "local" and spec.devices == "auto"


def test_tune_arguments_of_a_cell(tmp_path: Path):
    spec = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 2\n"text.templates" = ["a {}."]'))
    cell = next(c for c in grid.expand(spec) if c.method == "kgcoop" and c.sept and c.seed == 2)
    args = grid.tune_args(spec, cell)
    assert args[:1] == ["tune"]
    pairs = dict(zip(args[1::1], args[2::1]))
    assert pairs["--dataset"] == "demo" and pairs["--method"] == "kgcoop" and pairs["--seed"] == "2"
    assert pairs["--shots"] == "4" and pairs["--protocol"] == "base2new" and pairs["--backbone"] == "some/hub-id"
    assert "--sept" in args and "--no-sept" not in args
    assert pairs["--out"] == str(tmp_path / "runs" / cell.name)
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    # Every --set value parses back to what the sweep file said.
    parsed = {}
    for text in sets:
        section, values = next(iter(parse_override(text).items()))
        parsed.update({f"{section}.{k}": v for k, v in values.items()})
    assert parsed == {"train.epochs": 2, "text.templates": ["a {}."]}


def test_config_key_axes_and_zero_shot_sept_twin(tmp_path: Path):
    spec = parse_sweep(write(tmp_path, 'dataset = ["demo"]\nmethod = ["zeroshot", "coop"]\nsept = [false, true]\n'
                                       '"sept.lam" = [0.5, 1.0]'))
    cells = grid.expand(spec)
    # zero-shot trains nothing: no SEPT twin. 2 (zs, no SEPT) + 2x2 (coop) = 6 x lam 2 ... = (1 + 2) * 2
    assert len(cells) == 6
    assert not any(c.method == "zeroshot" and c.sept for c in cells)
    names = {c.name for c in cells}
    assert "demo-base2new-coop-sept-16shot-seed1-sept.lam=0.5" in names
    cell = next(c for c in cells if c.name.endswith("sept.lam=0.5") and c.sept)
    assert "sept.lam=0.5" in grid.tune_args(spec, cell)


def test_fold_axis_all_expands_to_each_datasets_official_folds(tmp_path: Path):
    spec = parse_sweep(write(tmp_path, 'dataset = ["esc50", "crema-d", "tut2017"]\nmethod = ["coop"]\n'
                                       'fold = ["all"]'))
    cells = grid.expand(spec)
    assert [(c.dataset, c.fold) for c in cells] == ([("esc50", f"fold{k}") for k in range(1, 6)] + [("crema-d", "")]
                                                   + [("tut2017", f"fold{k}") for k in range(1, 5)])
    names = [c.name for c in cells]
    assert "esc50-base2new-coop-nosept-16shot-seed1-fold3" in names
    assert "crema-d-base2new-coop-nosept-16shot-seed1" in names
    fold3 = cells[2]
    args = grid.tune_args(spec, fold3)
    assert args[args.index("--fold") + 1] == "fold3"
    assert grid.identity(spec, fold3)["fold"] == "fold3"
    unfolded = cells[5]
    assert "--fold" not in grid.tune_args(spec, unfolded) and "fold" not in grid.identity(spec, unfolded)
    # a named fold must exist in every dataset of the grid
    with pytest.raises(UserError, match=r"\[grid\] fold: 'fold5' is not an official fold of dataset tut2017"):
        parse_sweep(write(tmp_path, 'dataset = ["esc50", "tut2017"]\nmethod = ["coop"]\nfold = ["fold5"]',
                          name="bad.toml"))
    with pytest.raises(UserError, match=r"'data.fold': is set by the grid's fold axis"):
        parse_sweep(write(tmp_path, 'dataset = ["esc50"]\nmethod = ["coop"]\n"data.fold" = ["fold1"]',
                          name="bad2.toml"))


def test_recipe_axis_names_cells_passes_the_flag_and_enters_the_identity(tmp_path: Path):
    plain = parse_sweep(write(tmp_path, GRID, name="plain.toml"))
    assert all(c.recipe == "" and "recipe" not in c.name for c in grid.expand(plain))
    cell = grid.expand(plain)[0]
    assert "--recipe" not in grid.tune_args(plain, cell) and "recipe" not in grid.identity(plain, cell)
    assert grid.resolved_config(plain, cell).recipe.name == "palm"

    spec = parse_sweep(write(tmp_path, GRID + '\nrecipe = ["palm", "coop"]', name="r.toml"))
    cells = grid.expand(spec)
    assert len(cells) == 16 and len({c.name for c in cells}) == 16
    coop = next(c for c in cells if c.recipe == "coop")
    tag = "sept" if coop.sept else "nosept"
    assert coop.name == f"demo-base2new-{coop.method}-{tag}-4shot-seed{coop.seed}-recipe=coop"
    args = grid.tune_args(spec, coop)
    assert args[args.index("--recipe") + 1] == "coop"
    assert grid.identity(spec, coop)["recipe"] == "coop"
    assert grid.resolved_config(spec, coop).train.schedule == "cosine"
    twin = next(c for c in cells if c.recipe == "palm" and (c.method, c.sept, c.seed) == (coop.method, coop.sept,
                                                                                          coop.seed))
    assert grid.identity(spec, twin) != grid.identity(spec, coop)


def test_identity_changes_with_what_the_run_computes_only(tmp_path: Path):
    a = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 2', name="a.toml"))
    b = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 2\n"backbone.device" = "cpu"',
                          name="b.toml"))
    c = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 3', name="c.toml"))
    cell = grid.expand(a)[0]
    assert grid.identity(a, cell) == grid.identity(b, cell)  # the device does not change results
    assert grid.identity(a, cell) != grid.identity(c, cell)


def test_a_runs_folder_made_with_other_settings_is_refused(tmp_path: Path):
    old = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 2', name="old.toml"))
    cell = grid.expand(old)[0]
    run = grid.run_dir(old, cell)
    run.mkdir(parents=True)
    (run / grid.IDENTITY_FILE).write_text(json.dumps(grid.identity(old, cell)))
    (run / "metrics.json").write_text(make_record(base=50.0, new=40.0).to_json())
    cells, todo = plan(old)
    assert cell not in todo and len(todo) == 7  # finished: skipped
    new = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 5', name="new.toml"))
    with pytest.raises(UserError, match=rf"{cell.name} \(set\).*other settings|1 runs were made with other settings"):
        plan(new)


@pytest.mark.parametrize("grid_text, sweep_extra, rest, message", [
    ('dataset = ["nosuchset"]\nmethod = ["coop"]', "", "", r"\[grid\] dataset: dataset 'nosuchset': unknown \(known: .*demo"),
    ('dataset = ["demo"]\nmethod = ["coop", "prompt-magic"]', "", "",
     r"\[grid\] method: config key method.name: 'prompt-magic' is not one of zeroshot, coop, cocoop, kgcoop"),
    ('dataset = ["demo"]\nmethod = []', "", "", r"\[grid\] method: empty list: the grid would have no runs"),
    ('dataset = []\nmethod = ["coop"]', "", "", r"\[grid\] dataset: empty list"),
    ('method = ["coop"]', "", "", r"\[grid\] dataset: missing"),
    ('dataset = ["demo"]\nmethod = ["zeroshot"]\nsept = [true]', "", "", r"\[grid\] gives no runs"),
    ('dataset = ["demo"]\nmethod = ["coop"]\ncolour = ["red"]', "", "", r"\[grid\] colour: unknown axis"),
    ('dataset = ["demo"]\nmethod = ["coop"]\nseed = [1, 1]', "", "", r"\[grid\] seed: \[1, 1\] repeats a value"),
    ('dataset = ["demo"]\nmethod = ["coop"]\nseed = ["one"]', "", "", r"\[grid\] seed: 'one' is not a whole number"),
    ('dataset = ["demo"]\nmethod = ["coop"]\nsept = ["yes"]', "", "", r"\[grid\] sept: 'yes' is not true or false"),
    ('dataset = ["demo"]\nmethod = ["coop"]', 'executor = "slurm"', "", r"\[sweep\] executor: 'slurm' is not one of"),
    ('dataset = ["demo"]\nmethod = ["coop"]', 'workers = 3', "", r"\[sweep\] workers: unknown key"),
    ('dataset = ["demo"]\nmethod = ["coop"]', 'devices = ["gpu0"]', "", r"\[sweep\] devices: 'gpu0' is not cpu"),
    ('dataset = ["demo"]\nmethod = ["coop"]', 'targets = ["esc50"]', "", r"\[sweep\] targets: given, but no run"),
    ('dataset = ["demo"]\nmethod = ["coop"]', "", '[set]\n"train.epochs" = "many"',
     r"config keys: --set train.epochs=\"many\": key train.epochs: expected int"),
    ('dataset = ["demo"]\nmethod = ["coop"]\n"sept.lam" = [-1.0]', "", "", r"sept.lam: -1.0 is outside"),
    ('dataset = ["demo"]\nmethod = ["coop"]\n"train.epochs" = [1]', "", '[set]\n"train.epochs" = 2',
     r"\[set\] train.epochs: is also a \[grid\] axis"),
    ('dataset = ["demo"]\nmethod = ["coop"]', "", "[slurm]\nqueue = 1", r"\[slurm\]: unknown section"),
    ('dataset = ["demo"]\nmethod = ["coop"]\n"data.seed" = [1, 2]', "", "",
     r"'data.seed': is set by the grid's seed axis; use \[grid\] seed"),
    ('dataset = ["demo"]\nmethod = ["coop"]\nrecipe = ["palm", "adamw"]', "", "",
     r"\[grid\] recipe: 'adamw' is not one of cocoop-original, coop, kgcoop-original, palm"),
    ('dataset = ["demo"]\nmethod = ["coop"]', "", '[set]\n"recipe.name" = "coop"',
     r"'recipe.name': is set by the grid's recipe axis; use \[grid\] recipe"),
])
def test_bad_sweep_files_are_one_line_errors_naming_file_and_key(tmp_path, grid_text, sweep_extra, rest, message):
    path = write(tmp_path, grid_text, sweep_extra, rest)
    with pytest.raises(UserError, match=message) as err:
        parse_sweep(path) if "gives no runs" not in message else grid.expand(parse_sweep(path))
    assert str(err.value).startswith(f"sweep file {path}: ") and "\n" not in str(err.value)


def test_cli_reports_bad_sweep_file_with_exit_2_and_writes_nothing(tmp_path: Path):
    path = write(tmp_path, 'dataset = ["nosuchset"]\nmethod = ["coop"]')
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--config", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: sweep file {path}: [grid] dataset: dataset 'nosuchset': unknown")
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    missing = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--config", str(tmp_path / "nope.toml")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.toml: not found" in missing.stderr


def test_dry_run_lists_cells_and_command_line_overrides(tmp_path: Path):
    path = write(tmp_path, GRID)
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--config", str(path), "--dry-run",
                           "--json", "--runs-dir", str(tmp_path / "elsewhere"), "--set", "train.epochs=1"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["runs_dir"] == str(tmp_path / "elsewhere") and len(out["cells"]) == 8 and out["to_run"] == out["cells"]
    assert not (tmp_path / "elsewhere").exists()


def test_shipped_sweep_files_parse(tmp_path: Path):
    root = Path(__file__).resolve().parents[2] / "configs" / "sweeps"
    files = sorted(root.glob("*.toml"))
    assert files
    for path in files:
        spec = parse_sweep(path)
        assert grid.expand(spec)
    palm = parse_sweep(root / "base2new-palm11.toml")
    # every fold of the folded datasets: BO 5 + ESC50 5 + ESC50-Actions 5 + TUT2017 4 + US8K 10 + 6 unfolded,
    # x CoOp, CoCoOp, KgCoOp and DePT on each x SEPT off/on x seeds
    assert len(grid.expand(palm)) == (5 + 5 + 5 + 4 + 10 + 6) * 6 * 2 * 3


def test_a_damaged_metrics_file_in_the_runs_folder_is_named(tmp_path: Path):
    spec = parse_sweep(write(tmp_path, GRID))
    cell = grid.expand(spec)[3]
    bad = grid.run_dir(spec, cell) / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"base_acc": 5')
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "sweep", "--config", str(spec.source)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"{bad}: not valid JSON" in proc.stderr and "delete those files" in proc.stderr
    assert not (tmp_path / "runs" / ".sweep").exists()  # refused before anything was written


def test_methods_without_sept_or_unseen_support_follow_the_method_table(tmp_path: Path):
    """PALM has no SEPT twin; on base2new it is refused before any run, unless it scores unseen classes zero-shot."""
    text = 'dataset = ["demo"]\nmethod = ["palm", "dept"]\nsept = [false, true]\nprotocol = ["fewshot", "base2new"]'
    spec = parse_sweep(write(tmp_path, text))
    cells = grid.expand(spec)
    assert sorted(c.name for c in cells if c.method == "palm") == [
        "demo-base2new-palm-nosept-16shot-seed1", "demo-fewshot-palm-nosept-16shot-seed1"]
    assert sum(c.method == "dept" for c in cells) == 4
    with pytest.raises(UserError, match=r"cell demo-base2new-palm-nosept-16shot-seed1: --protocol base2new: PALM "
                                        r"has no prompt for classes it never trained on"):
        plan(spec)
    lenient = parse_sweep(write(tmp_path, text, rest='[set]\n"method.palm_unseen" = "zeroshot"', name="ok.toml"))
    assert len(plan(lenient)[0]) == 6
