"""A whole sweep: expand the grid, skip what finished, fill the store once, run the rest, report.

    runs_dir/<cell>/                 one `tune` run directory per cell (metrics.json = finished)
    runs_dir/.sweep/plan.json        the expanded grid of the last sweep started here
    runs_dir/.sweep/status.json      what became of each cell in the last sweep
    runs_dir/.sweep/locks/<cell>     held by the process running the cell (two sweeps never run one cell)
    runs_dir/.sweep/attempts/<cell>.json, logs/<cell>.log   every attempt's start/end and output
    runs_dir/.sweep/inputs/<sweep>/<cell>/  what each run is given (config.toml, request.json) while this
                                     sweep runs (pipeline/protocols/tune_inputs.py); removed at its end

Rerunning the sweep continues where it stopped: finished cells are skipped, an interrupted cell resumes
from its last checkpoint, failed cells are tried again. A cell another sweep is running is waited for
at the end (its lock), then counted as finished if that sweep finished it, or run here if it did not.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from cache.atomic import atomic_write_json
from cache.errors import UserError
from cache.lock import file_lock
from pipeline.protocols.tune_inputs import write_inputs
from pipeline.runs import RunDir
from pipeline.sweep import grid
from pipeline.sweep.executors import make_executor
from pipeline.sweep.launch import BUSY_ELSEWHERE, FAILED, FINISHED, RAN, Job, Outcome
from pipeline.sweep.spec import SweepSpec
from pipeline.sweep.stage_one import cell_generations, fill_store, sept_groups

STATE = ".sweep"


@dataclass
class SweepResult:
    runs_dir: Path
    executor: str
    cells: list[str]
    skipped: list[str] = field(default_factory=list)      # finished before this sweep started
    outcomes: list[Outcome] = field(default_factory=list)
    stage_one: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def names(self, status: str) -> list[str]:
        return [o.name for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == FAILED]

    def summary(self) -> dict:
        return {
            "runs_dir": str(self.runs_dir), "executor": self.executor, "cells": len(self.cells),
            "skipped_finished": self.skipped, "ran": self.names(RAN), "finished_elsewhere": self.names(FINISHED),
            "failed": [{"cell": o.name, "rc": o.rc, "message": o.message, "log": o.log} for o in self.failed],
            "stage_one": self.stage_one, "seconds": round(self.seconds, 3),
            "outcomes": [o.to_dict() for o in self.outcomes],
        }


def job_for(spec: SweepSpec, cell: grid.Cell, cwd: Path, inputs_dir: Path, generation: str | None = None) -> Job:
    """The cell's job; writes what its run is given (config.toml, request.json) under `inputs_dir`/<cell>.
    `generation`: the neighbor generation key stage one resolved for this cell (tune never resolves the LLM)."""
    state = spec.runs_dir / STATE
    cfg, request = grid.cell_inputs(spec, cell)
    if generation:
        cfg = cfg.replace("sept", generation=generation)
    inputs = write_inputs(inputs_dir / cell.name, cfg, request)
    return Job(
        name=cell.name, run_dir=str(grid.run_dir(spec, cell)), lock=str(state / "locks" / f"{cell.name}.lock"),
        attempts=str(state / "attempts" / f"{cell.name}.json"), log=str(state / "logs" / f"{cell.name}.log"),
        identity=grid.identity(spec, cell), inputs=str(inputs), cwd=str(cwd),
    )


def _check_finished_readable(spec: SweepSpec, finished: list[grid.Cell]) -> None:
    """A finished cell's metrics.json must be a readable run record: a damaged one (or one older than the
    record) is named, never silently counted."""
    from pipeline.protocols.record import RecordError

    bad = []
    for cell in finished:
        run = RunDir(grid.run_dir(spec, cell))
        try:
            run.read_record()
        except RecordError as e:
            bad.append(str(e))
    if bad:
        shown = "; ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise UserError(f"runs_dir {spec.runs_dir}: {len(bad)} finished runs have a metrics file that is not a "
                        f"usable run record: {shown}; delete those files to run the cells again")


def plan(spec: SweepSpec) -> tuple[list[grid.Cell], list[grid.Cell]]:
    """(all cells, cells still to run); refuses a runs folder made by another version of the sweep."""
    cells = grid.expand(spec)
    grid.check_methods_fit(spec, cells)
    grid.check_not_stale(spec, cells)
    todo = [c for c in cells if not RunDir(grid.run_dir(spec, c)).finished()]
    _check_finished_readable(spec, [c for c in cells if c not in todo])
    return cells, todo


def run_sweep(spec: SweepSpec, echo: Callable[[str], None] = print, progress: bool = True,
              stage_one: bool = True, warm: bool = True) -> SweepResult:
    from tqdm.auto import tqdm

    started = time.monotonic()
    cells, todo = plan(spec)
    state = spec.runs_dir / STATE
    state.mkdir(parents=True, exist_ok=True)
    executor = make_executor(spec.executor, spec.devices, spec.max_parallel, spec.ray, warm=warm)
    result = SweepResult(spec.runs_dir, executor.name, [c.name for c in cells],
                         skipped=[c.name for c in cells if c not in todo])
    atomic_write_json(state / "plan.json", {"sweep_file": spec.source, "cells": [
        {"name": c.name, **grid.identity(spec, c)} for c in cells]})
    echo(f"sweep {spec.source}: {len(cells)} cells, {len(result.skipped)} finished already, {len(todo)} to run "
         f"({executor.describe()})")

    generations: dict[str, str] = {}  # without stage one, cells read sept.generation as given ("auto")
    if todo and stage_one:
        # One sweep at a time checks and fills the store: a second sweep waits here, then finds it full.
        with file_lock(state / "stage-one.lock"):
            groups = sept_groups(spec, todo)
            result.stage_one = fill_store(spec, [g for g in groups if g.missing], state, echo=echo)
        generations = cell_generations(groups)
        for step in result.stage_one:
            if step.get("message"):
                echo(f"warning: stage one: {step['message']}; SEPT runs needing {len(step['classes'])} classes "
                     f"will fail until the store has them")

    cwd = Path(os.getcwd())
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress or not todo)

    failures = 0

    def done(outcome: Outcome) -> None:
        nonlocal failures
        if outcome.status == BUSY_ELSEWHERE:
            return  # counted when the second pass settles it
        bar.update(1)
        if outcome.status == FAILED:
            failures += 1
            bar.set_postfix(failed=failures)
            bar.write(f"failed: {outcome.name}: {outcome.message} (log: {outcome.log})", file=sys.stderr)

    # This sweep's own folder of run inputs: another sweep on the same runs folder never overwrites them.
    (state / "inputs").mkdir(exist_ok=True)
    inputs_dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=state / "inputs"))
    try:
        jobs = {c.name: job_for(spec, c, cwd, inputs_dir, generation=generations.get(c.name)) for c in todo}
        first = executor.run(list(jobs.values()), done)
        busy = [o.name for o in first if o.status == BUSY_ELSEWHERE]
        result.outcomes = [o for o in first if o.status != BUSY_ELSEWHERE]
        if busy:
            # Held by another sweep: wait for its lock, then finish the cell here if that sweep did not.
            echo(f"{len(busy)} cells are running in another sweep; waiting for them: {', '.join(busy[:3])}"
                 + (" ..." if len(busy) > 3 else ""))
            result.outcomes += executor.run([replace(jobs[n], wait=True) for n in busy], done)
    finally:
        shutil.rmtree(inputs_dir, ignore_errors=True)
        bar.close()
        result.seconds = time.monotonic() - started
        atomic_write_json(state / "status.json", result.summary())
    return result
