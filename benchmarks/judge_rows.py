"""What the stage-one lever benchmarks share: reuse or make a harvest, the memoised judge, one table row.

bench_neighbor_levers.py and bench_example_sets.py harvest LLM answers from one engine start, derive
variants from them and score each with `neighbors quality`'s scorer and judge (stages/neighbors/quality.py).
"""
from __future__ import annotations

import json
from typing import Callable


def load_or_harvest(args, harvest: Callable) -> dict:
    """The harvest JSON named by --harvest, else a fresh harvest(args), saved beside --out as OUT.harvest.json."""
    if args.harvest:
        return json.loads(args.harvest.read_text())
    h = harvest(args)
    args.out.with_suffix(".harvest.json").write_text(json.dumps(h))
    return h


def memoised_judge() -> Callable:
    """The reference encoder of `neighbors quality`, each text encoded once however many variants hold it."""
    import numpy as np

    from stages.neighbors.quality import load_reference

    encode = load_reference()
    memo: dict = {}

    def enc(texts):
        todo = [t for t in dict.fromkeys(texts) if t not in memo]
        if todo:
            memo.update(zip(todo, encode(todo)))
        return np.stack([memo[t] for t in texts]) if texts else encode([])

    return enc


def summary_row(variant: str, scored: dict) -> dict:
    """One table row from quality.score()'s result: precision (mean over classes), micro, kept, share of classes
    with >= 5 kept, and on-topic neighbors per class (micro x kept / classes)."""
    per_class, kept = scored["per_class"], scored["overall"]["neighbors"]
    micro = scored["overall"]["precision_micro"]
    return {"variant": variant, "precision": scored["overall"]["precision"], "micro": micro, "kept": kept,
            "classes": len(per_class), "share_ge5": sum(r["neighbors"] >= 5 for r in per_class) / len(per_class),
            "on_topic_per_class": (micro or 0) * kept / len(per_class)}
