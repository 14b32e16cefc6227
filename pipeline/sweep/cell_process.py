"""One sweep cell in its own process: take the cell's lock, then run its `tune` run in this same process.

    python -m pipeline.sweep.cell_process --lock L --attempts A --identity JSON --inputs DIR [--wait]

DIR holds what the run is given, written by the sweep (pipeline/protocols/tune_inputs.py): the resolved
`config.toml` and `request.json`. The run is `pipeline.protocols.runner.run_tune`, called directly (no
command-line parsing in between); it ends as `tune` would (pipeline/exits.py: one `error:` line, exit 2 for
bad input, 1 for anything else).

The process that runs `tune` is the process that holds the lock (cache/lock.py, flock): if the sweep that
started it dies, the lock stays held until the run itself ends, so a restarted sweep never starts a second
copy of a cell that is still running. A crash inside the run ends only this process (exit code != 0).

Exit codes besides the run's own: BUSY (another process holds the cell; only without --wait) and
ALREADY_DONE (the run had finished by the time the lock was ours).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

BUSY = 75          # EX_TEMPFAIL: try again later
ALREADY_DONE = 76


def _read_attempts(path: Path) -> list:
    try:
        rows = json.loads(path.read_text())
        return rows if isinstance(rows, list) else []
    except (OSError, ValueError):
        return []


def record_attempt(path: Path, **fields) -> None:
    """Append one event to the cell's attempt history (rewritten atomically; only the lock holder writes)."""
    from cache.atomic import atomic_write_json

    rows = _read_attempts(path)
    rows.append({"time": time.time(), "pid": os.getpid(), "host": socket.gethostname(), **fields})
    atomic_write_json(path, rows)


def _has_checkpoint(run_dir: Path) -> bool:
    """An unfinished run with a checkpoint continues from it (tune --resume); otherwise it starts fresh."""
    from stages.tuning.checkpoint import latest_checkpoint_dir
    from stages.tuning.trainer import CHECKPOINTS

    return latest_checkpoint_dir(run_dir / CHECKPOINTS) is not None


def _run_tune(cfg, req) -> int:
    """The run, ended as `sept-pipeline tune --json` ends it: its record on stdout, warnings and errors on stderr."""
    from pipeline.exits import OK, failure_exit
    from pipeline.protocols.runner import run_tune

    try:
        outcome = run_tune(cfg, req)
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - one line and an exit code, as the CLI
        return failure_exit(e)
    for warning in outcome.record.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True, default=str), flush=True)
    return OK


def run(lock: Path, attempts: Path, identity: dict, inputs: Path, wait: bool) -> int:
    from dataclasses import replace

    from cache.atomic import atomic_write_json
    from cache.lock import file_lock
    from pipeline.protocols.tune_inputs import read_inputs
    from pipeline.runs import RunDir
    from pipeline.sweep.grid import IDENTITY_FILE

    cfg, req = read_inputs(inputs)
    out = RunDir(req.out)
    try:
        with file_lock(lock, timeout=None if wait else 0):
            if out.finished():
                return ALREADY_DONE
            out.ensure()
            atomic_write_json(out.path / IDENTITY_FILE, identity)
            req = replace(req, resume=_has_checkpoint(out.path))
            record_attempt(attempts, event="start", resume=req.resume)
            started = time.monotonic()
            rc = _run_tune(cfg, req)
            record_attempt(attempts, event="end", rc=rc, seconds=round(time.monotonic() - started, 3))
            return rc
    except TimeoutError:
        return BUSY


def main(argv: list[str] | None = None) -> None:
    from cache.errors import UserError
    from pipeline.exits import failure_exit

    parser = argparse.ArgumentParser(prog="pipeline.sweep.cell_process")
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--attempts", type=Path, required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--inputs", type=Path, required=True, help="folder with config.toml and request.json")
    parser.add_argument("--wait", action="store_true")
    opts = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        rc = run(opts.lock, opts.attempts, json.loads(opts.identity), opts.inputs, opts.wait)
    except UserError as e:  # unreadable inputs: one line, the CLI's exit code
        rc = failure_exit(e)
    sys.exit(rc)


if __name__ == "__main__":
    main()
