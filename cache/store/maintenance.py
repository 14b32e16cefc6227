"""Store upkeep that rewrites parts: compaction (many small parts -> one) and repair().

Both build new immutable parts and return a new manifest; the caller holds the exclusive lock,
commits, and only then deletes files the new manifest no longer lists. A kill at any point leaves
the old manifest in force.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from cache.store import schema
from cache.store.index_sync import build_index
from cache.store.keys import utc_now_iso
from cache.store.layout import DAMAGED_DIR, new_part_relpath
from cache.store.manifest import Manifest, PartEntry
from cache.store.parts import read_part, write_part
from cache.store.reading import embedding_rows
from cache.store.verify import damaged_parts

# A table (or one encoder's embeddings) with more parts than this is merged into one on the next write,
# so reads stay a handful of file opens however many runs added to the store.
MAX_PARTS = 16

_SORT = {
    schema.PHRASES: [("generation_key", "ascending"), ("class_name", "ascending"), ("rank", "ascending")],
    schema.CLASSES: [("generation_key", "ascending"), ("class_name", "ascending")],
    schema.EMBEDDINGS: [("text", "ascending"), ("template_id", "ascending")],
}


def _write_merged(root: Path, table_name: str, table: pa.Table, encoder: str = "", dim: int = 0) -> PartEntry:
    table = table.sort_by(_SORT[table_name])
    keys = table["generation_key"].to_pylist() if table_name != schema.EMBEDDINGS else ()
    return write_part(
        root,
        new_part_relpath(table_name, encoder),
        table,
        table_name=table_name,
        created_at=utc_now_iso(),
        generation_keys=keys,
        encoder_fingerprint=encoder,
        dim=dim,
    )


def compact(root: Path, manifest: Manifest, table_name: str, encoder: str = "") -> Manifest:
    """Merge all parts of a table (of one encoder, for embeddings) into one part."""
    parts = manifest.parts_of(table_name, encoder if table_name == schema.EMBEDDINGS else None)
    if len(parts) < 2:
        return manifest
    merged = pa.concat_tables([read_part(root, p) for p in parts])
    new = _write_merged(root, table_name, merged, encoder, parts[0].dim)
    return manifest.with_parts([new], removed=parts)


def compact_if_needed(root: Path, manifest: Manifest, table_name: str, encoder: str = "") -> Manifest:
    parts = manifest.parts_of(table_name, encoder if table_name == schema.EMBEDDINGS else None)
    return compact(root, manifest, table_name, encoder) if len(parts) > MAX_PARTS else manifest


def _set_aside(root: Path, rel: str) -> None:
    """Move a damaged file under damaged/ (kept for inspection, never read); gone already is fine."""
    src = root / rel
    if src.exists():
        dst = root / DAMAGED_DIR / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)


def _first_occurrence(table: pa.Table, key_columns: list[str]) -> pa.Table:
    seen: set = set()
    keep = []
    for row in zip(*(table[c].to_pylist() for c in key_columns)):
        keep.append(row not in seen)
        seen.add(row)
    return table.filter(pa.array(keep, pa.bool_()))


def _consistent_generation_tables(phrases: pa.Table, classes: pa.Table) -> tuple[pa.Table, pa.Table, list[str]]:
    """Keep only classes whose status row and phrases agree; the rest will be regenerated."""
    classes = _first_occurrence(classes, ["class_name", "generation_key"])
    phrases = _first_occurrence(phrases, ["class_name", "generation_key", "phrase"])
    counts: dict[tuple[str, str], list[int]] = {}
    for c, g, r in zip(
        phrases["class_name"].to_pylist(), phrases["generation_key"].to_pylist(), phrases["rank"].to_pylist()
    ):
        counts.setdefault((c, g), []).append(r)
    good = set()
    dropped = []
    for c, g, n in zip(
        classes["class_name"].to_pylist(), classes["generation_key"].to_pylist(), classes["num_kept"].to_pylist()
    ):
        if sorted(counts.get((c, g), [])) == list(range(n)):
            good.add((c, g))
        else:
            dropped.append(f"{c} ({g})")
    dropped += [f"{c} ({g})" for (c, g) in counts if (c, g) not in good and f"{c} ({g})" not in dropped]
    keep_c = pa.array(
        [(c, g) in good for c, g in zip(classes["class_name"].to_pylist(), classes["generation_key"].to_pylist())],
        pa.bool_(),
    )
    keep_p = pa.array(
        [(c, g) in good for c, g in zip(phrases["class_name"].to_pylist(), phrases["generation_key"].to_pylist())],
        pa.bool_(),
    )
    return phrases.filter(keep_p), classes.filter(keep_c), sorted(dropped)


def repair(root: Path, manifest: Manifest) -> tuple[Manifest, list[str]]:
    """Set damaged files aside, drop what depended on them, rebuild indexes; return (manifest, actions)."""
    actions: list[str] = []
    bad = damaged_parts(root, manifest)
    for rel, problem in sorted(bad.items()):
        _set_aside(root, rel)
        actions.append(f"set aside {rel} under {DAMAGED_DIR}/ ({problem})")
    m = manifest.with_parts([], removed=[p for p in manifest.parts if p.file in bad])

    # Phrases and status rows: rewrite both when anything was lost or inconsistent.
    ph_parts, cl_parts = m.parts_of(schema.PHRASES), m.parts_of(schema.CLASSES)
    phrases = (
        pa.concat_tables([read_part(root, p) for p in ph_parts]) if ph_parts else schema.phrases_schema().empty_table()
    )
    classes = (
        pa.concat_tables([read_part(root, p) for p in cl_parts]) if cl_parts else schema.classes_schema().empty_table()
    )
    fixed_p, fixed_c, dropped = _consistent_generation_tables(phrases, classes)
    if dropped or fixed_p.num_rows != phrases.num_rows or fixed_c.num_rows != classes.num_rows:
        added = []
        if fixed_p.num_rows:
            added.append(_write_merged(root, schema.PHRASES, fixed_p))
        if fixed_c.num_rows:
            added.append(_write_merged(root, schema.CLASSES, fixed_c))
        m = m.with_parts(added, removed=ph_parts + cl_parts)
        actions.append(
            f"kept {fixed_c.num_rows} consistent classes; {len(dropped)} will be regenerated"
            + (f": {', '.join(dropped[:10])}{' ...' if len(dropped) > 10 else ''}" if dropped else "")
        )

    # Embeddings: drop duplicate rows; then rebuild every index from what is left.
    index_sets = {(e.encoder_fingerprint, e.template_set_id): e.templates for e in manifest.indexes}
    m = Manifest(commit=m.commit, parts=m.parts, indexes=(), updated_at=m.updated_at, names=m.names)
    for encoder in m.encoders():
        parts = m.parts_of(schema.EMBEDDINGS, encoder)
        table = pa.concat_tables([read_part(root, p) for p in parts])
        unique = _first_occurrence(table, ["text", "template_id"])
        if unique.num_rows != table.num_rows:
            m = m.with_parts([_write_merged(root, schema.EMBEDDINGS, unique, encoder, parts[0].dim)], removed=parts)
            actions.append(f"removed {table.num_rows - unique.num_rows} duplicate embedding rows of encoder {encoder}")
        rows = embedding_rows(root, m, encoder)
        for (enc, _set_id), templates in sorted(index_sets.items()):
            if enc == encoder:
                m = m.with_index(build_index(root, encoder, templates, rows, parts[0].dim))
    old_index_files = {f for e in manifest.indexes for f in e.files()}
    if old_index_files - m.files() or bad:
        actions.append(f"rebuilt {len(m.indexes)} FAISS indexes from the stored embeddings")
    return m, actions


__all__ = ["MAX_PARTS", "compact", "compact_if_needed", "repair"]
