"""How the sweep starts a child Python process (a cell, a stage-one run, the warm server) safely."""
from __future__ import annotations

import sys

# Children never import from the folder they start in: a `cache/` folder there (a cache dir called cache)
# would shadow this project's `cache` package. PYTHONSAFEPATH carries that to their own children (3.11+).
SAFE_PATH_ENV = {"PYTHONSAFEPATH": "1"}


def module_command(module: str, *args: str) -> list[str]:
    """`python -m module args`, without the current folder on sys.path."""
    if sys.version_info >= (3, 11):
        return [sys.executable, "-P", "-m", module, *args]
    code = "import runpy, sys; del sys.path[0]; runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
    return [sys.executable, "-c", code, module, *args]
