"""Device pinning of the local executor and the failure message a sweep reports (no `tune` runs here)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from cli_kit import run_subprocess
from pipeline.sweep.executors import LocalExecutor, device_env, resolve_devices, visible_gpus
from pipeline.sweep.launch import _failure_message


def test_explicit_devices_and_the_environment_each_child_gets():
    assert resolve_devices(["0", "cuda:3", "cpu"]) == ["cuda:0", "cuda:3", "cpu"]
    assert device_env("cuda:3", 8) == {"CUDA_VISIBLE_DEVICES": "3"}
    assert device_env("cpu", 2) == {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    assert device_env("cpu", 0)["OMP_NUM_THREADS"] == "1"  # never zero threads


def test_auto_devices_follow_what_torch_sees():
    expected = [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cpu"]
    assert resolve_devices("auto") == expected
    ex = LocalExecutor("auto", 0)
    assert ex.max_parallel == len(expected)  # default: one run per device


def test_a_child_pinned_to_the_cpu_sees_no_gpu_and_its_thread_share():
    env = {**os.environ, **device_env("cpu", 1)}
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count(), torch.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "1"]


def test_visible_gpus_map_through_cuda_visible_devices(monkeypatch):
    # No GPU on this machine: stand in for torch's count to check the id mapping a GPU machine would use.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    assert visible_gpus() == ["5", "7"]
    assert resolve_devices("auto") == ["cuda:5", "cuda:7"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ["0", "1"]


def test_failure_message_is_the_last_error_line_of_this_attempt(tmp_path: Path):
    log = tmp_path / "cell.log"
    log.write_text("=== attempt 1\nerror: old failure\n")
    offset = log.stat().st_size
    with open(log, "a") as fh:
        fh.write("=== attempt 2\nepoch 1/1\nerror: config key method.n_ctx: 400 does not fit\nexit\n")
    assert _failure_message(log, offset) == "error: config key method.n_ctx: 400 does not fit"
    with open(log, "a") as fh:
        fh.write("Traceback ...\nRuntimeError: boom\n")
    end = log.stat().st_size
    with open(log, "a") as fh:
        fh.write("segfault here\n\n")
    assert _failure_message(log, end) == "segfault here"


def test_a_ray_address_nobody_answers_at_fails_fast(tmp_path: Path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(f"""
[sweep]
runs_dir = "{tmp_path / 'runs'}"
data_root = "{tmp_path}"
executor = "ray"
[grid]
dataset = ["demo"]
method = ["zeroshot"]
[ray]
address = "127.0.0.1:1"
""")
    proc = run_subprocess("sweep", "--config", sweep, "--no-stage-one", timeout=60)
    assert proc.returncode == 2
    assert "error: [ray] address '127.0.0.1:1': nothing answers at 127.0.0.1:1" in proc.stderr
