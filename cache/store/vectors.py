"""Template-mean vectors: the one vector per text that the FAISS index holds (numpy only).

For a text with unit embeddings e_1..e_T under the T templates of a set, the index vector is
normalize(sum_t e_t): the zero-shot class embedding of docs/method.md, so inner product = cosine.
Sums run in float64 and in a fixed template order, so the same stored rows always give the same bits.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from cache.unit_vectors import unit_rows


def template_means(
    texts: Sequence[str], template_ids: Sequence[str], matrix: np.ndarray, template_set: Sequence[str]
) -> tuple[list[str], np.ndarray]:
    """(sorted texts that have every template of `template_set`, float32 [n, D] unit vectors).

    `texts[r]`, `template_ids[r]`, `matrix[r]` describe stored row r; (text, template_id) pairs are
    unique in the store (verify() checks it).
    """
    dim = matrix.shape[1]
    wanted = sorted(set(template_set))
    per_template: dict[str, dict[str, int]] = {t: {} for t in wanted}
    for r, (text, tid) in enumerate(zip(texts, template_ids)):
        slot = per_template.get(tid)
        if slot is not None:
            slot[text] = r
    complete = set.intersection(*(set(slot) for slot in per_template.values())) if wanted else set()
    ordered = sorted(complete)
    acc = np.zeros((len(ordered), dim), dtype=np.float64)
    for t in wanted:
        rows = np.fromiter((per_template[t][x] for x in ordered), dtype=np.int64, count=len(ordered))
        acc += matrix[rows].astype(np.float64)
    return ordered, unit_rows(acc).astype(np.float32)
