"""Scaling vectors to unit L2 norm: the one row-normaliser of the project (numpy only, no package imports).

Stage one (encoding, the near-duplicate filter, neighbor quality), the store's index vectors and the
report's diagnostic all normalise embeddings; they share this so that "unit" means the same everywhere:
norms in float64, and an all-zero vector stays zero instead of becoming NaN.
"""
from __future__ import annotations

import numpy as np


def row_norms(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """L2 norms of `x` along `axis`, in float64 (what unit_rows divides by; also how a caller checks that vectors
    it was handed are unit, as `neighbors import` does for the vectors a file carries)."""
    return np.linalg.norm(np.asarray(x, dtype=np.float64), axis=axis, keepdims=keepdims)


def unit_rows(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """`x` (any shape) scaled to unit L2 norm along `axis`, as float64; all-zero vectors stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = row_norms(x, axis=axis, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def template_mean(vectors: np.ndarray) -> np.ndarray:
    """[n, T, D] unit-per-template embeddings -> [n, D] unit mean over the T templates (float64 for the sums).

    The zero-shot class embedding of docs/method.md applied to any text: what "close" means for the frozen
    model, in stage one's near-duplicate filter and in stage two's class boundary alike. (The store's FAISS
    vectors, cache/store/vectors.py, normalise the sum over a template set: the same direction; and
    stages/zeroshot.py computes the same thing in torch from the tower's outputs.)
    """
    return unit_rows(np.asarray(vectors, dtype=np.float64).mean(axis=1))


def separates_texts(vectors: np.ndarray, same_text_cos: float) -> tuple[bool, float]:
    """Whether an encoder tells these texts apart: (mean off-diagonal cosine < same_text_cos, that mean).

    `vectors` are unit rows [n, D]. A random or collapsed text tower maps every text to nearly the same
    vector; then "near duplicate" and "closer to another class" are noise, and an embedding filter would
    drop almost everything. Fewer than two texts: (True, nan).
    """
    v = np.asarray(vectors, dtype=np.float64)
    if len(v) < 2:
        return True, float("nan")
    g = v @ v.T
    mean = float((g.sum() - np.trace(g)) / (len(v) * (len(v) - 1)))
    return mean < same_text_cos, mean
