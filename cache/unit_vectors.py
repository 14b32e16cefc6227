"""Scaling vectors to unit L2 norm: the one row-normaliser of the project (numpy only, no package imports).

Stage one (encoding, the near-duplicate filter, neighbor quality), the store's index vectors and the
report's diagnostic all normalise embeddings; they share this so that "unit" means the same everywhere:
norms in float64, and an all-zero vector stays zero instead of becoming NaN.
"""
from __future__ import annotations

import numpy as np


def unit_rows(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """`x` (any shape) scaled to unit L2 norm along `axis`, as float64; all-zero vectors stay zero."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
