"""Embedding-based cleaning: near-duplicates and the class boundary, on frozen template-mean vectors.

numpy only. The vectors are the backbone's frozen text embeddings averaged over the T templates and
renormalised (DESIGN.md's zero-shot class embedding, applied to phrases too), so "close" here means
close for the model that will be tuned, not for some other encoder.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def template_mean(vectors: np.ndarray) -> np.ndarray:
    """[n, T, D] unit-per-template -> [n, D] unit mean over templates (float64 for the sums)."""
    m = np.asarray(vectors, dtype=np.float64).mean(axis=1)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


@dataclass
class Selection:
    kept: list[int] = field(default_factory=list)  # indices into the candidates, in order
    dropped: list[tuple[int, str]] = field(default_factory=list)  # (index, reason)


def select_neighbors(
    candidates: np.ndarray,
    own: int,
    class_vectors: np.ndarray,
    limit: int,
    near_duplicate_cos: float,
    boundary: bool,
) -> Selection:
    """Pick up to `limit` candidates in order (first written first).

    candidates: [k, D] unit template-mean vectors of one class's candidate phrases.
    class_vectors: [C, D] unit template-mean vectors of all class names of the run; row `own` is ours.
    A candidate is dropped when its cosine to an already kept one is >= near_duplicate_cos, or (with
    `boundary`) when some other class name is strictly closer to it than its own class name.
    """
    sel = Selection()
    if len(candidates) == 0:
        return sel
    cand = np.asarray(candidates, dtype=np.float64)
    sims = cand @ np.asarray(class_vectors, dtype=np.float64).T  # [k, C]
    for i in range(len(cand)):
        if len(sel.kept) >= limit:
            break
        if sel.kept:
            dup = float(np.max(cand[sel.kept] @ cand[i]))
            if dup >= near_duplicate_cos:
                sel.dropped.append((i, "near duplicate"))
                continue
        if boundary and sims.shape[1] > 1:
            others = np.delete(sims[i], own)
            if float(others.max()) > float(sims[i, own]):
                sel.dropped.append((i, "closer to another class"))
                continue
        sel.kept.append(i)
    return sel


def separates_classes(class_vectors: np.ndarray, near_duplicate_cos: float) -> tuple[bool, float]:
    """Whether an encoder tells the class names apart: (mean off-diagonal cosine < threshold, that mean).

    A random or collapsed text tower maps every text to nearly the same vector; then "closer to another
    class" and "near duplicate" are noise, and the embedding filters would drop almost everything.
    """
    v = np.asarray(class_vectors, dtype=np.float64)
    if len(v) < 2:
        return True, float("nan")
    g = v @ v.T
    mean = float((g.sum() - np.trace(g)) / (len(v) * (len(v) - 1)))
    return mean < near_duplicate_cos, mean
