"""NeighborStore: the public face of the neighbor store (Parquet + FAISS + manifest).

Concurrency: every write holds an exclusive flock on <root>/.lock from its first read of the manifest
to its commit, and re-checks what is stored inside the lock, so two processes never write the same
class or embedding twice. Reads hold a shared lock, so no writer deletes a file while it is read.
Crash safety: new files are written under fresh names and published by one atomic manifest rename;
a kill -9 before the rename leaves only unlisted leftovers, which readers ignore and the next write
removes. See layout.py for the folder layout and schema.py for the tables.
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cache.atomic import atomic_write_text
from cache.errors import UserError
from cache.fingerprint import cache_root
from cache.lock import file_lock
from cache.store import reading, schema
from cache.store.index_sync import load_index_and_texts, refresh_indexes
from cache.store.generations import Resolved, check_name
from cache.store.generations import resolve as resolve_generation
from cache.store.keys import template_id, template_set_id, utc_now_iso
from cache.store.layout import README_NAME, README_TEXT, leftover_files, lock_path, new_part_relpath, remove_leftovers
from cache.store.maintenance import compact_if_needed, repair
from cache.store.manifest import IndexEntry, Manifest, NameEntry, load_manifest, save_manifest
from cache.store.parts import write_part
from cache.store.reading import MissingFromStore, preview
from cache.store.records import ClassNeighbors, build_classes_table, build_embeddings_table, build_phrases_table
from cache.store.summary import generation_key_rows, store_summary
from cache.unit_vectors import unit_rows
from cache.store.verify import verify_store

STORE_DIRNAME = "neighbors"


@dataclass(frozen=True)
class PutPhrasesResult:
    written: list[str] = field(default_factory=list)  # classes stored by this call
    skipped: list[str] = field(default_factory=list)  # already stored (maybe by another process meanwhile)
    rows: int = 0  # phrase rows written


@dataclass(frozen=True)
class PutEmbeddingsResult:
    texts_written: int = 0  # texts that got at least one new row
    rows_written: int = 0  # (text, template) rows written
    rows_skipped: int = 0  # already stored
    index_rows: int = 0  # rows of this template set's index after the call


class NeighborStore:
    """The neighbor store under `root` (= <cache_dir>/neighbors; see `in_cache`)."""

    def __init__(self, root: str | os.PathLike, lock_timeout: float | None = None):
        self.root = Path(root).expanduser()
        self.lock_timeout = lock_timeout
        self._index_cache: dict[str, tuple[object, list[str], dict[str, int]]] = {}

    @classmethod
    def in_cache(cls, cache_dir: str | os.PathLike | None = None, **kwargs) -> "NeighborStore":
        """The store of a cache folder: `cache_dir`, else $SEPT_CACHE_DIR, else the per-user cache."""
        return cls(cache_root(cache_dir) / STORE_DIRNAME, **kwargs)

    def __repr__(self) -> str:
        return f"NeighborStore({str(self.root)!r})"

    # ---------------------------------------------------------------- locking
    @contextlib.contextmanager
    def _shared_lock(self) -> Iterator[None]:
        """Hold off writers (they delete replaced files only under the exclusive lock)."""
        try:
            lock = file_lock(lock_path(self.root), timeout=self.lock_timeout, shared=True)
            lock.__enter__()
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            lock = None  # a read-only store (shared, archived): no writer can run there either
        try:
            yield
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Manifest]:
        """The committed manifest, held stable for the block. Creates nothing if the store is absent."""
        if not self.root.exists():
            yield Manifest()
            return
        with self._shared_lock():
            yield load_manifest(self.root) or Manifest()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Manifest]:
        """Exclusive lock + the committed manifest, creating an empty store on first use."""
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(lock_path(self.root), timeout=self.lock_timeout):
            manifest = load_manifest(self.root)
            if manifest is None:
                data = leftover_files(self.root, None)
                if any(p.suffix in (".parquet", ".faiss") for p in data):
                    raise UserError(
                        f"neighbor-store manifest {self.root / 'manifest.json'} is missing but {len(data)} data files "
                        f"exist under {self.root}; restore the manifest or move the folder aside"
                    )
                manifest = Manifest(updated_at=utc_now_iso())
                save_manifest(self.root, manifest)
            if not (self.root / README_NAME).exists():
                atomic_write_text(self.root / README_NAME, README_TEXT)
            yield manifest

    def _commit(self, old: Manifest, new: Manifest) -> Manifest:
        """Publish `new` (one atomic rename), then delete files only `old` listed."""
        new = replace(new, commit=old.commit + 1, updated_at=utc_now_iso())
        save_manifest(self.root, new)
        for rel in sorted(old.files() - new.files()):
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()
        return new

    # ---------------------------------------------------------------- phrases
    def classes_present(self, classnames: Iterable[str], generation_key: str) -> set[str]:
        """Which of `classnames` were already generated under `generation_key` (short ones included)."""
        with self._reading() as m:
            return reading.classes_present(self.root, m, classnames, generation_key)

    def class_status(self, classnames: Iterable[str] | None, generation_key: str | None = None) -> list[dict]:
        """Status rows (class_name, num_kept, short, rounds, provenance...) of stored classes."""
        with self._reading() as m:
            return reading.class_rows(self.root, m, None if classnames is None else list(classnames), generation_key)

    def get_phrases(
        self, classnames: Sequence[str], generation_key: str, allow_missing: bool = False
    ) -> dict[str, list[str]]:
        """Class -> its stored phrases, best (rank 0) first; MissingFromStore if a class was never generated."""
        with self._reading() as m:
            return reading.phrases_by_class(self.root, m, classnames, generation_key, allow_missing)

    def phrase_rows(self, classnames: Iterable[str] | None = None, generation_key: str | None = None) -> list[dict]:
        """Full phrase rows with provenance (for `neighbors show`), ordered by key, class, rank."""
        with self._reading() as m:
            table = reading.read_phrases_table(self.root, m, generation_key)
        if classnames is not None:
            table = table.filter(pc.is_in(table["class_name"], pa.array(list(classnames), pa.string())))
        return table.sort_by(
            [("generation_key", "ascending"), ("class_name", "ascending"), ("rank", "ascending")]
        ).to_pylist()

    def generation_keys(self) -> list[dict]:
        """One dict per stored generation key: its provenance and counts of classes, phrases, short classes."""
        with self._reading() as m:
            return generation_key_rows(reading.read_classes_table(self.root, m))

    def keys_covering(self, classnames: Iterable[str]) -> list[str]:
        """Generation keys under which every one of `classnames` is stored, newest first."""
        wanted = set(classnames)
        rows = self.generation_keys()
        return [r["generation_key"] for r in rows if wanted <= set(r["class_names"])]

    def put_phrases(
        self, items: Iterable[ClassNeighbors], name: str | None = None, force_name: bool = False
    ) -> PutPhrasesResult:
        """Store whole classes (their phrases and a status row). A class already stored under its
        generation key (by an earlier run or, meanwhile, another process) is skipped: never duplicated.

        `name`: also name the items' one generation key, in the same manifest commit (see `name_generation`).
        """
        items = list(items)
        keys = [(i.class_name, i.generation_key) for i in items]
        if len(set(keys)) != len(keys):
            raise ValueError(f"put_phrases got a class twice: {sorted({k for k in keys if keys.count(k) > 1})}")
        named_key = _one_key(items, name)
        if not items:
            return PutPhrasesResult()
        with self._writing() as m:
            remove_leftovers(self.root, m)  # of the committed manifest only: the edits below add files
            m2, result = self._phrases_edit(m, items)
            if name is not None:
                m2 = _named(m2, name, named_key, force_name, self.root)
            if m2 is not m:
                self._commit(m, m2)
            return result

    def _phrases_edit(self, m: Manifest, items: list[ClassNeighbors]) -> tuple[Manifest, PutPhrasesResult]:
        """The manifest with `items`' new classes written (their files exist; nothing is committed here)."""
        keys = [(i.class_name, i.generation_key) for i in items]
        present: set[tuple[str, str]] = set()
        for gkey in {k for _, k in keys}:
            names = [c for c, k in keys if k == gkey]
            present |= {(c, gkey) for c in reading.classes_present(self.root, m, names, gkey)}
        new = [i for i in items if (i.class_name, i.generation_key) not in present]
        skipped = [i.class_name for i in items if (i.class_name, i.generation_key) in present]
        if not new:
            return m, PutPhrasesResult(skipped=skipped)
        now = utc_now_iso()
        gkeys = [i.generation_key for i in new]
        added = []
        ph = build_phrases_table(new, now)
        if ph.num_rows:
            added.append(
                write_part(
                    self.root,
                    new_part_relpath(schema.PHRASES),
                    ph,
                    table_name=schema.PHRASES,
                    created_at=now,
                    generation_keys=gkeys,
                )
            )
        cl = build_classes_table(new, now)
        added.append(
            write_part(
                self.root,
                new_part_relpath(schema.CLASSES),
                cl,
                table_name=schema.CLASSES,
                created_at=now,
                generation_keys=gkeys,
            )
        )
        m2 = m.with_parts(added)
        m2 = compact_if_needed(self.root, m2, schema.PHRASES)
        m2 = compact_if_needed(self.root, m2, schema.CLASSES)
        return m2, PutPhrasesResult(written=[i.class_name for i in new], skipped=skipped, rows=ph.num_rows)

    # ---------------------------------------------------------------- names
    def names(self) -> dict[str, str]:
        """Name -> generation key, for every name in the store."""
        with self._reading() as m:
            return {e.name: e.generation_key for e in m.names}

    def check_name_free(self, name: str, generation_key: str, force: bool = False) -> str:
        """`name` if it may name `generation_key` (free, already its name, or `force`), else a UserError."""
        check_name(name)
        with self._reading() as m:
            _named(m, name, generation_key, force, self.root)
        return name

    def name_generation(self, name: str, generation_key: str, force: bool = False) -> bool:
        """Let `name` stand for `generation_key` (stored already) in `sept.generation` and the commands.

        A name is unique in the store: giving it to another key is a UserError unless `force` (the name moves;
        the generation it named keeps its rows and key). Returns False when it already named this key.
        """
        check_name(name)
        with self._writing() as m:
            if not reading.read_classes_table(self.root, m, generation_key).num_rows:
                raise UserError(f"--name {name}: generation key {generation_key} is not in the store {self.root}")
            m2 = _named(m, name, generation_key, force, self.root)
            if m2 is m:
                return False
            self._commit(m, m2)
            return True

    def resolve_generation(self, asked: str, classnames: Iterable[str], templates: Sequence[str],
                           encoder_fingerprint: str, fix=None, where: str = "sept.generation") -> Resolved:
        """`sept.generation` ("auto", a key or a name) -> the generation it means (cache/store/generations.py)."""
        return resolve_generation(self, asked, classnames, templates, encoder_fingerprint, fix, where)

    # ---------------------------------------------------------------- one generation in one commit
    def put_generation(
        self,
        items: Sequence[ClassNeighbors],
        texts: Sequence[str],
        templates: Sequence[str],
        encoder_fingerprint: str,
        vectors: np.ndarray,
        name: str | None = None,
        force_name: bool = False,
    ) -> tuple[PutPhrasesResult, PutEmbeddingsResult]:
        """Phrases, their embeddings (vectors[i, t] of texts[i] under templates[t]) and a name, published by
        one manifest rename: a process killed before it leaves the store as it was (`neighbors import`)."""
        items = list(items)
        named_key = _one_key(items, name)
        texts, templates = list(texts), list(templates)
        vectors = _check_vectors(texts, templates, encoder_fingerprint, vectors)
        with self._writing() as m:
            remove_leftovers(self.root, m)
            m2, phrases = self._phrases_edit(m, items) if items else (m, PutPhrasesResult())
            m2, embeddings = self._embeddings_edit(m2, texts, templates, encoder_fingerprint, vectors)
            if name is not None:
                m2 = _named(m2, name, named_key, force_name, self.root)
            if m2 is not m:
                self._commit(m, m2)
            return phrases, embeddings

    # ---------------------------------------------------------------- embeddings
    def missing_embeddings(self, texts: Iterable[str], templates: Sequence[str], encoder_fingerprint: str) -> list[str]:
        """Texts (deduplicated, input order) lacking a stored embedding under any of `templates`."""
        with self._reading() as m:
            return reading.missing_texts(self.root, m, list(texts), list(templates), encoder_fingerprint)

    def get_embeddings(self, texts: Sequence[str], templates: Sequence[str], encoder_fingerprint: str) -> np.ndarray:
        """float32 [n, T, D], bit-exact as stored; MissingFromStore (listing them) if any pair is missing."""
        with self._reading() as m:
            return reading.embeddings_array(self.root, m, list(texts), list(templates), encoder_fingerprint)

    def stored_vectors(self, texts: Iterable[str]) -> list[tuple[str, list[str], list[str], np.ndarray]]:
        """Every stored embedding of `texts`, per encoder: [(fingerprint, texts, templates, float32 [rows, D])],
        bit-exact, whichever templates each text was stored under."""
        with self._reading() as m:
            return reading.stored_vectors(self.root, m, list(texts))

    def put_embeddings(
        self, texts: Sequence[str], templates: Sequence[str], encoder_fingerprint: str, vectors: np.ndarray
    ) -> PutEmbeddingsResult:
        """Store vectors[i, t] = embedding of texts[i] under templates[t] (float32 [n, T, D]).

        Pairs already stored are skipped (checked inside the lock). Unit-normalising each template's
        vector is the caller's job: the store keeps exactly what it is given. The encoder's FAISS
        indexes (and one for this template set) are rebuilt in the same commit.
        """
        texts, templates = list(texts), list(templates)
        vectors = _check_vectors(texts, templates, encoder_fingerprint, vectors)
        if not texts:
            return PutEmbeddingsResult()
        with self._writing() as m:
            remove_leftovers(self.root, m)  # of the committed manifest only: the edit below adds files
            m2, result = self._embeddings_edit(m, texts, templates, encoder_fingerprint, vectors)
            if m2 is not m:
                self._commit(m, m2)
            return result

    def _embeddings_edit(
        self, m: Manifest, texts: list[str], templates: list[str], encoder_fingerprint: str, vectors: np.ndarray
    ) -> tuple[Manifest, PutEmbeddingsResult]:
        """The manifest with the new (text, template) rows and this encoder's indexes rebuilt (uncommitted)."""
        first = {}
        for i, x in enumerate(texts):
            first.setdefault(x, i)  # a text given twice: its first vectors win
        tids = [template_id(t) for t in templates]
        if not first:
            return m, PutEmbeddingsResult()
        dim = reading.encoder_dim(m, encoder_fingerprint)
        if dim is not None and dim != vectors.shape[2]:
            raise UserError(
                f"encoder {encoder_fingerprint} has {dim}-d embeddings in {self.root}, got {vectors.shape[2]}-d; "
                f"a changed model needs a changed encoder fingerprint"
            )
        stored = reading.stored_pairs(self.root, m, encoder_fingerprint)
        rows = [(i, t) for x, i in first.items() for t in range(len(templates)) if (x, tids[t]) not in stored]
        set_id = template_set_id(tids)
        has_index = any(e.template_set_id == set_id for e in m.indexes_of(encoder_fingerprint))
        if not rows and has_index:
            return m, PutEmbeddingsResult(
                rows_skipped=len(first) * len(templates),
                index_rows=self._index_rows(m, encoder_fingerprint, set_id),
            )
        # Read every stored vector before writing anything: a damaged part stops us here, untouched.
        old_texts, old_tids, old_matrix = reading.embedding_rows(self.root, m, encoder_fingerprint)
        m2 = m
        dim = vectors.shape[2]
        new_texts = [texts[i] for i, _ in rows]
        new_templates = [templates[t] for _, t in rows]
        flat = np.stack([vectors[i, t] for i, t in rows]) if rows else np.zeros((0, dim), np.float32)
        if rows:
            now = utc_now_iso()
            table = build_embeddings_table(new_texts, new_templates, encoder_fingerprint, flat, now)
            part = write_part(
                self.root,
                new_part_relpath(schema.EMBEDDINGS, encoder_fingerprint),
                table,
                table_name=schema.EMBEDDINGS,
                created_at=now,
                encoder_fingerprint=encoder_fingerprint,
                dim=dim,
            )
            m2 = compact_if_needed(self.root, m2.with_parts([part]), schema.EMBEDDINGS, encoder_fingerprint)
        all_rows = (
            old_texts + new_texts,
            old_tids + [template_id(t) for t in new_templates],
            np.concatenate([old_matrix.reshape(-1, dim), flat]),
        )
        m2 = refresh_indexes(self.root, m2, encoder_fingerprint, all_rows, dim, templates)
        return m2, PutEmbeddingsResult(
            texts_written=len({i for i, _ in rows}),
            rows_written=len(rows),
            rows_skipped=len(first) * len(templates) - len(rows),
            index_rows=self._index_rows(m2, encoder_fingerprint, set_id),
        )

    @staticmethod
    def _index_rows(m: Manifest, encoder_fingerprint: str, set_id: str) -> int:
        return next((e.rows for e in m.indexes_of(encoder_fingerprint) if e.template_set_id == set_id), 0)

    # ---------------------------------------------------------------- search
    def indexes(self, encoder_fingerprint: str | None = None) -> list[IndexEntry]:
        with self._reading() as m:
            return [e for e in m.indexes if encoder_fingerprint in (None, e.encoder_fingerprint)]

    def _pick_index(self, m: Manifest, encoder_fingerprint: str, templates: Sequence[str] | None) -> IndexEntry:
        entries = m.indexes_of(encoder_fingerprint)
        if templates is not None:
            want = template_set_id([template_id(t) for t in templates])
            entries = [e for e in entries if e.template_set_id == want]
        if len(entries) == 1:
            return entries[0]
        if not entries:
            stored = sorted({e.encoder_fingerprint for e in m.indexes})
            raise MissingFromStore(
                f"no FAISS index in {self.root} for encoder {encoder_fingerprint}"
                + (f" and these {len(templates)} templates" if templates is not None else "")
                + f" (indexed encoders: {preview(stored) or 'none'})",
                [encoder_fingerprint],
            )
        raise UserError(
            f"encoder {encoder_fingerprint} has {len(entries)} indexes in {self.root} (template sets "
            f"{', '.join(e.template_set_id for e in entries)}); pass the templates to choose one"
        )

    def _load(self, m: Manifest, entry: IndexEntry):
        cached = self._index_cache.get(entry.file)
        if cached is None:
            index, texts = load_index_and_texts(self.root, entry)
            cached = (index, texts, {t: i for i, t in enumerate(texts)})
            self._index_cache = {entry.file: cached}  # keep one: files are immutable, named by content
        return cached

    def search(
        self, encoder_fingerprint: str, queries: np.ndarray, k: int, templates: Sequence[str] | None = None
    ) -> list[list[tuple[str, float]]]:
        """For each query vector (float [q, D], normalised here), the k most cosine-similar stored texts."""
        from cache.store.faiss_index import search_index

        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        with self._reading() as m:
            entry = self._pick_index(m, encoder_fingerprint, templates)
            if queries.shape[1] != entry.dim:
                raise ValueError(
                    f"queries are {queries.shape[1]}-d, the index of {encoder_fingerprint} is {entry.dim}-d"
                )
            index, texts, _ = self._load(m, entry)
        scores, ids = search_index(index, unit_rows(queries).astype(np.float32), max(0, min(k, entry.rows)))
        return [[(texts[j], float(s)) for s, j in zip(srow, irow) if j >= 0] for srow, irow in zip(scores, ids)]

    def nearest(
        self,
        encoder_fingerprint: str,
        texts: Sequence[str],
        k: int,
        among: Iterable[str] | None = None,
        templates: Sequence[str] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """For each stored text, the k most similar other stored texts (optionally only those in `among`):
        e.g. a class name's nearest other-class neighbors, for inspection (training ranks its hardest
        negatives by the margins instead: docs/method.md, `inter_negatives = "hardest:h"`)."""
        from cache.store.faiss_index import search_index

        with self._reading() as m:
            entry = self._pick_index(m, encoder_fingerprint, templates)
            index, stored, where = self._load(m, entry)
        missing = [x for x in dict.fromkeys(texts) if x not in where]
        candidates = None
        if among is not None:
            among = list(dict.fromkeys(among))
            missing += [x for x in among if x not in where and x not in missing]
            candidates = [where[x] for x in among if x in where]
        if missing:
            raise MissingFromStore(
                f"{len(missing)} texts are not in the FAISS index of encoder {encoder_fingerprint}: {preview(missing)}",
                missing,
            )
        if not texts:
            return []
        pool = len(candidates) if candidates is not None else entry.rows
        query = np.stack([index.reconstruct(where[x]) for x in texts])
        scores, ids = search_index(index, query, max(0, min(k + 1, pool)), candidates)
        out = []
        for x, srow, irow in zip(texts, scores, ids):
            hits = [(stored[j], float(s)) for s, j in zip(srow, irow) if j >= 0 and stored[j] != x]
            out.append(hits[:k])
        return out

    # ---------------------------------------------------------------- inspection and upkeep
    def manifest(self) -> Manifest:
        with self._reading() as m:
            return m

    def summary(self) -> dict:
        """Counts for `neighbors ls`: classes, phrases, generation keys, encoders, indexes, bytes."""
        with self._reading() as m:
            return store_summary(self.root, m)

    def verify(self) -> list[str]:
        """Every disagreement between manifest, files, tables and indexes, one line each ([] = clean)."""
        if not self.root.exists():
            return []
        with self._shared_lock():
            return verify_store(self.root)

    def leftovers(self) -> list[Path]:
        """Unlisted files of interrupted writes (harmless; the next write removes them)."""
        with self._reading() as m:
            return leftover_files(self.root, m) if self.root.exists() else []

    def repair(self) -> list[str]:
        """Set damaged files aside under damaged/, keep what is consistent, rebuild indexes, remove
        leftovers. What was lost is regenerated by the next `generate-neighbors`. Returns the actions."""
        if not self.root.exists():
            return []
        with self._writing() as m:
            actions = []
            gone = remove_leftovers(self.root, m)
            if gone:
                actions.append(f"removed {gone} leftover files of interrupted writes")
            if not verify_store(self.root):
                return actions
            m2, more = repair(self.root, m)
            self._commit(m, m2)
            self._index_cache.clear()
            return actions + more


def _one_key(items: Sequence[ClassNeighbors], name: str | None) -> str | None:
    """The one generation key a `name` goes to (a ValueError when the items span several keys or none)."""
    if name is None:
        return None
    check_name(name)
    keys = {i.generation_key for i in items}
    if len(keys) != 1:
        raise ValueError(f"a name goes to one generation key; the items carry {len(keys)}")
    return keys.pop()


def _named(m: Manifest, name: str, generation_key: str, force: bool, root: Path) -> Manifest:
    """`m` with `name` naming `generation_key` (`m` itself when it already does)."""
    current = m.key_of_name(name)
    if current == generation_key:
        return m
    if current is not None and not force:
        raise UserError(
            f"--name {name}: already names generation {current} in the store {root}; choose another name, or pass "
            f"--force-name to move it to generation {generation_key}"
        )
    return m.with_name(NameEntry(name, generation_key, utc_now_iso()))


def _check_vectors(texts: list[str], templates: list[str], encoder_fingerprint: str, vectors) -> np.ndarray:
    """Shape and content checks of put_embeddings' arguments (caller bugs: ValueError)."""
    if not encoder_fingerprint or not isinstance(encoder_fingerprint, str):
        raise ValueError("encoder_fingerprint must be a non-empty string")
    for x in texts:
        if not isinstance(x, str) or not x.strip():
            raise ValueError(f"texts must be non-blank strings, got {x!r}")
    if not templates or len(set(templates)) != len(templates):
        raise ValueError(f"templates must be distinct and at least one, got {templates!r}")
    arr = np.asarray(vectors)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"vectors must be floating point, got {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)  # float32 input is kept bit-exact
    if arr.ndim != 3 or arr.shape[0] != len(texts) or arr.shape[1] != len(templates) or arr.shape[2] < 1:
        raise ValueError(
            f"vectors must be [len(texts)={len(texts)}, len(templates)={len(templates)}, D], got {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or inf")
    return arr
