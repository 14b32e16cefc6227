"""The class boundary, as a tune-time view over stored neighbors, against the training classes only.

A stored neighbor of training class i is left out of this run when some other training class name is
strictly closer to it than class i's own name (cosine of frozen template-mean embeddings, the model that
will be tuned). Only the training classes are compared (base classes in base-to-new, the source's in
cross-dataset, all in few-shot): a class the run evaluates but never trains on has no say in which
neighbors shape the prompt. The store is never rewritten; the run records what the view kept.

When the encoder cannot tell the training class names apart (a random or collapsed text tower: mean
cosine between them at or above `sept.same_text_cos`), "closer to another class" is noise, and the view
keeps everything, saying why. numpy only: the training core imports it with torch alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cache.unit_vectors import separates_texts


@dataclass
class BoundaryView:
    status: str                 # "on", or why the view keeps everything
    kept: list[list[int]]       # per training class: indices into its stored phrases, in stored order
    dropped: list[list[int]]    # per training class: indices left out of this run


def class_boundary_view(class_vectors: np.ndarray, neighbor_vectors: Sequence[np.ndarray], enabled: bool,
                        same_text_cos: float) -> BoundaryView:
    """Which stored neighbors of each training class this run trains on.

    class_vectors: [C, D] unit template-mean vectors of the training class names, nothing else.
    neighbor_vectors: per training class, [n_i, D] unit template-mean vectors of its stored phrases.
    same_text_cos: texts this close (mean over the class names) mean the encoder does not separate them.
    """
    every = [list(range(len(v))) for v in neighbor_vectors]
    none: list[list[int]] = [[] for _ in neighbor_vectors]
    if not enabled:
        return BoundaryView("off (sept.boundary_filter = false)", every, none)
    classes = np.asarray(class_vectors, dtype=np.float64)
    if len(classes) < 2:
        return BoundaryView("off: one training class, no boundary to keep", every, none)
    separated, mean_cos = separates_texts(classes, same_text_cos)
    if not separated:
        return BoundaryView(f"off: the encoder does not separate the training class names (mean cosine "
                            f"{mean_cos:.4f} >= sept.same_text_cos {same_text_cos})", every, none)
    kept, dropped = [], []
    for i, vectors in enumerate(neighbor_vectors):
        sims = np.asarray(vectors, dtype=np.float64).reshape(-1, classes.shape[1]) @ classes.T   # [n_i, C]
        others = np.delete(sims, i, axis=1).max(axis=1) if len(sims) else np.zeros(0)
        closer_elsewhere = others > sims[:, i] if len(sims) else np.zeros(0, dtype=bool)
        kept.append([k for k in range(len(sims)) if not closer_elsewhere[k]])
        dropped.append([k for k in range(len(sims)) if closer_elsewhere[k]])
    return BoundaryView("on", kept, dropped)
