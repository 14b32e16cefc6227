"""FAISS index files: build, serialise, load and search. faiss is imported only inside these functions,
so reading phrases or embeddings (a warm rerun, a training step) never imports it.

The index is exact (IndexFlatIP) over unit vectors: inner product = cosine. Neighbor stores hold
thousands of texts, where exact search is already fast and has nothing to tune.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cache.atomic import atomic_write_bytes
from cache.fingerprint import sha256_bytes
from cache.store.layout import damaged

METRIC = "inner_product"


def build_index_bytes(vectors: np.ndarray) -> bytes:
    """Serialised IndexFlatIP over `vectors` (float32 [n, D], unit rows)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(vectors)
    return faiss.serialize_index(index).tobytes()


def write_index_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def load_index(path: Path, expected_bytes: int, expected_sha256: str, expected_rows: int, expected_dim: int):
    """Read an index file, checking it against the manifest; UserError naming the file if it is damaged."""
    import faiss

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise damaged(path, "missing, but listed in manifest.json") from None
    if len(data) != expected_bytes:
        raise damaged(path, f"{len(data)} bytes, manifest.json says {expected_bytes}")
    if sha256_bytes(data) != expected_sha256:
        raise damaged(path, "sha256 differs from manifest.json")
    try:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except RuntimeError as exc:
        raise damaged(path, f"not a FAISS index: {' '.join(str(exc).split())[:160]}") from exc
    if index.ntotal != expected_rows or index.d != expected_dim:
        raise damaged(path, f"{index.ntotal} x {index.d} vectors, manifest.json says {expected_rows} x {expected_dim}")
    return index


def search_index(
    index, queries: np.ndarray, k: int, allowed_ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores [q, k], ids [q, k]) of the k best rows; ids are -1 where fewer than k rows qualify."""
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if allowed_ids is None:
        return index.search(queries, k)
    selector = faiss.IDSelectorBatch(np.asarray(sorted(set(allowed_ids)), dtype=np.int64))
    params = faiss.SearchParameters(sel=selector)
    return index.search(queries, k, params=params)


def index_vectors(index) -> np.ndarray:
    """All stored vectors (exact for a flat index), for verify() and nearest()."""
    return index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
