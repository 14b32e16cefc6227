"""Real sweeps on the demo data with the tiny random CLAP: every cell is a real `tune` process.

- the issue's grid (2 methods x 2 seeds x SEPT on/off = 8 cells) completes locally and through a local Ray
  instance, and the report shows all 8 cells; a rerun runs nothing;
- a sweep killed half-way and restarted finishes the grid without rerunning finished cells, and a failed
  cell is reported without stopping the others;
- two sweeps started at once on one runs folder never run the same cell twice;
- stage one: a store lacking some classes gets exactly those from one real `generate-neighbors` (vLLM).

The store is filled through its API with the tiny backbone's frozen text tower (what stage one writes),
under a test generation key that the sweeps pass to `tune` as sept.generation.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cli_kit import cli_env, popen_command, run_subprocess

pytestmark = pytest.mark.slow

TEMPLATES = ["a sound of a {}.", "the sound of {}."]
DEMO_NEIGHBORS = {
    "airplane": ["jet plane", "aircraft engine"], "ambient pad": ["soft synth pad", "drone"],
    "animal": ["cow mooing", "sheep bleating"], "bass drum": ["kick drum", "low drum hit"],
    "cymbal": ["crash cymbal", "hi-hat"], "electronic blip": ["beep", "synth blip"],
    "engine starting": ["car ignition", "motor starting"], "snare drum": ["snare hit", "rimshot"],
    "synth bass": ["bass synth", "low synth"], "tabla": ["indian hand drum", "tabla beat"],
}


@torch.no_grad()
def put_neighbors(cache: Path, backbone, neighbors: dict, llm_fingerprint: str, prompt_hash: str = "test",
                  num_neighbors: int = 8) -> str:
    """Store phrases and their frozen per-template embeddings; return the generation key."""
    from cache.store import ClassNeighbors, NeighborStore, Provenance

    prov = Provenance(llm_id="test", llm_revision="0", llm_fingerprint=llm_fingerprint, engine="none",
                      engine_version="0", prompt_hash=prompt_hash, prompt_version="1", num_neighbors=num_neighbors)
    store = NeighborStore.in_cache(cache)
    store.put_phrases([ClassNeighbors(c, p, prov, {"temperature": 0.0}, 0) for c, p in neighbors.items()])
    texts = list(dict.fromkeys(list(neighbors) + [p for ps in neighbors.values() for p in ps]))
    flat = [t.format(x) for x in texts for t in TEMPLATES]
    e = F.normalize(backbone.encode_text(flat).float(), dim=-1).view(len(texts), len(TEMPLATES), -1)
    store.put_embeddings(texts, TEMPLATES, backbone.fingerprint, e.cpu().numpy())
    return prov.generation_key


@pytest.fixture(scope="module")
def demo(tmp_path_factory, tiny_clap_dir, tiny_backbone):
    root = tmp_path_factory.mktemp("sweep-demo")
    proc = run_subprocess("datasets", "prepare", "demo", "--root", root / "data")
    assert proc.returncode == 0, proc.stderr
    cache = root / "cache"
    key = put_neighbors(cache, tiny_backbone, DEMO_NEIGHBORS, llm_fingerprint="sweep-test-llm")
    return {"root": root, "data": root / "data", "cache": cache, "key": key, "model": tiny_clap_dir}


def sweep_file(demo: dict, path: Path, runs: Path, grid: str, executor: str = "local", max_parallel: int = 1,
               fixed: dict | None = None) -> Path:
    """A sweep file over the demo data; `fixed` adds [set] keys (a value of None drops a default one)."""
    keys = {"train.epochs": 1, "method.n_ctx": 4, "text.templates": TEMPLATES, "sept.generation": demo["key"],
            **(fixed or {})}
    set_lines = "\n".join(f'"{k}" = {json.dumps(v)}' for k, v in keys.items() if v is not None)
    path.write_text(f"""
[sweep]
runs_dir = "{runs}"
data_root = "{demo['data']}"
backbone = "{demo['model']}"
cache_dir = "{demo['cache']}"
executor = "{executor}"
max_parallel = {max_parallel}
devices = ["cpu"]

[grid]
{grid}

[set]
{set_lines}
""")
    return path


def starts(runs: Path, cell: str) -> list[dict]:
    path = runs / ".sweep" / "attempts" / f"{cell}.json"
    return [e for e in json.loads(path.read_text()) if e["event"] == "start"] if path.is_file() else []


GRID_8 = 'dataset = ["demo"]\nmethod = ["coop", "kgcoop"]\nsept = [false, true]\nseed = [1, 2]\nshots = [2]'


def check_eight_cells(runs: Path, tmp_path: Path) -> None:
    cells = sorted(p.name for p in runs.iterdir() if (p / "metrics.json").is_file())
    assert len(cells) == 8
    rep = run_subprocess("report", str(runs), "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr
    with open(tmp_path / "rep" / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["run"] for r in rows) == cells
    assert {(r["method"], r["sept"], r["seed"]) for r in rows} == {
        (m, s, seed) for m in ("coop", "kgcoop") for s in ("true", "false") for seed in ("1", "2")}
    for label in ("CoOp", "CoOp+SEPT", "KgCoOp", "KgCoOp+SEPT"):
        assert f"| demo | {label} | 2 | 1,2 |" in rep.stdout


def test_local_sweep_of_eight_cells_then_report_then_nothing_to_redo(demo, tmp_path):
    runs = tmp_path / "runs"
    spec = sweep_file(demo, tmp_path / "s.toml", runs, GRID_8, max_parallel=2)
    proc = subprocess.Popen(popen_command("sweep", "--config", spec, "--json"), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert len(summary["ran"]) == 8 and not summary["failed"] and not summary["skipped_finished"]
    assert summary["stage_one"] == []  # the store already held every SEPT cell's neighbors
    assert {o["launcher_pid"] for o in summary["outcomes"]} == {proc.pid}  # local: the sweep launched them
    assert {o["warm"] for o in summary["outcomes"]} == {True}  # CPU runs fork from the warm interpreter
    assert list((runs / ".sweep" / "inputs").iterdir()) == []  # each run's config and request: gone with the sweep
    for cell in summary["ran"]:
        assert len(starts(runs, cell)) == 1
        metrics = json.loads((runs / cell / "metrics.json").read_text())
        assert metrics["sept"]["enabled"] == ("-sept-" in cell)
        if metrics["sept"]["enabled"]:
            assert metrics["fingerprints"]["store"]["generation_key"] == demo["key"]
    check_eight_cells(runs, tmp_path)

    again = run_subprocess("sweep", "--config", str(spec), "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["ran"] == [] and len(second["skipped_finished"]) == 8
    assert all(len(starts(runs, c)) == 1 for c in summary["ran"])

    # Prompt interpretation works on a real run of the sweep.
    info = run_subprocess("inspect", str(runs / "demo-base2new-coop-sept-2shot-seed1"), "--json")
    assert info.returncode == 0, info.stderr
    assert len(json.loads(info.stdout)["context"]) == 4  # n_ctx = 4


def test_ray_sweep_of_eight_cells_then_report(demo, tmp_path):
    runs = tmp_path / "runs"
    spec = sweep_file(demo, tmp_path / "s.toml", runs, GRID_8, executor="ray", max_parallel=2)
    proc = subprocess.Popen(popen_command("sweep", "--config", spec, "--json"), env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["executor"] == "ray"
    assert len(summary["ran"]) == 8 and not summary["failed"]
    # Each cell was launched from a Ray worker process, not from the sweep itself.
    assert proc.pid not in {o["launcher_pid"] for o in summary["outcomes"]}
    assert {o["device"] for o in summary["outcomes"]} == {"cpu"}
    assert {o["warm"] for o in summary["outcomes"]} == {True}  # a warm interpreter in each Ray worker
    check_eight_cells(runs, tmp_path)


def test_killed_sweep_restarts_without_rerunning_finished_cells_and_reports_failures(demo, tmp_path):
    runs = tmp_path / "runs"
    # method.n_ctx = 400 does not fit the tiny text tower: CoOp refuses it (a real failure); zero-shot ignores it.
    spec = sweep_file(demo, tmp_path / "s.toml", runs, 'dataset = ["demo"]\nmethod = ["zeroshot", "coop"]\n'
                      'seed = [1]\nshots = [2]\n"method.n_ctx" = [4, 400]', fixed={"method.n_ctx": None})
    first_cell = "demo-base2new-zeroshot-nosept-2shot-seed1-method.n_ctx=4"
    proc = subprocess.Popen(popen_command("sweep", "--config", spec), env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (runs / first_cell / "metrics.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "the first cell never finished"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and the cell it is running, mid-way
    proc.wait()
    done_before = {p.name: (p / "metrics.json").stat().st_mtime_ns for p in runs.iterdir()
                   if (p / "metrics.json").is_file()}
    assert first_cell in done_before and len(done_before) < 4

    again = run_subprocess("sweep", "--config", str(spec), "--json")
    assert again.returncode == 1 and again.stdout, again.stderr  # one cell fails, and says so
    summary = json.loads(again.stdout)
    assert sorted(summary["skipped_finished"]) == sorted(done_before)
    failed = summary["failed"]
    assert [f["cell"] for f in failed] == ["demo-base2new-coop-nosept-2shot-seed1-method.n_ctx=400"]
    assert "n_ctx" in failed[0]["message"] or "context" in failed[0]["message"]
    assert Path(failed[0]["log"]).is_file()
    # Everything else finished; nothing finished before was redone.
    finished = {p.name for p in runs.iterdir() if (p / "metrics.json").is_file()}
    assert len(finished) == 3
    for cell, mtime in done_before.items():
        assert (runs / cell / "metrics.json").stat().st_mtime_ns == mtime
        assert len(starts(runs, cell)) == 1


def test_two_sweeps_at_once_never_run_one_cell_twice(demo, tmp_path):
    runs = tmp_path / "runs"
    spec = sweep_file(demo, tmp_path / "s.toml", runs,
                      'dataset = ["demo"]\nmethod = ["zeroshot", "coop"]\nseed = [1]\nshots = [2]')
    # Started in the demo folder, which holds the cache folder `cache/` (the feature cache makes `features/`
    # in it): the runs must still import this project's `cache` package, not that folder.
    (demo["root"] / "cache" / "features").mkdir(exist_ok=True)
    # One sweep forks its runs from a warm interpreter (the default on the CPU), the other starts each fresh.
    procs = [subprocess.Popen(popen_command("sweep", "--config", spec, "--json", *extra), env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=demo["root"])
             for extra in ([], ["--cold"])]
    summaries = []
    for p in procs:
        out, err = p.communicate(timeout=400)
        assert p.returncode == 0, err
        summaries.append(json.loads(out))
    cells = ["demo-base2new-zeroshot-nosept-2shot-seed1", "demo-base2new-coop-nosept-2shot-seed1"]
    ran = [c for s in summaries for c in s["ran"]]
    assert sorted(ran) == sorted(cells)  # each cell ran exactly once, by one of the two
    for s in summaries:  # and each sweep accounts for the whole grid
        assert sorted(s["ran"] + s["finished_elsewhere"] + s["skipped_finished"]) == sorted(cells)
    for cell in cells:
        assert len(starts(runs, cell)) == 1
        assert (runs / cell / "metrics.json").is_file()
    for s, warm in zip(summaries, (True, False)):
        assert {o["warm"] for o in s["outcomes"]} == {warm}


def test_stage_one_fills_only_missing_classes_with_one_generate_neighbors(demo, tmp_path, tiny_backbone,
                                                                        llm_model_dir):
    """Real vLLM (CPU build) with the packaged SmolLM2 writes the 2 missing classes' neighbors; kept small."""
    from pipeline.config_loader import load_config
    from stages.neighbors.keys import resolve_generation

    cache = tmp_path / "cache"
    # Small, fast generation settings; the pre-filled classes use the same generation key they imply.
    gen_set = {"neighbors.num_neighbors": 2, "neighbors.overgenerate": 4, "neighbors.max_retries": 0,
               "neighbors.max_tokens": 48, "neighbors.model_dir": str(llm_model_dir)}
    cfg = load_config(None, [f"{k}={json.dumps(v)}" for k, v in gen_set.items()])
    ident = resolve_generation(cfg.neighbors, cache)
    missing = ["snare drum", "tabla"]
    present = {c: p for c, p in DEMO_NEIGHBORS.items() if c not in missing}
    key = put_neighbors(cache, tiny_backbone, present, ident.llm["fingerprint"], ident.prompt_hash, 2)
    assert key == ident.key

    runs = tmp_path / "runs"
    spec = sweep_file({**demo, "cache": cache}, tmp_path / "s.toml", runs,
                      'dataset = ["demo"]\nmethod = ["coop"]\nsept = [true]\nseed = [1]\nshots = [2]',
                      fixed={**gen_set, "sept.generation": None})
    proc = run_subprocess("sweep", "--config", str(spec), "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert [s["classes"] for s in summary["stage_one"]] == [missing]  # one call, exactly the missing classes
    assert summary["stage_one"][0]["rc"] == 0
    log = Path(summary["stage_one"][0]["log"]).read_text()
    assert log.count("=== ") == 1 and "generate-neighbors --classes-file" in log
    assert summary["ran"] == ["demo-base2new-coop-sept-2shot-seed1"]

    from cache.store import NeighborStore

    assert NeighborStore.in_cache(cache).classes_present(list(DEMO_NEIGHBORS), key) == set(DEMO_NEIGHBORS)
    # The store is full now: a second sweep over these cells would start no generate-neighbors.
    from pipeline.sweep.grid import expand
    from pipeline.sweep.spec import parse_sweep
    from pipeline.sweep.stage_one import find_missing

    parsed = parse_sweep(spec)
    assert find_missing(parsed, expand(parsed)) == []


def test_a_sweep_runs_zebra_with_and_without_sept_and_reports_it(demo, tmp_path):
    """ZEBRA through a real sweep: its cells run, with ZEBRA's shuffled split, and the report labels them."""
    runs = tmp_path / "runs"
    grid = 'dataset = ["demo"]\nmethod = ["zebra"]\nsept = [false, true]\nseed = [1]\nshots = [2]'
    spec = sweep_file(demo, tmp_path / "z.toml", runs, grid, fixed={"data.split_rule": "shuffle:42"})
    done = run_subprocess("sweep", "--config", str(spec), "--json", timeout=600)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["ran"]) == 2 and not summary["failed"]
    for cell in summary["ran"]:
        metrics = json.loads((runs / cell / "metrics.json").read_text())
        assert metrics["method"] == "zebra" and metrics["sept"]["active"] == ("-sept-" in cell)
        split = json.loads((runs / cell / "base_new_split.json").read_text())
        assert split["split_rule"] == "shuffle:42"
    rep = run_subprocess("report", str(runs), "--out", str(tmp_path / "rep"))
    assert rep.returncode == 0, rep.stderr
    table = (tmp_path / "rep" / "report.md").read_text()
    for label in ("ZEBRA", "ZEBRA+SEPT"):
        assert f"| demo | {label} | 2 | 1 |" in table  # 2 shots, seed 1
