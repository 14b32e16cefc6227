"""One sweep cell in its own process: take the cell's lock, then run `tune` in this same process.

    python -m pipeline.sweep.cell_process --lock L --attempts A --identity JSON [--wait] -- tune ARGS...

The process that runs `tune` is the process that holds the lock (cache/lock.py, flock): if the sweep that
started it dies, the lock stays held until the run itself ends, so a restarted sweep never starts a second
copy of a cell that is still running. A crash inside `tune` ends only this process (exit code != 0).

Exit codes besides tune's own: BUSY (another process holds the cell; only without --wait) and
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


def _out_dir(tune_args: list[str]) -> Path:
    return Path(tune_args[tune_args.index("--out") + 1])


def run(lock: Path, attempts: Path, identity: dict, tune_args: list[str], wait: bool) -> int:
    from cache.atomic import atomic_write_json
    from cache.lock import file_lock
    from pipeline.runs import RunDir
    from pipeline.sweep.grid import IDENTITY_FILE

    out = RunDir(_out_dir(tune_args))
    try:
        with file_lock(lock, timeout=None if wait else 0):
            if out.finished():
                return ALREADY_DONE
            out.ensure()
            atomic_write_json(out.path / IDENTITY_FILE, identity)
            args = list(tune_args) + (["--resume"] if _has_checkpoint(out.path) else [])
            record_attempt(attempts, event="start", resume="--resume" in args)
            started = time.monotonic()
            from pipeline.commands.tune import main as tune_main

            try:
                tune_main(args)
                rc = 0
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            record_attempt(attempts, event="end", rc=rc, seconds=round(time.monotonic() - started, 3))
            return rc
    except TimeoutError:
        return BUSY


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        sys.exit("usage: python -m pipeline.sweep.cell_process --lock L --attempts A --identity JSON "
                 "[--wait] -- tune ARGS...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="pipeline.sweep.cell_process")
    parser.add_argument("--lock", type=Path, required=True)
    parser.add_argument("--attempts", type=Path, required=True)
    parser.add_argument("--identity", required=True)
    parser.add_argument("--wait", action="store_true")
    opts = parser.parse_args(argv[:split])
    sys.exit(run(opts.lock, opts.attempts, json.loads(opts.identity), argv[split + 1:], opts.wait))


if __name__ == "__main__":
    main()
