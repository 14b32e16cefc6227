"""Arrow schemas of the store's Parquet tables (schema version 1).

Plain column types only (strings, ints, bools, fixed_size_list<float32>), so polars, pyarrow and
duckdb read every file with no project code. Each file's schema metadata names its table.

- phrases:    one row per kept neighbor phrase, with full provenance. rank is 0-based (0 = first kept).
              votes (answers that proposed it, with self-consistency) and verify_score (P(yes) of the
              verification round) are null when not computed; files written before they existed lack
              both columns and read as nulls (LATER_PHRASE_COLUMNS).
- classes:    one row per (class_name, generation_key): the marker that the class was generated, even
              when cleaning left it short or empty, so reruns do not ask the LLM again.
- embeddings: one row per (text, template_id, encoder_fingerprint); `embedding` is what the caller
              gave (stage one stores unit vectors per template), bit-exact float32.
- index_texts: the id -> text mapping of one FAISS index (row id i is the i-th vector).
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

PHRASES = "phrases"
CLASSES = "classes"
EMBEDDINGS = "embeddings"
INDEX_TEXTS = "index_texts"
TABLES = (PHRASES, CLASSES, EMBEDDINGS)

# Provenance columns shared by the phrases and classes tables (docs/design.md, "Provenance").
_PROVENANCE = [
    pa.field("generation_key", pa.string(), nullable=False),
    pa.field("llm_id", pa.string(), nullable=False),
    pa.field("llm_revision", pa.string(), nullable=False),
    pa.field("llm_fingerprint", pa.string(), nullable=False),
    pa.field("engine", pa.string(), nullable=False),
    pa.field("engine_version", pa.string(), nullable=False),
    pa.field("prompt_hash", pa.string(), nullable=False),
    pa.field("prompt_version", pa.string(), nullable=False),
    pa.field("num_neighbors", pa.int32(), nullable=False),
    pa.field("sampling", pa.string(), nullable=False),  # JSON of the effective sampling parameters
    pa.field("seed", pa.int64(), nullable=False),
]


def _meta(table: str) -> dict[bytes, bytes]:
    return {b"sept.table": table.encode(), b"sept.schema_version": str(SCHEMA_VERSION).encode()}


# Nullable columns added to the phrases table after schema version 1 was frozen; older files lack them.
LATER_PHRASE_COLUMNS = (
    pa.field("votes", pa.int32(), nullable=True),
    pa.field("verify_score", pa.float32(), nullable=True),
)


def phrases_schema() -> pa.Schema:
    fields = [
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("phrase", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        *_PROVENANCE,
        pa.field("created_at", pa.string(), nullable=False),  # UTC ISO 8601
        *LATER_PHRASE_COLUMNS,
    ]
    return pa.schema(fields, metadata=_meta(PHRASES))


def with_later_columns(table: pa.Table, wanted: list[str] | None) -> pa.Table:
    """`table` (read from a phrases file written before LATER_PHRASE_COLUMNS) with those of them that are
    `wanted` (None: all, for a whole-file read) added as nulls, so old and new files read alike."""
    for f in LATER_PHRASE_COLUMNS:
        if f.name not in table.column_names and (wanted is None or f.name in wanted):
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    if wanted is not None:
        table = table.select(list(wanted))
    return table


def classes_schema() -> pa.Schema:
    fields = [
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("num_kept", pa.int32(), nullable=False),
        pa.field("short", pa.bool_(), nullable=False),  # num_kept < num_neighbors after all retries
        pa.field("rounds", pa.int32(), nullable=False),  # LLM rounds spent on this class
        *_PROVENANCE,
        pa.field("created_at", pa.string(), nullable=False),
    ]
    return pa.schema(fields, metadata=_meta(CLASSES))


def embedding_type(dim: int) -> pa.DataType:
    return pa.list_(pa.field("item", pa.float32(), nullable=False), dim)


def embeddings_schema(dim: int) -> pa.Schema:
    fields = [
        pa.field("text", pa.string(), nullable=False),
        pa.field("template", pa.string(), nullable=False),
        pa.field("template_id", pa.string(), nullable=False),
        pa.field("encoder_fingerprint", pa.string(), nullable=False),
        pa.field("dim", pa.int32(), nullable=False),
        pa.field("dtype", pa.string(), nullable=False),
        pa.field("embedding", embedding_type(dim), nullable=False),
        pa.field("created_at", pa.string(), nullable=False),
    ]
    return pa.schema(fields, metadata=_meta(EMBEDDINGS))


def index_texts_schema() -> pa.Schema:
    fields = [pa.field("id", pa.int64(), nullable=False), pa.field("text", pa.string(), nullable=False)]
    return pa.schema(fields, metadata=_meta(INDEX_TEXTS))


def expected_schema(table: str, dim: int | None = None) -> pa.Schema:
    if table == PHRASES:
        return phrases_schema()
    if table == CLASSES:
        return classes_schema()
    if table == EMBEDDINGS:
        if dim is None:
            raise ValueError("embeddings schema needs dim")
        return embeddings_schema(dim)
    if table == INDEX_TEXTS:
        return index_texts_schema()
    raise ValueError(f"unknown table {table!r}")
