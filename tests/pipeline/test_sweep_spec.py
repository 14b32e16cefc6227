"""Sweep files: validation (one-line errors naming the file and key), grid expansion, cell names, identities."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cache.errors import UserError
from cli_kit import run_subprocess
from pipeline.config_loader import parse_override, recipe_names
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


def test_a_cells_inputs_are_what_tune_makes_of_the_same_flags(tmp_path: Path):
    spec = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 2\n"text.templates" = ["a {}."]'))
    cell = next(c for c in grid.expand(spec) if c.method == "kgcoop" and c.sept and c.seed == 2)
    cfg, req = grid.cell_inputs(spec, cell)
    assert (req.dataset, req.protocol, req.data_root, req.out) == ("demo", "base2new", tmp_path / "data",
                                                                   tmp_path / "runs" / cell.name)
    assert req.targets is None and not req.resume and not req.force and not req.progress
    assert (cfg.method.name, cfg.sept.enabled, cfg.data.seed, cfg.data.shots) == ("kgcoop", True, 2, 4)
    assert cfg.backbone.id == "some/hub-id" and cfg.recipe.name == "palm" and cfg.data.fold == ""
    assert cfg.train.epochs == 2 and cfg.text.templates == ["a {}."]
    # `tune` with the same flags resolves the same config and request
    from pipeline.config_loader import load_config
    from pipeline.protocols import TuneFlags, tune_inputs

    flags = TuneFlags(dataset="demo", data_root=tmp_path / "data", protocol="base2new", out=req.out,
                      method="kgcoop", sept=True, backbone="some/hub-id", seed=2, shots=4, progress=False)
    assert tune_inputs(load_config(None, ["train.epochs=2", 'text.templates=["a {}."]']), flags) == (cfg, req)


def test_a_cells_inputs_go_through_files_unchanged(tmp_path: Path):
    from pipeline.protocols.tune_inputs import read_inputs, write_inputs

    spec = parse_sweep(write(tmp_path, 'dataset = ["esc50"]\nmethod = ["cocoop"]\nsept = [true]\nrecipe = ["coop-b2n"]\n'
                                       'protocol = ["cross"]\nfold = ["fold2"]\n"sept.lam" = [0.25]',
                             sweep_extra=f'targets = ["urbansound8k"]\ncache_dir = "{tmp_path / "c"}"',
                             rest='[set]\n"train.epochs" = 3\n"method.kg_templates" = ["x {}"]'))
    (cell,) = grid.expand(spec)
    cfg, req = grid.cell_inputs(spec, cell)
    assert req.targets == ["urbansound8k"] and req.cache_dir == tmp_path / "c" and cfg.data.fold == "fold2"
    assert cfg.recipe.name == "coop-b2n" and cfg.sept.lam == 0.25 and cfg.method.kg_templates == ["x {}"]
    folder = write_inputs(tmp_path / "inputs" / cell.name, cfg, req)
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "request.json"]
    assert read_inputs(folder) == (cfg, req)
    (folder / "request.json").write_text('{"dataset": "esc50", "colour": 1}')
    with pytest.raises(UserError, match=r"request.json: expected an object with keys among dataset, data_root"):
        read_inputs(folder)


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
    assert grid.cell_inputs(spec, cell)[0].sept.lam == 0.5


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
    assert grid.cell_inputs(spec, fold3)[0].data.fold == "fold3"
    assert grid.identity(spec, fold3)["fold"] == "fold3"
    unfolded = cells[5]
    assert grid.cell_inputs(spec, unfolded)[0].data.fold == "" and "fold" not in grid.identity(spec, unfolded)
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
    assert "recipe" not in grid.identity(plain, cell)
    assert grid.cell_inputs(plain, cell)[0].recipe.name == "palm"

    spec = parse_sweep(write(tmp_path, GRID + '\nrecipe = ["palm", "coop-b2n"]', name="r.toml"))
    cells = grid.expand(spec)
    assert len(cells) == 16 and len({c.name for c in cells}) == 16
    coop = next(c for c in cells if c.recipe == "coop-b2n")
    tag = "sept" if coop.sept else "nosept"
    assert coop.name == f"demo-base2new-{coop.method}-{tag}-4shot-seed{coop.seed}-recipe=coop-b2n"
    assert grid.cell_inputs(spec, coop)[0].recipe.name == "coop-b2n"
    assert grid.identity(spec, coop)["recipe"] == "coop-b2n"
    assert grid.cell_inputs(spec, coop)[0].train.schedule == "cosine"
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


def test_a_sweep_changing_only_how_runs_execute_is_not_stale(tmp_path: Path):
    """train.log_to and method.cocoop_chunk are marked identity=False: a rerun with other values is no new sweep."""
    old = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 2\n"train.log_to" = ["jsonl"]',
                            name="old.toml"))
    cells = grid.expand(old)
    for cell, saved in zip(cells[:2], (grid.identity(old, cell) for cell in cells[:2])):
        run = grid.run_dir(old, cell)
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(make_record(base=50.0, new=40.0).to_json())  # a finished run
        if cell is cells[1]:  # as written before log_to was marked: the key is in the recorded [set]
            saved = {**saved, "set": {**saved["set"], "train.log_to": ["jsonl"]}}
        (run / grid.IDENTITY_FILE).write_text(json.dumps(saved))
    new = parse_sweep(write(tmp_path, GRID, rest='[set]\n"train.epochs" = 2\n"method.cocoop_chunk" = 2',
                            name="new.toml"))
    assert grid.identity(new, cells[0]) == grid.identity(old, cells[0])
    _, todo = plan(new)
    assert cells[0] not in todo and cells[1] not in todo and len(todo) == 6


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
     r"\[grid\] recipe: 'adamw' is not one of " + ", ".join(recipe_names())),
    ('dataset = ["demo"]\nmethod = ["coop"]', "", '[set]\n"recipe.name" = "coop-b2n"',
     r"'recipe.name': is set by the grid's recipe axis; use \[grid\] recipe"),
])
def test_bad_sweep_files_are_one_line_errors_naming_file_and_key(tmp_path, grid_text, sweep_extra, rest, message):
    path = write(tmp_path, grid_text, sweep_extra, rest)
    with pytest.raises(UserError, match=message) as err:
        parse_sweep(path) if "gives no runs" not in message else grid.expand(parse_sweep(path))
    assert str(err.value).startswith(f"sweep file {path}: ") and "\n" not in str(err.value)


def test_cli_reports_bad_sweep_file_with_exit_2_and_writes_nothing(tmp_path: Path):
    path = write(tmp_path, 'dataset = ["nosuchset"]\nmethod = ["coop"]')
    proc = run_subprocess("sweep", "--config", path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: sweep file {path}: [grid] dataset: dataset 'nosuchset': unknown")
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "runs").exists()
    missing = run_subprocess("sweep", "--config", tmp_path / "nope.toml")
    assert missing.returncode == 2 and "nope.toml: not found" in missing.stderr


def test_dry_run_lists_cells_and_command_line_overrides(tmp_path: Path):
    path = write(tmp_path, GRID)
    proc = run_subprocess("sweep", "--config", path, "--dry-run", "--json", "--runs-dir", tmp_path / "elsewhere",
                          "--set", "train.epochs=1")
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
    # x CoOp, CoCoOp, KgCoOp, DePT on each, ZEBRA on CoOp and CoCoOp x SEPT off/on x seeds
    assert len(grid.expand(palm)) == (5 + 5 + 5 + 4 + 10 + 6) * 8 * 2 * 3
    clap = parse_sweep(root / "base2new-palm11-clap.toml")
    assert palm.backbone == "pengi:base" and clap.backbone == "laion/clap-htsat-unfused"
    assert palm.axes == clap.axes and palm.fixed == clap.fixed and palm.runs_dir != clap.runs_dir
    # each carries its validation step: the same datasets, validation view only, on the same backbone
    for final, name in ((palm, "base2new-palm11-val.toml"), (clap, "base2new-palm11-clap-val.toml")):
        val = parse_sweep(root / name)
        assert val.backbone == final.backbone and val.axes["dataset"] == final.axes["dataset"]
        assert val.fixed["data.eval_split"] == "val" and "sept.lam" in val.config_axes
        assert name in Path(final.source).read_text()


def test_per_dataset_tables_go_over_set_for_their_dataset_only(tmp_path: Path):
    grid_text = 'dataset = ["demo", "wordnet-sounds"]\nmethod = ["coop"]\nsept = [true]'
    rest = '[set]\n"sept.lam" = 1.0\n"train.epochs" = 2\n[per_dataset.demo]\n"sept.lam" = 0.5\n'
    spec = parse_sweep(write(tmp_path, grid_text, rest=rest, name="p.toml"))
    cells = {c.dataset: c for c in grid.expand(spec)}
    assert grid.overrides(spec, cells["demo"]) == {"sept.lam": 0.5, "train.epochs": 2}
    assert grid.overrides(spec, cells["wordnet-sounds"]) == {"sept.lam": 1.0, "train.epochs": 2}
    assert grid.cell_inputs(spec, cells["demo"])[0].sept.lam == 0.5
    assert grid.cell_inputs(spec, cells["wordnet-sounds"])[0].sept.lam == 1.0
    assert grid.identity(spec, cells["demo"])["set"]["sept.lam"] == 0.5  # a new choice reruns that dataset only
    plain = parse_sweep(write(tmp_path, grid_text, rest=rest.split("[per_dataset")[0], name="q.toml"))
    other = {c.dataset: c for c in grid.expand(plain)}
    assert grid.identity(plain, other["wordnet-sounds"]) == grid.identity(spec, cells["wordnet-sounds"])
    assert grid.identity(plain, other["demo"]) != grid.identity(spec, cells["demo"])


@pytest.mark.parametrize("rest, message", [
    ('[per_dataset.esc50]\n"sept.lam" = 0.5', r"\[per_dataset.esc50\]: 'esc50' is not a dataset of the grid"),
    ('[per_dataset.demo]\n"data.seed" = 3', r"is a \[grid\] axis"),
    ('[per_dataset.demo]\n"sept.lam" = -1.0', r"sept.lam: -1.0 is outside"),
])
def test_bad_per_dataset_tables_are_one_line_errors(tmp_path, rest, message):
    path = write(tmp_path, 'dataset = ["demo"]\nmethod = ["coop"]', rest=rest, name="bad-pd.toml")
    with pytest.raises(UserError, match=message) as err:
        parse_sweep(path)
    assert str(err.value).startswith(f"sweep file {path}: ") and "\n" not in str(err.value)


def test_a_damaged_metrics_file_in_the_runs_folder_is_named(tmp_path: Path):
    spec = parse_sweep(write(tmp_path, GRID))
    cell = grid.expand(spec)[3]
    bad = grid.run_dir(spec, cell) / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"base_acc": 5')
    proc = run_subprocess("sweep", "--config", spec.source)
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
