"""Keep each encoder's FAISS indexes in step with its stored embeddings.

One index per (encoder, template set): the template-mean unit vector of every text that has all
templates of the set. Index files are named by content and are new files on every change, so the
manifest swap that publishes them is atomic and a reader never sees an index that disagrees with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pyarrow as pa

from cache.fingerprint import sha256_bytes
from cache.store import schema
from cache.store.faiss_index import METRIC, build_index_bytes, load_index, write_index_bytes
from cache.store.keys import template_id, template_set_id, utc_now_iso
from cache.store.layout import index_relpaths
from cache.store.manifest import IndexEntry, Manifest
from cache.store.parts import read_parquet_checked, write_parquet
from cache.store.vectors import template_means

Rows = tuple  # (texts, template_ids, float32 [rows, D]) of one encoder's stored embeddings


def build_index(root: Path, encoder_fingerprint: str, templates: Sequence[str], rows: Rows, dim: int) -> IndexEntry:
    """Write the index files of one template set over `rows` (all stored rows of the encoder).

    The caller holds the exclusive lock and commits the returned entry with the manifest.
    """
    templates = tuple(dict.fromkeys(templates))
    tids = tuple(template_id(t) for t in templates)
    texts, tids_of_rows, matrix = rows
    ordered, vectors = template_means(texts, tids_of_rows, matrix.reshape(-1, dim), tids)
    data = build_index_bytes(vectors.reshape(-1, dim))
    set_id = template_set_id(tids)
    digest = sha256_bytes(data + "\n".join(ordered).encode("utf-8"))
    index_rel, texts_rel = index_relpaths(encoder_fingerprint, set_id, digest)
    write_index_bytes(root / index_rel, data)
    texts_table = pa.Table.from_pydict(
        {"id": pa.array(range(len(ordered)), pa.int64()), "text": pa.array(ordered, pa.string())},
        schema=schema.index_texts_schema(),
    )
    texts_bytes, texts_sha = write_parquet(root / texts_rel, texts_table)
    return IndexEntry(
        encoder_fingerprint=encoder_fingerprint,
        template_set_id=set_id,
        template_ids=tids,
        templates=templates,
        dim=dim,
        rows=len(ordered),
        metric=METRIC,
        file=index_rel,
        bytes=len(data),
        sha256=sha256_bytes(data),
        texts_file=texts_rel,
        texts_bytes=texts_bytes,
        texts_sha256=texts_sha,
        created_at=utc_now_iso(),
    )


def refresh_indexes(
    root: Path,
    manifest: Manifest,
    encoder_fingerprint: str,
    rows: Rows,
    dim: int,
    extra_templates: Sequence[str] | None = None,
) -> Manifest:
    """Rebuild every index of the encoder over `rows` (plus one for `extra_templates` if it has none)."""
    sets: dict[str, tuple[str, ...]] = {
        e.template_set_id: e.templates for e in manifest.indexes_of(encoder_fingerprint)
    }
    if extra_templates is not None:
        extra = tuple(dict.fromkeys(extra_templates))
        sets.setdefault(template_set_id([template_id(t) for t in extra]), extra)
    for templates in sets.values():
        manifest = manifest.with_index(build_index(root, encoder_fingerprint, templates, rows, dim))
    return manifest


def load_index_and_texts(root: Path, entry: IndexEntry) -> tuple[object, list[str]]:
    """The FAISS index and its id -> text list, both checked against the manifest."""
    index = load_index(root / entry.file, entry.bytes, entry.sha256, entry.rows, entry.dim)
    table = read_parquet_checked(root / entry.texts_file, entry.texts_bytes, entry.rows, ["id", "text"])
    texts = table.sort_by("id")["text"].to_pylist()
    return index, texts
