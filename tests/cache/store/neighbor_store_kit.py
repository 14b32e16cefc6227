"""Shared helpers for the neighbor-store tests: deterministic content, a resumable writer loop that
child processes run (spawned or killed), and a plain-pyarrow snapshot of a store for comparisons.

The writer does what stage one does against the store: skip classes already present, store the rest
a few classes per commit, then encode only the texts that lack embeddings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from cache.store import ClassNeighbors, NeighborStore, Provenance

TEMPLATES = ["a sound of a {}.", "an audio recording of {}.", "{} can be heard."]
DIM = 16
ENCODER = "test-encoder@sha256:0123456789abcdef"


def provenance(num_neighbors: int = 4, prompt_hash: str = "prompt-hash-1") -> Provenance:
    return Provenance(
        llm_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        llm_revision="packaged-q4_1",
        llm_fingerprint="llm-fp-1",
        engine="vllm",
        engine_version="0.32.0",
        prompt_hash=prompt_hash,
        prompt_version="neighbors_v1",
        num_neighbors=num_neighbors,
    )


def class_name(i: int) -> str:
    return f"class {i:03d}"


def neighbors_of(i: int, num_neighbors: int = 4) -> list[str]:
    # Every 7th class comes out short, every 11th empty: both must be stored and never regenerated.
    n = 0 if i % 11 == 5 else (num_neighbors - 2 if i % 7 == 3 else num_neighbors)
    return [f"neighbor {j} of class {i:03d}" for j in range(n)]


def item(i: int, num_neighbors: int = 4) -> ClassNeighbors:
    return ClassNeighbors(
        class_name(i),
        neighbors_of(i, num_neighbors),
        provenance(num_neighbors),
        {"temperature": 0.0, "max_tokens": 160},
        seed=i,
    )


def fake_unit_embedding(text: str, template: str, dim: int = DIM) -> np.ndarray:
    """A deterministic unit vector per (text, template): same input, same bits, in any process."""
    seed = int.from_bytes(hashlib.sha256(f"{template}|{text}".encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def embed(texts: list[str], templates: list[str] = TEMPLATES) -> np.ndarray:
    return np.stack([np.stack([fake_unit_embedding(x, t) for t in templates]) for x in texts]).reshape(
        len(texts), len(templates), DIM
    )


def write_loop(root: str, classes: list[int], batch: int = 3) -> dict:
    """Generate-and-store `classes` in batches, as a resumable run would; returns counts."""
    store = NeighborStore(root)
    key = provenance().generation_key
    counts = {"classes_written": 0, "rows_written": 0}
    for start in range(0, len(classes), batch):
        chunk = classes[start : start + batch]
        present = store.classes_present([class_name(i) for i in chunk], key)
        todo = [i for i in chunk if class_name(i) not in present]
        if todo:
            counts["classes_written"] += len(store.put_phrases([item(i) for i in todo]).written)
        texts = [class_name(i) for i in chunk] + [p for i in chunk for p in neighbors_of(i)]
        missing = store.missing_embeddings(texts, TEMPLATES, ENCODER)
        if missing:
            counts["rows_written"] += store.put_embeddings(missing, TEMPLATES, ENCODER, embed(missing)).rows_written
    return counts


def write_loop_to_file(root: str, classes: list[int], out: str, barrier=None) -> None:
    """Child-process entry point (spawn): optionally wait for the sibling, run, record the counts."""
    if barrier is not None:
        barrier.wait()
    Path(out).write_text(json.dumps(write_loop(root, classes)))


def committed_files(root: Path, folder: str) -> list[Path]:
    """The files manifest.json lists under a folder: how a reader with no project code picks files."""
    manifest = json.loads((root / "manifest.json").read_text())
    files = [p["file"] for p in manifest["parts"]] + [i["texts_file"] for i in manifest["indexes"]]
    return sorted(root / f for f in files if f.startswith(folder + "/"))


def snapshot(root: Path) -> dict:
    """Store content with plain pyarrow, minus creation times and file names: equal for equal stores."""
    out = {}
    for folder, key in (
        ("phrases", ["class_name", "rank"]),
        ("classes", ["class_name"]),
        ("embeddings", ["text", "template_id"]),
    ):
        files = committed_files(root, folder)
        rows = [r for f in files for r in pq.read_table(f).to_pylist()]
        for r in rows:
            r.pop("created_at")
            if "embedding" in r:
                r["embedding"] = np.asarray(r["embedding"], np.float32).tobytes()
        out[folder] = sorted(rows, key=lambda r: tuple(r[k] for k in key))
    manifest = json.loads((root / "manifest.json").read_text())
    out["indexes"] = sorted(
        (i["encoder_fingerprint"], i["template_set_id"], i["rows"], i["sha256"]) for i in manifest["indexes"]
    )
    return out
