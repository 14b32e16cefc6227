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


SORTED = "sorted"
SHUFFLE = "shuffle:"


def parse_split_rule(rule: str) -> int | None:
    """None for "sorted", the seed for "shuffle:<seed>"; a UserError naming data.split_rule otherwise."""
    if rule == SORTED:
        return None
    seed = rule[len(SHUFFLE):] if isinstance(rule, str) and rule.startswith(SHUFFLE) else ""
    if not seed.isdigit():
        raise UserError(f"config key data.split_rule: {rule!r} is not 'sorted' or 'shuffle:<seed>' (a whole "
                        f"number, e.g. 'shuffle:42')")
    return int(seed)


def split_rule_text(rule: str) -> str:
    """The rule in words, as base_new_split.json records it."""
    if parse_split_rule(rule) is None:
        return "sorted class names; base = first ceil(C * base_fraction), new = the rest"
    return (f"class names sorted, then shuffled by Python's random.Random({parse_split_rule(rule)}).sample; base = "
            f"the first floor(C * base_fraction) of the shuffled names, new = the rest, each sorted (ZEBRA's rule)")


def base_new_split(classnames: Sequence[str], base_fraction: float = 0.5,
                   rule: str = SORTED) -> tuple[list[str], list[str]]:
    """Base and new class names of base-to-new (`data.split_rule`).

    "sorted" (PALM/CoOp/SubT): sort; base = the first ceil(C * base_fraction), new = the rest. C = 5 -> 3 base /
    2 new; C = 4 -> 2 / 2. Sorting is Python's code-point order, as PALM's `list.sort()` of its class names.
    "shuffle:<seed>" (ZEBRA, asif-hanif/zebra scripts/base-novel-classes/get_base_novel_classes.py): sort,
    shuffle with a generator of `seed` (Python's random.Random(seed).sample), base = the first floor(C *
    base_fraction) of the shuffled names (ZEBRA's split_point = C // 2 at 0.5), new = the rest, each sorted.
    The generator is the dataset's own: ZEBRA draws one generator through its 11 datasets in turn, so only the
    first dataset of its list gets the same split (docs/method.md).
    """
    if not 0.0 <= base_fraction <= 1.0:
        raise UserError(f"base_fraction {base_fraction!r}: expected a number in [0, 1]")
    seed = parse_split_rule(rule)
    names = sorted(classnames)
    if len(set(names)) != len(names):
        dup = next(n for i, n in enumerate(names[1:]) if n == names[i])
        raise UserError(f"class names: {dup!r} appears twice (expected distinct names)")
    if seed is None:
        k = base_count(len(names), base_fraction)
        return names[:k], names[k:]
    import random

    shuffled = random.Random(seed).sample(names, len(names))
    k = math.floor(round(len(names) * base_fraction, 9))
    return sorted(shuffled[:k]), sorted(shuffled[k:])


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
                  dataset: str = "", extra: dict | None = None, split_rule: str = SORTED) -> Path:
    """Write the split as `<run_dir>/base_new_split.json` (atomically) and return its path. `extra`: further
    keys (a validation run's eval_split, val_fraction and its hold-out rule, which replaces the default rule)."""
    path = Path(run_dir) / SPLIT_FILE
    split_rule = (extra or {}).get("split_rule", split_rule)  # a plan's split dict carries it
    record = {
        "dataset": dataset,
        "base_fraction": base_fraction,
        "split_rule": split_rule,
        "rule": split_rule_text(split_rule),
        "base": list(base),
        "new": list(new),
    }
    record.update(extra or {})
    atomic_write_json(path, record)
    return path
