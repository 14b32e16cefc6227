"""Embedding-based cleaning of one class's candidates: near-duplicates, on frozen template-mean vectors.

numpy only. The vectors are the backbone's frozen text embeddings averaged over the T templates and
renormalised (the zero-shot class embedding of docs/method.md, applied to phrases too), so "close" here
means close for the model that will be tuned, not for some other encoder.

What stage one stores for a class depends on that class alone: nothing here sees another class. The
class-boundary rule (drop a neighbor closer to another class name) compares classes with each other,
so it runs at tune time against the training classes only (stages/tuning/neighbor_boundary.py).
Changing what this module keeps changes what a generation key means: bump keys.SELECTION_RULE.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Shared with stage two's class boundary, so they live below both stages (numpy only).
from cache.unit_vectors import separates_texts, template_mean  # noqa: F401 - part of this module's interface

# Whether an encoder tells texts apart is judged on these fixed, unrelated sound names: a property of the
# encoder and templates alone, never of the class list being generated.
PROBE_TEXTS = ("dog barking", "rain on a roof", "church bells", "car engine", "people talking", "violin",
               "thunder", "door slamming", "birdsong", "typing on a keyboard")


@dataclass
class Selection:
    kept: list[int] = field(default_factory=list)  # indices into the candidates, in order
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)


def select_neighbors(candidates: np.ndarray, limit: int, near_duplicate_cos: float) -> Selection:
    """Pick up to `limit` of one class's candidates in order (first written first).

    candidates: [k, D] unit template-mean vectors of the class's candidate phrases, and nothing else.
    A candidate is dropped when its cosine to an already kept one is >= near_duplicate_cos.
    """
    sel = Selection()
    cand = np.asarray(candidates, dtype=np.float64)
    for i in range(len(cand)):
        if len(sel.kept) >= limit:
            break
        if sel.kept and float(np.max(cand[sel.kept] @ cand[i])) >= near_duplicate_cos:
            sel.dropped.append((i, "near duplicate"))
            continue
        sel.kept.append(i)
    return sel
