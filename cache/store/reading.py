"""Reads of a committed manifest's tables: only the parts and columns a question needs.

Every function takes the store root and a manifest loaded under the caller's lock; none locks itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cache.errors import UserError
from cache.store import schema
from cache.store.keys import template_id
from cache.store.manifest import Manifest, PartEntry
from cache.store.parts import read_parts
from cache.store.records import embedding_matrix


class MissingFromStore(UserError):
    """Asked-for classes or embeddings are not in the store; `.missing` lists them."""

    def __init__(self, message: str, missing: Sequence[str]):
        super().__init__(message)
        self.missing = list(missing)


def preview(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _key_parts(manifest: Manifest, table: str, generation_key: str | None) -> list[PartEntry]:
    parts = manifest.parts_of(table)
    if generation_key is None:
        return parts
    return [p for p in parts if generation_key in p.generation_keys]


def read_classes_table(
    root: Path, manifest: Manifest, generation_key: str | None = None, columns: Sequence[str] | None = None
) -> pa.Table:
    cols = list(columns) if columns else schema.classes_schema().names
    table = read_parts(root, _key_parts(manifest, schema.CLASSES, generation_key), cols, schema.classes_schema())
    if generation_key is not None and "generation_key" in cols:
        table = table.filter(pc.equal(table["generation_key"], generation_key))
    return table


def read_phrases_table(
    root: Path, manifest: Manifest, generation_key: str | None = None, columns: Sequence[str] | None = None
) -> pa.Table:
    cols = list(columns) if columns else schema.phrases_schema().names
    table = read_parts(root, _key_parts(manifest, schema.PHRASES, generation_key), cols, schema.phrases_schema())
    if generation_key is not None and "generation_key" in cols:
        table = table.filter(pc.equal(table["generation_key"], generation_key))
    return table


def classes_present(root: Path, manifest: Manifest, classnames: Iterable[str], generation_key: str) -> set[str]:
    wanted = list(dict.fromkeys(classnames))
    table = read_classes_table(root, manifest, generation_key, ["class_name", "generation_key"])
    stored = set(table["class_name"].to_pylist())
    return {c for c in wanted if c in stored}


def class_rows(
    root: Path, manifest: Manifest, classnames: Iterable[str] | None, generation_key: str | None
) -> list[dict]:
    table = read_classes_table(root, manifest, generation_key)
    if classnames is not None:
        table = table.filter(pc.is_in(table["class_name"], pa.array(list(classnames), pa.string())))
    return table.to_pylist()


def phrases_by_class(
    root: Path, manifest: Manifest, classnames: Sequence[str], generation_key: str, allow_missing: bool
) -> dict[str, list[str]]:
    wanted = list(dict.fromkeys(classnames))
    present = classes_present(root, manifest, wanted, generation_key)
    missing = [c for c in wanted if c not in present]
    if missing and not allow_missing:
        raise MissingFromStore(
            f"{len(missing)} classes have no neighbors in the store under generation key {generation_key}: "
            f"{preview(missing)} (run `sept-pipeline generate-neighbors` for them first)",
            missing,
        )
    table = read_phrases_table(root, manifest, generation_key, ["class_name", "phrase", "rank", "generation_key"])
    table = table.filter(pc.is_in(table["class_name"], pa.array([c for c in wanted if c in present], pa.string())))
    table = table.sort_by([("class_name", "ascending"), ("rank", "ascending")])
    out: dict[str, list[str]] = {c: [] for c in wanted if c in present}
    for cls, phrase in zip(table["class_name"].to_pylist(), table["phrase"].to_pylist()):
        out[cls].append(phrase)
    return out


def encoder_dim(manifest: Manifest, encoder_fingerprint: str) -> int | None:
    """D of an encoder's stored embeddings, None if it has none."""
    dims = {p.dim for p in manifest.parts_of(schema.EMBEDDINGS, encoder_fingerprint)}
    if len(dims) > 1:
        raise UserError(
            f"neighbor-store manifest lists embeddings of encoder {encoder_fingerprint} with dims {sorted(dims)}; "
            f"run `sept-pipeline neighbors verify`"
        )
    return dims.pop() if dims else None


def stored_pairs(root: Path, manifest: Manifest, encoder_fingerprint: str) -> set[tuple[str, str]]:
    """Every (text, template_id) with a stored embedding under this encoder."""
    parts = manifest.parts_of(schema.EMBEDDINGS, encoder_fingerprint)
    if not parts:
        return set()
    table = read_parts(root, parts, ["text", "template_id"], schema.embeddings_schema(parts[0].dim))
    return set(zip(table["text"].to_pylist(), table["template_id"].to_pylist()))


def missing_texts(
    root: Path, manifest: Manifest, texts: Sequence[str], templates: Sequence[str], encoder_fingerprint: str
) -> list[str]:
    pairs = stored_pairs(root, manifest, encoder_fingerprint)
    tids = [template_id(t) for t in templates]
    return [x for x in dict.fromkeys(texts) if any((x, tid) not in pairs for tid in tids)]


def embedding_rows(
    root: Path, manifest: Manifest, encoder_fingerprint: str, texts: Sequence[str] | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """(texts, template_ids, float32 [rows, D]) of the stored rows of one encoder, optionally only `texts`."""
    parts = manifest.parts_of(schema.EMBEDDINGS, encoder_fingerprint)
    if not parts:
        return [], [], np.zeros((0, 0), np.float32)
    dim = parts[0].dim
    table = read_parts(root, parts, ["text", "template_id", "embedding"], schema.embeddings_schema(dim))
    if texts is not None:
        table = table.filter(pc.is_in(table["text"], pa.array(list(texts), pa.string())))
    return table["text"].to_pylist(), table["template_id"].to_pylist(), embedding_matrix(table["embedding"], dim)


def stored_vectors(
    root: Path, manifest: Manifest, texts: Sequence[str]
) -> list[tuple[str, list[str], list[str], np.ndarray]]:
    """Every stored embedding of `texts`, per encoder (sorted by fingerprint): (fingerprint, texts, templates as
    written, float32 [rows, D] bit-exact), rows sorted by (text, template). What `neighbors export` carries."""
    wanted = pa.array(sorted(set(texts)), pa.string())
    out = []
    for fp in manifest.encoders():
        parts = manifest.parts_of(schema.EMBEDDINGS, fp)
        dim = parts[0].dim
        table = read_parts(root, parts, ["text", "template", "embedding"], schema.embeddings_schema(dim))
        table = table.filter(pc.is_in(table["text"], wanted)).sort_by([("text", "ascending"),
                                                                     ("template", "ascending")])
        if table.num_rows:
            out.append((fp, table["text"].to_pylist(), table["template"].to_pylist(),
                        embedding_matrix(table["embedding"], dim)))
    return out


def embeddings_array(
    root: Path, manifest: Manifest, texts: Sequence[str], templates: Sequence[str], encoder_fingerprint: str
) -> np.ndarray:
    """float32 [n, T, D]: the stored embedding of texts[i] under templates[t], bit-exact."""
    tids = [template_id(t) for t in templates]
    dim = encoder_dim(manifest, encoder_fingerprint)
    if dim is None:
        raise MissingFromStore(
            f"no embeddings for encoder {encoder_fingerprint} in the store "
            f"(stored encoders: {preview(manifest.encoders()) or 'none'})",
            list(texts),
        )
    row_texts, row_tids, matrix = embedding_rows(root, manifest, encoder_fingerprint, texts)
    where = {(x, t): r for r, (x, t) in enumerate(zip(row_texts, row_tids))}
    missing = [x for x in dict.fromkeys(texts) if any((x, t) not in where for t in tids)]
    if missing:
        raise MissingFromStore(
            f"{len(missing)} texts have no stored embedding for encoder {encoder_fingerprint} under all "
            f"{len(tids)} templates: {preview(missing)} (run `sept-pipeline generate-neighbors` with this "
            f"backbone and templates first)",
            missing,
        )
    out = np.empty((len(texts), len(tids), dim), dtype=np.float32)
    for i, x in enumerate(texts):
        for j, t in enumerate(tids):
            out[i, j] = matrix[where[(x, t)]]
    return out
