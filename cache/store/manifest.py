"""The manifest: the one file that says what the store holds.

Parquet parts and index files are immutable once written; a write becomes visible only when the
manifest that lists it is atomically replaced. Files that no manifest lists are leftovers of a killed
writer: readers ignore them and the next writer removes them. So the manifest rename is the commit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cache.atomic import atomic_write_json
from cache.errors import UserError
from cache.store.schema import SCHEMA_VERSION, TABLES

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class PartEntry:
    """One immutable Parquet file of a table."""

    table: str  # phrases | classes | embeddings
    file: str  # path relative to the store root, '/'-separated
    rows: int
    bytes: int
    sha256: str
    created_at: str
    generation_keys: tuple[str, ...] = ()  # phrases/classes: the keys its rows carry (lets reads skip parts)
    encoder_fingerprint: str = ""  # embeddings: the one encoder of all its rows
    dim: int = 0  # embeddings: D


@dataclass(frozen=True)
class IndexEntry:
    """One FAISS index: template-mean unit vectors of every text of one encoder that has all templates."""

    encoder_fingerprint: str
    template_set_id: str
    template_ids: tuple[str, ...]
    templates: tuple[str, ...]
    dim: int
    rows: int
    metric: str  # inner_product over unit vectors = cosine
    file: str
    bytes: int
    sha256: str
    texts_file: str  # Parquet: id -> text
    texts_bytes: int
    texts_sha256: str
    created_at: str

    def files(self) -> tuple[str, str]:
        return (self.file, self.texts_file)


@dataclass(frozen=True)
class NameEntry:
    """A name given to one generation key (generate-neighbors --name, neighbors import --name): unique per store."""

    name: str
    generation_key: str
    created_at: str


@dataclass(frozen=True)
class Manifest:
    commit: int = 0
    parts: tuple[PartEntry, ...] = ()
    indexes: tuple[IndexEntry, ...] = ()
    updated_at: str = ""
    schema_version: int = SCHEMA_VERSION
    # Optional in the file (absent before names existed; older readers ignore it): no schema version bump.
    names: tuple[NameEntry, ...] = ()

    # -- queries ---------------------------------------------------------------------------------
    def parts_of(self, table: str, encoder_fingerprint: str | None = None) -> list[PartEntry]:
        return [
            p
            for p in self.parts
            if p.table == table and (encoder_fingerprint is None or p.encoder_fingerprint == encoder_fingerprint)
        ]

    def encoders(self) -> list[str]:
        return sorted({p.encoder_fingerprint for p in self.parts if p.table == "embeddings"})

    def indexes_of(self, encoder_fingerprint: str) -> list[IndexEntry]:
        return [i for i in self.indexes if i.encoder_fingerprint == encoder_fingerprint]

    def key_of_name(self, name: str) -> str | None:
        return next((e.generation_key for e in self.names if e.name == name), None)

    def names_of(self, generation_key: str) -> list[str]:
        return sorted(e.name for e in self.names if e.generation_key == generation_key)

    def files(self) -> set[str]:
        out = {p.file for p in self.parts}
        for i in self.indexes:
            out.update(i.files())
        return out

    # -- edits (return new manifests; the store commits them) ------------------------------------
    def with_parts(self, added: list[PartEntry], removed: list[PartEntry] = ()) -> "Manifest":
        drop = {p.file for p in removed}
        return replace(self, parts=tuple(p for p in self.parts if p.file not in drop) + tuple(added))

    def with_index(self, entry: IndexEntry) -> "Manifest":
        keep = tuple(
            i
            for i in self.indexes
            if (i.encoder_fingerprint, i.template_set_id) != (entry.encoder_fingerprint, entry.template_set_id)
        )
        return replace(self, indexes=keep + (entry,))

    def with_name(self, entry: NameEntry) -> "Manifest":
        """`entry.name` now names `entry.generation_key` (an existing entry of that name is replaced)."""
        return replace(self, names=tuple(e for e in self.names if e.name != entry.name) + (entry,))

    def to_json(self) -> dict:
        return {
            "store": "sept-pipeline neighbor store",
            "schema_version": self.schema_version,
            "commit": self.commit,
            "updated_at": self.updated_at,
            "parts": [asdict(p) for p in self.parts],
            "indexes": [asdict(i) for i in self.indexes],
            "names": [asdict(e) for e in sorted(self.names, key=lambda e: e.name)],
        }


def manifest_path(root: Path) -> Path:
    return root / MANIFEST_NAME


def _corrupt(path: Path, why: str) -> UserError:
    return UserError(
        f"neighbor-store manifest {path} is unreadable ({why}); restore it from a backup or move the folder "
        f"{path.parent} aside to start a fresh store"
    )


def load_manifest(root: Path) -> Manifest | None:
    """The committed manifest, or None when the store was never created."""
    path = manifest_path(root)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _corrupt(path, exc.strerror or str(exc)) from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(path, f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise _corrupt(path, "not a JSON object")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(
            f"neighbor-store manifest {path} has schema_version {version!r}; this sept-pipeline reads "
            f"version {SCHEMA_VERSION} only (use a matching sept-pipeline, or another --cache-dir)"
        )
    try:
        parts = tuple(_part_from_json(p) for p in data["parts"])
        indexes = tuple(_index_from_json(i) for i in data["indexes"])
        names = tuple(
            NameEntry(str(e["name"]), str(e["generation_key"]), str(e.get("created_at", "")))
            for e in data.get("names", [])
        )
        manifest = Manifest(
            commit=int(data["commit"]),
            parts=parts,
            indexes=indexes,
            updated_at=str(data.get("updated_at", "")),
            names=names,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(path, f"missing or malformed entry: {exc!r}") from exc
    for p in manifest.parts:
        if p.table not in TABLES:
            raise _corrupt(path, f"part {p.file} has unknown table {p.table!r}")
    return manifest


def _part_from_json(d: dict) -> PartEntry:
    return PartEntry(
        table=str(d["table"]),
        file=str(d["file"]),
        rows=int(d["rows"]),
        bytes=int(d["bytes"]),
        sha256=str(d["sha256"]),
        created_at=str(d["created_at"]),
        generation_keys=tuple(str(k) for k in d.get("generation_keys", ())),
        encoder_fingerprint=str(d.get("encoder_fingerprint", "")),
        dim=int(d.get("dim", 0)),
    )


def _index_from_json(d: dict) -> IndexEntry:
    return IndexEntry(
        encoder_fingerprint=str(d["encoder_fingerprint"]),
        template_set_id=str(d["template_set_id"]),
        template_ids=tuple(str(t) for t in d["template_ids"]),
        templates=tuple(str(t) for t in d["templates"]),
        dim=int(d["dim"]),
        rows=int(d["rows"]),
        metric=str(d["metric"]),
        file=str(d["file"]),
        bytes=int(d["bytes"]),
        sha256=str(d["sha256"]),
        texts_file=str(d["texts_file"]),
        texts_bytes=int(d["texts_bytes"]),
        texts_sha256=str(d["texts_sha256"]),
        created_at=str(d["created_at"]),
    )


def save_manifest(root: Path, manifest: Manifest) -> None:
    """Commit: atomically replace the manifest (temp file + fsync + rename)."""
    atomic_write_json(manifest_path(root), manifest.to_json())
