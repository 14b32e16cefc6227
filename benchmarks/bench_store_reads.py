"""A warm rerun's reads of the neighbor store: what `tune --sept` and a `generate-neighbors` rerun that finds
everything stored pay before any model work.

    python -m benchmarks.bench_store_reads              # well under a second on 2 cores
    python -m benchmarks.bench_store_reads --repeats 20

An ESC-50-sized store (50 classes x 8 neighbors; 450 texts x 8 templates x 512-d float32 embeddings) is
written once; each repeat opens it afresh (a new process's view) and asks which classes are stored, their
phrases, and which texts lack an embedding. Printed, never asserted: the suite checks what these reads
answer (tests/cache/store/test_neighbor_store_upkeep.py), this module how long they take.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES, NEIGHBORS, TEMPLATES, DIM = 50, 8, 8, 512


def esc50_sized_store(root: Path):
    """Write the store; (store, generation key, class names, texts, templates)."""
    from cache.store import ClassNeighbors, NeighborStore, Provenance

    prov = Provenance("m", "r", "llm-fp", "vllm", "0.32.0", "ph", "v1", NEIGHBORS)
    names = [f"class {i}" for i in range(CLASSES)]
    store = NeighborStore(root)
    store.put_phrases([ClassNeighbors(c, [f"{c} neighbor {j}" for j in range(NEIGHBORS)], prov, {}, 0) for c in names])
    texts = names + [f"{c} neighbor {j}" for c in names for j in range(NEIGHBORS)]
    templates = [f"template {k}: {{}}" for k in range(TEMPLATES)]
    vectors = np.random.default_rng(0).standard_normal((len(texts), TEMPLATES, DIM)).astype(np.float32)
    store.put_embeddings(texts, templates, "enc", vectors)
    return store, prov.generation_key, names, texts, templates


def warm_reads(root: Path, key: str, names: list[str], texts: list[str], templates: list[str]) -> tuple:
    """The three reads of a warm rerun, on a freshly opened store."""
    from cache.store import NeighborStore

    fresh = NeighborStore(root)
    return (fresh.classes_present(names, key), fresh.get_phrases(names, key),
            fresh.missing_embeddings(texts, templates, "enc"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store, key, names, texts, templates = esc50_sized_store(Path(tmp) / "neighbors")
        warm_reads(store.root, key, names, texts, templates)  # warm-up: imports, page cache
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            warm_reads(store.root, key, names, texts, templates)
            seconds.append(time.perf_counter() - start)
    row = {"classes": CLASSES, "texts": len(texts), "templates": TEMPLATES, "dim": DIM, "repeats": args.repeats,
           "median_s": round(statistics.median(seconds), 4), "max_s": round(max(seconds), 4)}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
