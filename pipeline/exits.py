"""How a program of this package ends: its exit code and, for a failure, one line on stderr.

Exit codes: 0 success, 2 bad input (UserError), 1 anything else, 130 interrupted. Shared by `sept-pipeline`
(pipeline/commands/entry.py, which adds click's usage errors) and by a sweep cell, which runs `tune` without
click (pipeline/sweep/cell_process.py), so both fail the same way and a sweep reports a cell's `error:` line.
"""
from __future__ import annotations

import os
import sys

from cache.errors import UserError

OK, FAILED, BAD_INPUT, INTERRUPTED = 0, 1, 2, 130


def failure_exit(e: BaseException) -> int:
    """Print the one line for an exception that ends the program; its exit code. With SEPT_TRACEBACK set, an
    unexpected exception is raised again, for its traceback."""
    if isinstance(e, UserError):
        _say(f"error: {e}")
        return BAD_INPUT
    if isinstance(e, KeyboardInterrupt):
        _say("interrupted")
        return INTERRUPTED
    if os.environ.get("SEPT_TRACEBACK"):
        raise e
    _say(f"error: {type(e).__name__}: {e} (set SEPT_TRACEBACK=1 for the traceback)")
    return FAILED


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
