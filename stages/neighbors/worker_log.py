"""Where the LLM worker's output goes: a log file in the cache folder, or the terminal with --verbose.

vLLM (and transformers, and their engine-core processes) write dozens of INFO/WARNING lines per start.
They matter when something fails and are noise otherwise, so by default the worker's stdout and stderr
(file descriptors, inherited by everything the worker spawns) are appended to CACHE/logs/llm-worker.log,
one header line per worker start, and the terminal shows only our own progress lines.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

LOG_FILE = Path("logs") / "llm-worker.log"


def log_path(cache_dir: str | os.PathLike) -> Path:
    return Path(cache_dir) / LOG_FILE


@contextmanager
def worker_output(cache_dir: str | os.PathLike, header: str, verbose: bool = False) -> Iterator[tuple[IO, Path | None]]:
    """(stream for the worker's stdout and stderr, the log file or None when it goes to our stderr)."""
    if verbose:
        yield sys.stderr, None
        return
    path = log_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as log:
        log.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: {header}\n")
        log.flush()
        yield log, path


def last_lines(path: Path, n: int = 1, max_bytes: int = 65536) -> list[str]:
    """The last n non-blank lines of the log (read from its end: the file grows with every run)."""
    with open(path, "rb") as f:
        start = max(0, f.seek(0, os.SEEK_END) - max_bytes)
        f.seek(start)
        lines = f.read().decode("utf-8", "replace").splitlines()
    if start > 0:
        lines = lines[1:]  # cut by the window: never show half a line
    return [ln.strip() for ln in lines if ln.strip()][-n:]
