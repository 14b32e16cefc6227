"""What callers hand to the store, and how it becomes Arrow rows.

Stage one builds a `Provenance` once per run and one `ClassNeighbors` per class it finished
(including classes that came out short or empty: storing them stops reruns from asking again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from cache.store import schema
from cache.store.keys import generation_key, template_id


@dataclass(frozen=True)
class Provenance:
    """Where a class's neighbors came from (docs/design.md, "Provenance")."""

    llm_id: str
    llm_revision: str
    llm_fingerprint: str
    engine: str
    engine_version: str
    prompt_hash: str
    prompt_version: str
    num_neighbors: int

    @property
    def generation_key(self) -> str:
        return generation_key(self.llm_fingerprint, self.prompt_hash, self.num_neighbors)


@dataclass(frozen=True)
class ClassNeighbors:
    """The kept neighbors of one class, best first, and how they were sampled.

    `seed` is one int for all phrases, or one per phrase when retries with fresh seeds
    contributed. `sampling` is the effective sampling parameters (stored as JSON).
    """

    class_name: str
    phrases: Sequence[str]
    provenance: Provenance
    sampling: Mapping[str, Any]
    seed: int | Sequence[int]
    rounds: int = 1
    votes: Sequence[int | None] | None = None  # per phrase: answers that proposed it (None: not counted)
    verify_scores: Sequence[float | None] | None = None  # per phrase: P(yes) of the verification round

    def __post_init__(self):
        if not isinstance(self.class_name, str) or not self.class_name.strip():
            raise ValueError(f"class_name must be a non-blank string, got {self.class_name!r}")
        phrases = tuple(self.phrases)
        object.__setattr__(self, "phrases", phrases)
        for p in phrases:
            if not isinstance(p, str) or not p.strip():
                raise ValueError(f"class {self.class_name!r}: phrases must be non-blank strings, got {p!r}")
        if len(set(phrases)) != len(phrases):
            raise ValueError(f"class {self.class_name!r}: duplicate phrases {sorted(_dupes(phrases))}")
        if not isinstance(self.seed, int):
            seeds = tuple(int(s) for s in self.seed)
            if len(seeds) != len(phrases):
                raise ValueError(f"class {self.class_name!r}: {len(seeds)} seeds for {len(phrases)} phrases")
            object.__setattr__(self, "seed", seeds)
        for name in ("votes", "verify_scores"):
            values = getattr(self, name)
            if values is not None and len(values) != len(phrases):
                raise ValueError(f"class {self.class_name!r}: {len(values)} {name} for {len(phrases)} phrases")

    @property
    def generation_key(self) -> str:
        return self.provenance.generation_key

    @property
    def short(self) -> bool:
        return len(self.phrases) < self.provenance.num_neighbors

    def seeds(self) -> list[int]:
        if isinstance(self.seed, int):
            return [self.seed] * len(self.phrases)
        return list(self.seed)

    def first_seed(self) -> int:
        if isinstance(self.seed, int):
            return self.seed
        return self.seed[0] if self.seed else 0


def _dupes(items: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    return {x for x in items if x in seen or seen.add(x)}


def _provenance_columns(p: Provenance, sampling_json: str, n: int) -> dict[str, list]:
    return {
        "generation_key": [p.generation_key] * n,
        "llm_id": [p.llm_id] * n,
        "llm_revision": [p.llm_revision] * n,
        "llm_fingerprint": [p.llm_fingerprint] * n,
        "engine": [p.engine] * n,
        "engine_version": [p.engine_version] * n,
        "prompt_hash": [p.prompt_hash] * n,
        "prompt_version": [p.prompt_version] * n,
        "num_neighbors": [int(p.num_neighbors)] * n,
        "sampling": [sampling_json] * n,
    }


def _sampling_json(sampling: Mapping[str, Any]) -> str:
    return json.dumps(dict(sampling), sort_keys=True, default=str)


def build_phrases_table(items: Sequence[ClassNeighbors], created_at: str) -> pa.Table:
    """One row per kept phrase of every item, rank = position in the item's list."""
    cols: dict[str, list] = {name: [] for name in schema.phrases_schema().names}
    for item in items:
        n = len(item.phrases)
        cols["class_name"] += [item.class_name] * n
        cols["phrase"] += list(item.phrases)
        cols["rank"] += list(range(n))
        for k, v in _provenance_columns(item.provenance, _sampling_json(item.sampling), n).items():
            cols[k] += v
        cols["seed"] += item.seeds()
        cols["created_at"] += [created_at] * n
        cols["votes"] += list(item.votes) if item.votes is not None else [None] * n
        cols["verify_score"] += list(item.verify_scores) if item.verify_scores is not None else [None] * n
    return pa.Table.from_pydict(cols, schema=schema.phrases_schema())


def build_classes_table(items: Sequence[ClassNeighbors], created_at: str) -> pa.Table:
    """One status row per item: how many phrases were kept and whether the class came out short."""
    cols: dict[str, list] = {name: [] for name in schema.classes_schema().names}
    for item in items:
        cols["class_name"].append(item.class_name)
        cols["num_kept"].append(len(item.phrases))
        cols["short"].append(item.short)
        cols["rounds"].append(int(item.rounds))
        for k, v in _provenance_columns(item.provenance, _sampling_json(item.sampling), 1).items():
            cols[k] += v
        cols["seed"].append(item.first_seed())
        cols["created_at"].append(created_at)
    return pa.Table.from_pydict(cols, schema=schema.classes_schema())


def build_embeddings_table(
    texts: Sequence[str],
    templates: Sequence[str],
    encoder_fingerprint: str,
    vectors: np.ndarray,
    created_at: str,
) -> pa.Table:
    """Rows for `vectors[i, t]` = embedding of texts[i] under templates[t]; vectors is float32 [n, D].

    `vectors` here is already flattened to one row per (text, template) pair, in the order of the
    paired lists `texts` and `templates`.
    """
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise ValueError(f"vectors must be float32 [rows, D], got {vectors.dtype} {vectors.shape}")
    n, dim = vectors.shape
    values = pa.array(np.ascontiguousarray(vectors).reshape(-1), type=pa.float32())
    emb = pa.FixedSizeListArray.from_arrays(values, type=schema.embedding_type(dim))
    cols = {
        "text": pa.array(list(texts), pa.string()),
        "template": pa.array(list(templates), pa.string()),
        "template_id": pa.array([template_id(t) for t in templates], pa.string()),
        "encoder_fingerprint": pa.array([encoder_fingerprint] * n, pa.string()),
        "dim": pa.array([dim] * n, pa.int32()),
        "dtype": pa.array(["float32"] * n, pa.string()),
        "embedding": emb,
        "created_at": pa.array([created_at] * n, pa.string()),
    }
    return pa.Table.from_pydict(cols, schema=schema.embeddings_schema(dim))


def embedding_matrix(column: pa.ChunkedArray | pa.Array, dim: int) -> np.ndarray:
    """The fixed_size_list<float32>[dim] column as a float32 [rows, dim] array (bit-exact)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], type=schema.embedding_type(dim))
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(-1, dim)
