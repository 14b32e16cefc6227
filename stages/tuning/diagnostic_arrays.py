"""The arrays of the semantic-structure diagnostic, computed by the run while its learner is in memory.

`report --diagnostic` compares a run without SEPT with its twin with SEPT (docs/method.md, "The diagnostic").
It needs, for the dataset's classes that have neighbors in the store, the unit embeddings of the class names
and of their stored neighbors under the hand-crafted templates (the store's frozen vectors, mean over the
templates) and through the run's learned prompt (neighbors through the same prompt as class names, as in
training; CoCoOp without the instance bias). The run writes them into `diagnostic.npz` beside its record, so
the report never builds a model: an old run stays readable when a learner's checkpoint layout changes.

    classes [C] str         class names with stored neighbors, in the run's order (base2new: base, then new)
    base_count []           how many of `classes` the run trained on when they come first (base2new), else -1
    omitted [k] str         the run's classes left out (no stored neighbor that fits, or a text without an embedding)
    neighbors [P] str       the stored neighbors of `classes`, grouped by class (those whose prompt fits the
                            text tower: a phrase a run leaves out of training cannot go through its prompt)
    owner [P] int           the row of `classes` each neighbor belongs to
    template_classes [C, D], template_neighbors [P, D]   unit, frozen, mean over the templates (float32)
    prompt_classes [C, D], prompt_neighbors [P, D]       unit, through the learned prompt (float32)
    generation_key []       the store generation the neighbors come from

Only reading happens here: training is over and nothing of it changes. The neighbors are the stored ones of
every class (the training view's class boundary is a choice of what to train on, not of what to look at).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cache.unit_vectors import unit_rows

DIAGNOSTIC_FILE = "diagnostic.npz"


def diagnostic_arrays(learner, store, gkey: str, classes: Sequence[str], templates: Sequence[str], encoder: str,
                      base_count: int = -1) -> dict[str, np.ndarray] | str:
    """The arrays above, or a one-line reason why there are none (fewer than 2 classes with neighbors)."""
    import torch

    from cache.store.generations import classes_lacking

    classes, templates = list(classes), list(templates)
    lacking = set(classes_lacking(store, classes, gkey, templates, encoder))
    stored = store.get_phrases([c for c in classes if c not in lacking], gkey)
    flat = [p for ps in stored.values() for p in ps]
    fits = dict(zip(flat, learner.phrases_fit(flat))) if flat else {}
    phrases = {c: [p for p in ps if fits[p]] for c, ps in stored.items()}
    kept = [c for c in classes if c not in lacking and phrases[c]]
    if len(kept) < 2:
        return (f"the store holds neighbors and embeddings for {len(kept)} of the run's {len(classes)} classes under "
                f"generation {gkey} (at least 2 are needed)")
    neighbors = [p for c in kept for p in phrases[c]]
    owner = np.array([i for i, c in enumerate(kept) for _ in phrases[c]], dtype=np.int64)
    frozen = store.get_embeddings(kept + neighbors, templates, encoder)              # [n, T, D], unit per template
    template = unit_rows(np.asarray(frozen, dtype=np.float64).mean(axis=1))          # the template mean, unit
    learner.eval()
    with torch.no_grad():
        learner.set_classnames(kept)
        z = learner.class_embeddings()
        ids, mask = learner.tokenize_phrases(neighbors)
        p = learner.embed_phrases(ids, mask)
    return {
        "classes": np.array(kept, dtype=str), "omitted": np.array([c for c in classes if c not in kept], dtype=str),
        "base_count": np.array(sum(c in kept for c in classes[:base_count]) if base_count >= 0 else -1),
        "neighbors": np.array(neighbors, dtype=str), "owner": owner,
        "template_classes": template[: len(kept)].astype(np.float32),
        "template_neighbors": template[len(kept):].astype(np.float32),
        "prompt_classes": unit_rows(z.double().cpu().numpy()).astype(np.float32),
        "prompt_neighbors": unit_rows(p.double().cpu().numpy()).astype(np.float32),
        "generation_key": np.array(gkey),
    }


def near_evaluated_names(arrays: dict[str, np.ndarray], trained: Sequence[str], names: Sequence[str],
                         name_vectors: np.ndarray, threshold: float) -> dict:
    """Which stored neighbors of the trained classes equal, or nearly equal, a class name the run evaluates
    without training on it (base2new's new classes, cross targets): the same text after normalisation, or a
    frozen template-mean cosine >= `threshold` (`neighbors.near_duplicate_cos`). SEPT trains the prompt on
    these phrases, so the evaluation of such a class is not blind to it; a reader can see how often. Only
    reported: training is over and nothing is filtered. `name_vectors` [len(names), D] unit, frozen."""
    from stages.data.specs import normalize_label

    classes = arrays["classes"].tolist()
    own = [classes[o] for o in arrays["owner"].tolist()]
    rows = [i for i, c in enumerate(own) if c in set(trained)]
    phrases = arrays["neighbors"].tolist()
    pairs = []
    if rows and len(names):
        sims = unit_rows(arrays["template_neighbors"][rows]) @ unit_rows(name_vectors).T   # [P_trained, N]
        for r, i in enumerate(rows):
            for j, name in enumerate(names):
                same = normalize_label(phrases[i]) == normalize_label(name)
                if same or sims[r, j] >= threshold:
                    pairs.append([own[i], phrases[i], name, round(float(sims[r, j]), 4)])
    return {"threshold": threshold, "neighbors_of_trained_classes": len(rows), "evaluated_names": len(names),
            "pairs": pairs}


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """`arrays` as a compressed .npz at `path`, atomically (a reader sees no half-written file)."""
    from cache.atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path
