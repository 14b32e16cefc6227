"""Write and read immutable Parquet parts, with checks that catch damaged files on every read.

Parts are written with page checksums (CRC) and read with checksum verification, and their size is
compared with the manifest: a truncated, overwritten or bit-flipped part raises a one-line UserError
instead of yielding wrong rows. The full sha256 check is verify()'s job (it reads every byte).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from cache.atomic import atomic_path
from cache.fingerprint import sha256_file
from cache.store import schema
from cache.store.layout import damaged
from cache.store.manifest import PartEntry

_WRITE_OPTIONS = dict(compression="zstd", write_page_checksum=True, write_statistics=True)


def write_parquet(path: Path, table: pa.Table) -> tuple[int, str]:
    """Atomically write `table` at `path`; return (bytes, sha256) of the published file."""
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, **_WRITE_OPTIONS)
        size = tmp.stat().st_size
        sha = sha256_file(tmp)
    return size, sha


def write_part(
    root: Path,
    relpath: str,
    table: pa.Table,
    *,
    table_name: str,
    created_at: str,
    generation_keys: Sequence[str] = (),
    encoder_fingerprint: str = "",
    dim: int = 0,
) -> PartEntry:
    size, sha = write_parquet(root / relpath, table)
    return PartEntry(
        table=table_name,
        file=relpath,
        rows=table.num_rows,
        bytes=size,
        sha256=sha,
        created_at=created_at,
        generation_keys=tuple(sorted(set(generation_keys))),
        encoder_fingerprint=encoder_fingerprint,
        dim=dim,
    )


def read_parquet_checked(
    path: Path, expected_bytes: int, expected_rows: int, columns: Sequence[str] | None
) -> pa.Table:
    """Read a committed Parquet file (optionally some columns), or raise UserError naming it."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise damaged(path, "missing, but listed in manifest.json") from None
    if size != expected_bytes:
        raise damaged(path, f"{size} bytes, manifest.json says {expected_bytes}")
    try:
        wanted = list(columns) if columns is not None else None
        file_schema = pq.read_schema(path)
        if _older_phrases_file(file_schema):  # read what it has; the later columns come as nulls
            present = set(file_schema.names)
            table = pq.read_table(path, columns=None if wanted is None else [c for c in wanted if c in present],
                                  page_checksum_verification=True)
            table = schema.with_later_columns(table, wanted)
        else:
            table = pq.read_table(path, columns=wanted, page_checksum_verification=True)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise damaged(path, f"unreadable Parquet: {' '.join(str(exc).split())[:200]}") from exc
    if table.num_rows != expected_rows:
        raise damaged(path, f"{table.num_rows} rows, manifest.json says {expected_rows}")
    return table


def _older_phrases_file(file_schema: pa.Schema) -> bool:
    """A phrases file written before schema.LATER_PHRASE_COLUMNS existed."""
    meta = file_schema.metadata or {}
    return (meta.get(b"sept.table") == schema.PHRASES.encode()
            and any(f.name not in file_schema.names for f in schema.LATER_PHRASE_COLUMNS))


def read_part(root: Path, entry: PartEntry, columns: Sequence[str] | None = None) -> pa.Table:
    return read_parquet_checked(root / entry.file, entry.bytes, entry.rows, columns)


def read_parts(root: Path, entries: Sequence[PartEntry], columns: Sequence[str], empty_schema: pa.Schema) -> pa.Table:
    """Concatenate the given columns of several parts (an empty table with those columns if none)."""
    tables = [read_part(root, e, columns) for e in entries]
    if not tables:
        return pa.schema([empty_schema.field(c) for c in columns]).empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
