"""verify(): check that the manifest, every Parquet part and every index agree; list what does not.

Read-only. Unlike ordinary reads it hashes every byte (sha256) and decodes every page.
Problems are one line each, naming the file. Leftovers of interrupted writes are not problems
(readers ignore them; the next write removes them) and are listed by layout.leftover_files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cache.errors import UserError
from cache.fingerprint import sha256_file
from cache.store import schema
from cache.store.faiss_index import index_vectors, load_index
from cache.store.keys import template_id, template_set_id
from cache.store.layout import leftover_files
from cache.store.manifest import IndexEntry, Manifest, PartEntry, load_manifest
from cache.store.parts import read_parquet_checked
from cache.store.records import embedding_matrix
from cache.store.vectors import template_means


def check_file(root: Path, rel: str, expected_bytes: int, expected_sha: str) -> str | None:
    """None if the file is present with the manifest's size and sha256, else the problem."""
    path = root / rel
    if not path.is_file():
        return f"{path}: listed in manifest.json but missing"
    size = path.stat().st_size
    if size != expected_bytes:
        return f"{path}: {size} bytes, manifest.json says {expected_bytes}"
    if sha256_file(path) != expected_sha:
        return f"{path}: sha256 differs from manifest.json"
    return None


def check_files(store, generation_key: str, encoder_fp: str, templates: list[str]) -> None:
    """Every file of `store` (a NeighborStore) that one generation, one encoder and one template set rely
    on matches manifest.json (size and sha256, as check_file), or a UserError naming the first bad file.

    The quick check before `generate-neighbors` reads or writes: a warm rerun reads only a few columns, so
    a flipped byte in an embedding vector or the FAISS index would otherwise go unnoticed until training.
    Checked without faiss: hashing is cheap next to any real work. A file that changed because another
    process committed meanwhile is re-checked against the new manifest before being called damaged.
    """
    set_id = template_set_id([template_id(t) for t in templates])

    def problems(m: Manifest) -> list[str]:
        files = [(p.file, p.bytes, p.sha256) for p in m.parts
                 if (p.table in ("phrases", "classes") and generation_key in p.generation_keys)
                 or (p.table == "embeddings" and p.encoder_fingerprint == encoder_fp)]
        for e in m.indexes_of(encoder_fp):
            if e.template_set_id == set_id:
                files += [(e.file, e.bytes, e.sha256), (e.texts_file, e.texts_bytes, e.texts_sha256)]
        return [str(store.root / rel) for rel, size, sha in files if check_file(store.root, rel, size, sha)]

    first = store.manifest()
    bad = problems(first)
    if bad:
        again = store.manifest()
        if again.commit != first.commit:
            bad = problems(again)
    if bad:
        kind = "index" if bad[0].endswith(".faiss") else "Parquet"
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UserError(f"neighbor store {kind} file {bad[0]}{more}: missing or damaged (size/sha256 differ from "
                        f"manifest.json); see `sept-pipeline neighbors verify`, fix with `neighbors repair`")


def _read_whole_part(root: Path, part: PartEntry) -> tuple[pa.Table | None, str | None]:
    problem = check_file(root, part.file, part.bytes, part.sha256)
    if problem:
        return None, problem
    try:
        table = read_parquet_checked(root / part.file, part.bytes, part.rows, None)
    except UserError as exc:
        return None, str(exc).split(";")[0]
    expected = schema.expected_schema(part.table, part.dim or None)
    if not table.schema.equals(expected, check_metadata=False):
        return None, f"{root / part.file}: columns {table.schema.names} do not match the {part.table} schema"
    return table, None


def damaged_parts(root: Path, manifest: Manifest) -> dict[str, str]:
    """file -> problem, for every part or index file that cannot be trusted (used by repair())."""
    out: dict[str, str] = {}
    for part in manifest.parts:
        _table, problem = _read_whole_part(root, part)
        if problem:
            out[part.file] = problem
    for entry in manifest.indexes:
        for rel, size, sha in (
            (entry.file, entry.bytes, entry.sha256),
            (entry.texts_file, entry.texts_bytes, entry.texts_sha256),
        ):
            problem = check_file(root, rel, size, sha)
            if problem:
                out[rel] = problem
    return out


def verify_store(root: Path) -> list[str]:
    try:
        manifest = load_manifest(root)
    except UserError as exc:
        return [str(exc)]
    if manifest is None:
        data = leftover_files(root, None)
        return [f"{root / 'manifest.json'}: missing, but {len(data)} data files exist"] if data else []
    problems: list[str] = []
    tables: dict[str, list[pa.Table]] = defaultdict(list)
    by_encoder: dict[str, list[pa.Table]] = defaultdict(list)
    unreadable: set[str] = set()  # tables (or encoders) with a damaged part: cross-checks would only echo it
    for part in manifest.parts:
        table, problem = _read_whole_part(root, part)
        if problem:
            problems.append(problem)
            unreadable.add(part.encoder_fingerprint if part.table == schema.EMBEDDINGS else part.table)
            continue
        problems += _check_part_content(root, part, table)
        (by_encoder[part.encoder_fingerprint] if part.table == schema.EMBEDDINGS else tables[part.table]).append(table)
    if not unreadable & {schema.PHRASES, schema.CLASSES}:
        problems += _check_generation_tables(root, tables[schema.PHRASES], tables[schema.CLASSES])
    for encoder, parts in by_encoder.items():
        if encoder not in unreadable:
            problems += _check_encoder(root, manifest, encoder, pa.concat_tables(parts))
    for encoder in set(manifest.encoders()) - {i.encoder_fingerprint for i in manifest.indexes}:
        problems.append(f"{root}: encoder {encoder} has embeddings but no FAISS index")
    for entry in manifest.indexes:
        if entry.encoder_fingerprint not in manifest.encoders():
            problems.append(
                f"{root / entry.file}: index of encoder {entry.encoder_fingerprint}, which has no embeddings"
            )
    return problems


def _check_part_content(root: Path, part: PartEntry, table: pa.Table) -> list[str]:
    path = root / part.file
    out = []
    if part.table in (schema.PHRASES, schema.CLASSES):
        keys = set(table["generation_key"].to_pylist())
        if keys != set(part.generation_keys):
            out.append(
                f"{path}: generation keys {sorted(keys)} differ from manifest.json's {list(part.generation_keys)}"
            )
    else:
        if set(table["encoder_fingerprint"].to_pylist()) - {part.encoder_fingerprint}:
            out.append(f"{path}: rows of an encoder other than manifest.json's {part.encoder_fingerprint}")
        if set(table["dim"].to_pylist()) - {part.dim}:
            out.append(f"{path}: dim column differs from the embedding size {part.dim}")
        if set(table["dtype"].to_pylist()) - {"float32"}:
            out.append(f"{path}: dtype other than float32")
        bad = [
            t
            for t, tid in zip(table["template"].to_pylist(), table["template_id"].to_pylist())
            if template_id(t) != tid
        ]
        if bad:
            out.append(f"{path}: {len(bad)} rows whose template_id is not the hash of their template")
    return out


def _dupes(keys) -> list:
    return [k for k, n in Counter(keys).items() if n > 1]


def _check_generation_tables(root: Path, phrases: list[pa.Table], classes: list[pa.Table]) -> list[str]:
    out = []
    ph = pa.concat_tables(phrases) if phrases else schema.phrases_schema().empty_table()
    cl = pa.concat_tables(classes) if classes else schema.classes_schema().empty_table()
    cls_keys = list(zip(cl["class_name"].to_pylist(), cl["generation_key"].to_pylist()))
    for k in _dupes(cls_keys):
        out.append(f"{root / 'classes'}: duplicate status rows for class {k[0]!r} under generation key {k[1]}")
    triples = list(zip(ph["class_name"].to_pylist(), ph["generation_key"].to_pylist(), ph["phrase"].to_pylist()))
    for k in _dupes(triples):
        out.append(f"{root / 'phrases'}: duplicate phrase {k[2]!r} of class {k[0]!r} under generation key {k[1]}")
    ranks: dict[tuple[str, str], list[int]] = defaultdict(list)
    for c, g, r in zip(ph["class_name"].to_pylist(), ph["generation_key"].to_pylist(), ph["rank"].to_pylist()):
        ranks[(c, g)].append(r)
    status = {
        (c, g): (n, s, nn)
        for c, g, n, s, nn in zip(
            cl["class_name"].to_pylist(),
            cl["generation_key"].to_pylist(),
            cl["num_kept"].to_pylist(),
            cl["short"].to_pylist(),
            cl["num_neighbors"].to_pylist(),
        )
    }
    for key, rs in ranks.items():
        if key not in status:
            out.append(
                f"{root / 'phrases'}: class {key[0]!r} has phrases under generation key {key[1]} but no status row"
            )
        elif sorted(rs) != list(range(status[key][0])):
            out.append(
                f"{root / 'phrases'}: class {key[0]!r} under {key[1]} has ranks {sorted(rs)[:10]}, "
                f"status says {status[key][0]} phrases"
            )
    for key, (n, short, nn) in status.items():
        if n > 0 and key not in ranks:
            out.append(f"{root / 'classes'}: class {key[0]!r} under {key[1]} should have {n} phrases, none are stored")
        if short != (n < nn):
            out.append(
                f"{root / 'classes'}: class {key[0]!r} under {key[1]} has short={short} with {n} of {nn} phrases"
            )
    return out


def _check_encoder(root: Path, manifest: Manifest, encoder: str, table: pa.Table) -> list[str]:
    out = []
    for text, tid in _dupes(zip(table["text"].to_pylist(), table["template_id"].to_pylist())):
        out.append(f"{root / 'embeddings'}: duplicate embedding of {text!r} under template {tid} for encoder {encoder}")
    dims = {p.dim for p in manifest.parts_of(schema.EMBEDDINGS, encoder)}
    if len(dims) != 1:
        return out + [f"{root / 'embeddings'}: encoder {encoder} has embeddings of several sizes {sorted(dims)}"]
    dim = dims.pop()
    texts, tids = table["text"].to_pylist(), table["template_id"].to_pylist()
    matrix = embedding_matrix(table["embedding"], dim)
    for entry in manifest.indexes_of(encoder):
        out += _check_index(root, entry, dim, texts, tids, matrix)
    return out


def _check_index(root: Path, entry: IndexEntry, dim: int, texts, tids, matrix: np.ndarray) -> list[str]:
    path = root / entry.file
    for rel, size, sha in (
        (entry.file, entry.bytes, entry.sha256),
        (entry.texts_file, entry.texts_bytes, entry.texts_sha256),
    ):
        problem = check_file(root, rel, size, sha)
        if problem:
            return [problem]
    if entry.dim != dim:
        return [f"{path}: dimension {entry.dim}, the encoder's embeddings have {dim}"]
    try:
        index = load_index(path, entry.bytes, entry.sha256, entry.rows, entry.dim)
        id_text = pq.read_table(root / entry.texts_file).sort_by("id")
    except (UserError, OSError, pa.ArrowException) as exc:
        return [str(exc).split(";")[0]]
    if id_text["id"].to_pylist() != list(range(entry.rows)):
        return [f"{root / entry.texts_file}: ids are not 0..{entry.rows - 1}"]
    expected_texts, expected = template_means(texts, tids, matrix, entry.template_ids)
    if id_text["text"].to_pylist() != expected_texts:
        return [
            f"{path}: indexes {entry.rows} texts, the embeddings give {len(expected_texts)} texts with all "
            f"{len(entry.template_ids)} templates"
        ]
    if not np.allclose(index_vectors(index), expected.reshape(-1, dim), atol=1e-6):
        return [f"{path}: vectors differ from the template means of the stored embeddings"]
    return []
