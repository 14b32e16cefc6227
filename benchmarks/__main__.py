"""`python -m benchmarks` (`make bench`): run every benchmarks/bench_*.py module's main() in turn.

Each benchmark prints its own table; pass nothing to run them all with their defaults, or module names
(e.g. `python -m benchmarks bench_neighbors`) to run only those.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    names = argv or sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    for name in names:
        print(f"==== {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}").main([])


if __name__ == "__main__":
    main()
