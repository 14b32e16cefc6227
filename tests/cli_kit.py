"""The suite's one way to run `sept-pipeline`: in this process, or as the installed program in a child process.

    from cli_kit import run_in_process, run_subprocess
    code, stdout, stderr = run_in_process("tune", "--dataset", ...)     # also r.code / r.returncode
    proc = run_subprocess("sweep", "--config", path, "--json")          # a subprocess.CompletedProcess

`run_in_process` goes through the real entry point, `pipeline.cli.main` (one-line errors, the CLI's exit codes),
inside click's CliRunner isolation: output is captured without pytest's capsys, and `env` overrides are undone
afterwards. Use it unless the test needs what only a fresh process has (exit by signal, environment read at
start-up, a process tree).

`run_subprocess` starts the venv's `sept-pipeline` with the environment the suite needs: this checkout first on
PYTHONPATH (whatever the venv's editable install points at), the hub offline, and the session's
SEPT_CACHE_DIR (tests/conftest.py) unless `env` says otherwise. `popen_command` gives the same command line for
a test that must start it with subprocess.Popen (to kill it, or to run two at once).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping, NamedTuple

from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]


class CliResult(NamedTuple):
    code: int
    stdout: str
    stderr: str

    @property
    def returncode(self) -> int:  # as subprocess.CompletedProcess names it
        return self.code


def run_in_process(*args, input: str | None = None, env: Mapping[str, str | None] | None = None) -> CliResult:
    """`sept-pipeline ARGS` in this process; each argument is passed as str()."""
    from pipeline.cli import main

    with CliRunner().isolation(input=input, env=env) as (out, err, _mixed):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    return CliResult(code, out.getvalue().decode(), err.getvalue().decode("utf-8", "replace"))


def cli_command() -> list[str]:
    """The venv's `sept-pipeline` program (installed beside this interpreter by `pip install -e .`)."""
    program = Path(sys.executable).parent / "sept-pipeline"
    assert program.is_file(), f"{program} is missing: install the project into this venv (scripts/setup_venv.sh)"
    return [str(program)]


def cli_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a `sept-pipeline` child: this checkout's code, the hub offline, then `env`."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", **(env or {})}


def popen_command(*args) -> list[str]:
    return [*cli_command(), *map(str, args)]


def run_subprocess(*args, env: Mapping[str, str] | None = None, timeout: float = 600, **kwargs
                   ) -> subprocess.CompletedProcess:
    """`sept-pipeline ARGS` as a child process, output captured as text; `kwargs` go to subprocess.run (cwd=,
    input=, ...)."""
    return subprocess.run(popen_command(*args), env=cli_env(env), capture_output=True, text=True, timeout=timeout,
                          **kwargs)
