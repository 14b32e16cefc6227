"""Base-to-new class split (PALM/CoOp protocol, docs/method.md, "Protocols") and its record in a run directory."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from cache.atomic import atomic_write_json
from cache.errors import UserError
from stages.data.clips import Clip

SPLIT_FILE = "base_new_split.json"


def base_count(num_classes: int, base_fraction: float) -> int:
    """ceil(C * fraction), computed so that float noise cannot add a class: 10 * 0.3 is
    3.0000000000000004 in binary floating point and must still give 3."""
    return math.ceil(round(num_classes * base_fraction, 9))


def base_new_split(classnames: Sequence[str], base_fraction: float = 0.5) -> tuple[list[str], list[str]]:
    """Sort the class names; base = the first ceil(C * base_fraction), new = the rest.

    C = 5 -> 3 base / 2 new; C = 4 -> 2 / 2. Sorting is Python's code-point order, as PALM's
    `list.sort()` of its class names.
    """
    if not 0.0 <= base_fraction <= 1.0:
        raise UserError(f"base_fraction {base_fraction!r}: expected a number in [0, 1]")
    names = sorted(classnames)
    if len(set(names)) != len(names):
        dup = next(n for i, n in enumerate(names[1:]) if n == names[i])
        raise UserError(f"class names: {dup!r} appears twice (expected distinct names)")
    k = base_count(len(names), base_fraction)
    return names[:k], names[k:]


def restrict_clips(clips: Sequence[Clip], all_classnames: Sequence[str], keep: Sequence[str]) -> list[Clip]:
    """Clips of the classes in `keep`, relabelled to index into `keep` (e.g. base classes only)."""
    index = {c: i for i, c in enumerate(keep)}
    missing = [c for c in keep if c not in set(all_classnames)]
    if missing:
        raise UserError(f"classes {missing}: not among the dataset's classes")
    out = []
    for clip in clips:
        name = all_classnames[clip.label]
        if name in index:
            out.append(Clip(path=clip.path, label=index[name], classname=name))
    return out


def persist_split(run_dir: str | os.PathLike, base: Sequence[str], new: Sequence[str], base_fraction: float,
                  dataset: str = "", extra: dict | None = None) -> Path:
    """Write the split as `<run_dir>/base_new_split.json` (atomically) and return its path. `extra`: further
    keys (a validation run's eval_split, val_fraction and its hold-out rule, which replaces the default rule)."""
    path = Path(run_dir) / SPLIT_FILE
    record = {
        "dataset": dataset,
        "base_fraction": base_fraction,
        "rule": "sorted class names; base = first ceil(C * base_fraction), new = the rest",
        "base": list(base),
        "new": list(new),
    }
    record.update(extra or {})
    atomic_write_json(path, record)
    return path
