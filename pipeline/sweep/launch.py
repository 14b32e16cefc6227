"""Start one cell's process and say what became of it; shared by the local and the Ray executors.

A `Job` is plain data (it travels to Ray workers by pickle). The cell's output goes to its log file,
appended per attempt under a header line; a failure's message is the last `error:` line of that attempt.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.sweep.cell_process import ALREADY_DONE, BUSY
from pipeline.sweep.child_env import SAFE_PATH_ENV, module_command

RAN, FINISHED, BUSY_ELSEWHERE, FAILED = "ran", "finished", "busy", "failed"


@dataclass
class Job:
    name: str
    run_dir: str
    lock: str
    attempts: str
    log: str
    identity: dict
    inputs: str            # folder holding the run's config.toml and request.json (tune_inputs.write_inputs)
    cwd: str
    wait: bool = False


@dataclass
class Outcome:
    name: str
    status: str            # ran | finished (by someone else) | busy (held by another sweep) | failed
    rc: int
    seconds: float
    log: str
    host: str = field(default_factory=socket.gethostname)
    launcher_pid: int = field(default_factory=os.getpid)   # the sweep itself (local) or a Ray worker
    device: str = ""
    warm: bool = False     # forked from the warm server (warm.py) rather than a fresh interpreter
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _failure_message(log: Path, offset: int) -> str:
    """The last `error:` line this attempt wrote, else its last non-empty line."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            lines = [ln.strip() for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or [""])[-1][:500]


def launch(job: Job, env_updates: dict[str, str] | None = None, device: str = "", warm: bool = False) -> Outcome:
    """Run the cell process to its end (blocking) and classify the result.

    `warm`: fork the cell from the warm server (warm.py) instead of starting a fresh interpreter; only for
    cells pinned to the CPU.
    """
    argv = ["--lock", job.lock, "--attempts", job.attempts, "--identity", _json(job.identity), "--inputs",
            job.inputs, *(["--wait"] if job.wait else [])]
    env = {**os.environ, **SAFE_PATH_ENV, **(env_updates or {})}
    log = Path(job.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "ab") as fh:
        fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()} device {device or '-'}"
                 f"{' (warm)' if warm else ''}: tune {job.name} (inputs: {job.inputs})\n".encode())
        fh.flush()
        offset = fh.tell()
        if warm:
            from pipeline.sweep.warm import run_forked

            rc = run_forked(argv, env, job.cwd, str(log))
        else:
            rc = subprocess.run(module_command("pipeline.sweep.cell_process", *argv), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=job.cwd).returncode
    seconds = round(time.monotonic() - started, 3)
    finished = (Path(job.run_dir) / "metrics.json").is_file()
    if rc == BUSY:
        status, message = BUSY_ELSEWHERE, "another sweep is running this cell"
    elif rc == ALREADY_DONE:
        status, message = FINISHED, "finished by another process"
    elif rc == 0 and finished:
        status, message = RAN, ""
    elif rc == 0:
        status, message = FAILED, "tune exited 0 but wrote no metrics.json"
    else:
        status, message = FAILED, _failure_message(log, offset) or f"exit code {rc}"
    return Outcome(job.name, status, rc, seconds, str(log), device=device, warm=warm, message=message)


def _json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
