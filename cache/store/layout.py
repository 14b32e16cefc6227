"""Where things live inside a store root, and how to tell committed files from leftovers.

<root>/manifest.json                       the commit record (manifest.py)
<root>/.lock                               flock: exclusive for writers, shared for readers
<root>/README.txt                          how to read the tables without sept-pipeline
<root>/phrases/part-*.parquet              neighbor phrases with provenance
<root>/classes/part-*.parquet              one status row per generated (class, generation key)
<root>/embeddings/<encoder>/part-*.parquet per-template embeddings, one folder per encoder
<root>/index/<encoder>/<set>-<sha>.faiss   FAISS index (+ .texts.parquet: id -> text)
<root>/damaged/                            files moved aside by repair(), never read
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cache.errors import UserError
from cache.store.keys import encoder_slug, new_part_stem
from cache.store.manifest import MANIFEST_NAME, Manifest
from cache.store.schema import CLASSES, EMBEDDINGS, PHRASES

LOCK_NAME = ".lock"
README_NAME = "README.txt"
DAMAGED_DIR = "damaged"
# Only these folders hold store files; anything in them that the manifest does not list is a leftover.
DATA_DIRS = (PHRASES, CLASSES, EMBEDDINGS, "index")


def lock_path(root: Path) -> Path:
    return root / LOCK_NAME


def new_part_relpath(table: str, encoder_fingerprint: str = "") -> str:
    if table == EMBEDDINGS:
        return f"{EMBEDDINGS}/{encoder_slug(encoder_fingerprint)}/{new_part_stem()}.parquet"
    return f"{table}/{new_part_stem()}.parquet"


def index_relpaths(encoder_fingerprint: str, template_set_id: str, sha: str) -> tuple[str, str]:
    stem = f"index/{encoder_slug(encoder_fingerprint)}/{template_set_id}-{sha[:16]}"
    return f"{stem}.faiss", f"{stem}.texts.parquet"


def damaged(path: Path, why: str) -> UserError:
    """The one-line error for a store file that cannot be trusted; nothing else is touched."""
    return UserError(
        f"neighbor-store file {path} is damaged ({why}); run `sept-pipeline neighbors verify` to list every "
        f"problem, then `sept-pipeline neighbors repair` to set damaged files aside so the next "
        f"run regenerates what they held"
    )


def leftover_files(root: Path, manifest: Manifest | None) -> list[Path]:
    """Files under the data folders (and temp manifests) that the committed manifest does not list."""
    listed = manifest.files() if manifest else set()
    out: list[Path] = []
    for top in DATA_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                if path.relative_to(root).as_posix() not in listed:
                    out.append(path)
    # Temp files of an interrupted manifest or README write (cache.atomic names them ".<name>.*.tmp").
    for name in (MANIFEST_NAME, README_NAME):
        out.extend(root.glob(f".{name}.*.tmp"))
    return sorted(out)


def remove_leftovers(root: Path, manifest: Manifest | None) -> int:
    """Delete leftovers. Callers hold the exclusive lock, so no live writer owns any of them."""
    removed = 0
    for path in leftover_files(root, manifest):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


README_TEXT = """\
sept-pipeline neighbor store (schema version 1)

manifest.json lists every committed file (with rows and sha256) and the names given to generation
keys ("names"). Files in the data folders that it does not list are leftovers of an interrupted write;
skip them (the next write removes them).

Tables (plain Parquet, zstd):
  phrases/*.parquet               class_name, phrase, rank (0-based), generation_key, LLM provenance
  classes/*.parquet               one row per generated (class_name, generation_key): num_kept, short
  embeddings/<encoder>/*.parquet  text, template, template_id, encoder_fingerprint, dim, dtype,
                                  embedding fixed_size_list<float32>[dim]
  index/<encoder>/*.faiss         FAISS inner-product index of the template-mean unit vector of
                                  every stored text (class names and phrases); the matching
                                  .texts.parquet maps row id -> text

Read with polars:  pl.read_parquet("phrases/*.parquet")
Read with duckdb:  SELECT * FROM 'phrases/*.parquet'
"""
