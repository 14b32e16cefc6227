"""Summaries for `neighbors ls`: what the store holds, counted from the status rows and the manifest."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from cache.store import reading, schema
from cache.store.manifest import Manifest


def generation_key_rows(classes: pa.Table) -> list[dict]:
    """One dict per generation key (newest first): provenance plus classes, phrases, short classes."""
    groups: dict[str, dict] = {}
    for row in classes.to_pylist():
        g = groups.get(row["generation_key"])
        if g is None:
            g = groups[row["generation_key"]] = {
                "generation_key": row["generation_key"],
                "llm_id": row["llm_id"],
                "llm_revision": row["llm_revision"],
                "llm_fingerprint": row["llm_fingerprint"],
                "engine": row["engine"],
                "engine_version": row["engine_version"],
                "prompt_hash": row["prompt_hash"],
                "prompt_version": row["prompt_version"],
                "num_neighbors": row["num_neighbors"],
                "classes": 0,
                "phrases": 0,
                "short_classes": [],
                "class_names": [],
                "first_created_at": row["created_at"],
                "last_created_at": row["created_at"],
            }
        g["classes"] += 1
        g["phrases"] += row["num_kept"]
        g["class_names"].append(row["class_name"])
        if row["short"]:
            g["short_classes"].append(row["class_name"])
        g["first_created_at"] = min(g["first_created_at"], row["created_at"])
        g["last_created_at"] = max(g["last_created_at"], row["created_at"])
    for g in groups.values():
        g["class_names"].sort()
        g["short_classes"].sort()
    return sorted(groups.values(), key=lambda g: g["last_created_at"], reverse=True)


def store_summary(root: Path, manifest: Manifest) -> dict:
    classes = reading.read_classes_table(root, manifest)
    keys = generation_key_rows(classes)
    encoders = []
    for enc in manifest.encoders():
        parts = manifest.parts_of(schema.EMBEDDINGS, enc)
        pairs = reading.stored_pairs(root, manifest, enc)
        encoders.append(
            {
                "encoder_fingerprint": enc,
                "dim": parts[0].dim,
                "embeddings": sum(p.rows for p in parts),
                "texts": len({t for t, _ in pairs}),
                "templates": len({tid for _, tid in pairs}),
                "indexes": [
                    {
                        "template_set_id": e.template_set_id,
                        "templates": len(e.templates),
                        "rows": e.rows,
                        "file": e.file,
                    }
                    for e in manifest.indexes_of(enc)
                ],
            }
        )
    files = [(p.file, p.bytes) for p in manifest.parts] + [
        (f, b) for e in manifest.indexes for f, b in ((e.file, e.bytes), (e.texts_file, e.texts_bytes))
    ]
    return {
        "root": str(root),
        "schema_version": manifest.schema_version,
        "commit": manifest.commit,
        "updated_at": manifest.updated_at,
        "classes": len(set(classes["class_name"].to_pylist())),
        "class_rows": classes.num_rows,
        "phrases": sum(p.rows for p in manifest.parts_of(schema.PHRASES)),
        "short_classes": sum(len(k["short_classes"]) for k in keys),
        "generation_keys": [{k: v for k, v in g.items() if k != "class_names"} for g in keys],
        "encoders": encoders,
        "files": len(files),
        "bytes": sum(b for _, b in files),
    }
