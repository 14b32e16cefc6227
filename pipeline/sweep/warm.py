"""Warm starts for cells on the CPU: fork each cell from a server that imported the heavy stack once.

A cell is still its own process (a crash ends only it; it holds its own lock), but importing torch,
transformers and the pipeline costs a fresh `python` about 6 s of CPU, while the run itself can take one
or two (measured on our 2 cores: 7.4 s cold vs 1.5 s forked warm for a tiny-CLAP cell). The server is
multiprocessing's forkserver with those modules preloaded.

GPU cells never use it: CUDA cannot be used in a process forked after CUDA was initialised, and its device
mask (CUDA_VISIBLE_DEVICES) must be set before. The server is started with CUDA hidden, and only cells
pinned to the CPU are forked from it.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
import threading

from pipeline.sweep.child_env import SAFE_PATH_ENV

PRELOAD = ["pipeline.sweep.warm_imports"]
_lock = threading.Lock()
_context = None


def context():
    """The forkserver context, started once per process (with CUDA hidden from the server)."""
    global _context
    with _lock:
        if _context is None:
            from multiprocessing import forkserver

            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            # The server inherits this process's environment when it starts: hide CUDA from it, and keep the
            # current folder off its sys.path (a `cache/` folder there would shadow the `cache` package).
            server_env = {"CUDA_VISIBLE_DEVICES": "", **SAFE_PATH_ENV}
            saved = {k: os.environ.get(k) for k in server_env}
            os.environ.update(server_env)
            try:
                forkserver.ensure_running()
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            _context = ctx
    return _context


def _cell_main(argv: list[str], env: dict[str, str], cwd: str, log: str) -> None:
    """In the forked child: output to the cell's log, the sweep's environment and folder, then the cell."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    if env.get("OMP_NUM_THREADS"):
        import torch

        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    from pipeline.sweep.cell_process import main

    try:
        main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def run_forked(argv: list[str], env: dict[str, str], cwd: str, log: str) -> int:
    """Run `python -m pipeline.sweep.cell_process ARGV` as a child of the warm server; its exit code."""
    proc = context().Process(target=_cell_main, args=(argv, env, cwd, log), name="sweep-cell")
    proc.start()
    proc.join()
    code = proc.exitcode
    return 128 - code if code is not None and code < 0 else int(code or 0)  # killed by signal N: 128 + N
