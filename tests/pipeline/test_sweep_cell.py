"""One sweep cell (pipeline/sweep/cell_process.py) on its inputs folder, without a training run: the lock, the
attempt record, and a failing run's one `error:` line and exit code. Real runs: tests/pipeline/test_sweep_runs.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cache.lock import file_lock
from pipeline.config_loader import load_config
from pipeline.exits import BAD_INPUT
from pipeline.protocols import TuneFlags, tune_inputs
from pipeline.protocols.tune_inputs import write_inputs
from pipeline.sweep import cell_process
from pipeline.sweep.grid import IDENTITY_FILE


def inputs(tmp_path: Path, protocol: str = "base2new") -> Path:
    cfg, req = tune_inputs(load_config(None, ["train.epochs=1"]), TuneFlags(
        dataset="demo", data_root=tmp_path / "data", protocol=protocol, out=tmp_path / "run", method="coop",
        progress=False))
    return write_inputs(tmp_path / "inputs", cfg, req)


def events(path: Path) -> list[tuple]:
    return [(e["event"], e.get("rc"), e.get("resume")) for e in json.loads(path.read_text())]


def test_a_failing_run_is_one_error_line_and_its_exit_code_recorded(tmp_path: Path):
    attempts = tmp_path / "attempts.json"
    proc = subprocess.run([sys.executable, "-m", "pipeline.sweep.cell_process", "--lock", str(tmp_path / "lock"),
                           "--attempts", str(attempts), "--identity", '{"cell": 1}', "--inputs",
                           str(inputs(tmp_path, protocol="twoway"))], capture_output=True, text=True, timeout=120)
    assert proc.returncode == BAD_INPUT
    assert proc.stderr.startswith("error: ") and "twoway" in proc.stderr and proc.stderr.count("\n") == 1
    assert events(attempts) == [("start", None, False), ("end", BAD_INPUT, None)]
    assert json.loads((tmp_path / "run" / IDENTITY_FILE).read_text()) == {"cell": 1}
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_cell_held_elsewhere_or_finished_is_not_run(tmp_path: Path):
    folder, attempts, lock = inputs(tmp_path), tmp_path / "attempts.json", tmp_path / "lock"
    with file_lock(lock):
        assert cell_process.run(lock, attempts, {}, folder, wait=False) == cell_process.BUSY
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    assert cell_process.run(lock, attempts, {}, folder, wait=False) == cell_process.ALREADY_DONE
    assert not attempts.exists()  # neither started a run


def test_unreadable_inputs_are_one_line_exit_2(tmp_path: Path):
    folder = inputs(tmp_path)
    (folder / "request.json").write_text("[1, 2")
    proc = subprocess.run([sys.executable, "-m", "pipeline.sweep.cell_process", "--lock", str(tmp_path / "lock"),
                           "--attempts", str(tmp_path / "a.json"), "--identity", "{}", "--inputs", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == BAD_INPUT
    assert proc.stderr.startswith(f"error: tune request {folder / 'request.json'}: not readable as JSON")
