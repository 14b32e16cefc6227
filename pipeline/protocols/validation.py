"""The validation view of base2new: hyperparameters are chosen on it, never on the test set.

Everything here is carved out of the BASE classes' training items; no new class and no test item is read:
- the base classes are split again by the same rule as base2new (sorted names, first ceil(B * f)):
  validation-base and validation-new classes;
- a validation-new class lends all its training items to the validation test (it is never trained on);
- a validation-base class keeps most of its training items for training and holds out `val_fraction` of
  them (at least one, at most all but one) as its validation test items.
Which items are held out depends only on each item's class folder and file name (sha256 order), not on the
seed or the data root: every seed and every hyperparameter setting is scored on the same validation items,
and the few-shot draw (seeded) is taken from what is left.
"""
from __future__ import annotations

import hashlib
import math
from typing import Sequence

from cache.errors import UserError
from stages.data.clips import Clip

HOLDOUT_RULE = ("base classes split again by the base2new rule into validation-base / validation-new; "
                "validation-new classes: all their train items are validation test items; validation-base "
                "classes: the first round(n * val_fraction) of their train items in sha256(class/file name) "
                "order (at least 1, at most n - 1) are validation test items, the rest are for training")


def _holdout_order(clip: Clip) -> str:
    return hashlib.sha256(f"{clip.classname}/{clip.path.name}".encode()).hexdigest()


def holdout_count(n: int, val_fraction: float) -> int:
    """How many of a validation-base class's n training items are held out: round(n * f) within [1, n - 1]."""
    return min(max(1, math.floor(n * val_fraction + 0.5)), n - 1)


def split_validation_items(train: Sequence[Clip], val_base: Sequence[str], val_fraction: float
                           ) -> tuple[list[Clip], list[Clip]]:
    """(kept for training, held out for validation) among `train`, the clips of the validation-base classes
    (labels index into `val_base`). A class with fewer than two training items cannot lend any: an error."""
    by_class: dict[int, list[Clip]] = {}
    for clip in train:
        by_class.setdefault(clip.label, []).append(clip)
    kept, held = [], []
    for label, name in enumerate(val_base):
        clips = sorted(by_class.get(label, []), key=_holdout_order)
        if len(clips) < 2:
            raise UserError(f"data.eval_split 'val': base class {name!r} has {len(clips)} training item(s); "
                            f"holding some out for validation needs at least 2 (use eval_split 'test' or more data)")
        k = holdout_count(len(clips), val_fraction)
        held += clips[:k]
        kept += clips[k:]
    order = {id(c): i for i, c in enumerate(train)}  # keep the dataset's item order in both parts
    return sorted(kept, key=lambda c: order[id(c)]), sorted(held, key=lambda c: order[id(c)])
