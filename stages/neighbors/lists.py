"""Neighbor lists in and out of the store: the `{class: [phrases]}` shape of CuPL and DCLIP, JSON Lines of
`{class, phrase}`, and Parquet (class, phrase, rank).

Export writes one generation's phrases, best first, with a provenance sidecar (FILE.provenance.json); the
Parquet shape also carries every stored embedding of its texts (class names and phrases), per encoder
fingerprint and template, bit-exact. Import reads such a file, runs stage one's cleaning rules on it
(cleaning.py's text rules, then the near-duplicate filter of filters.py on the backbone's frozen embeddings;
what each rule dropped is reported), takes the vectors a Parquet file carries for the backbone's fingerprint
under every template of text.templates as they are, encodes what is still lacking with the backbone's frozen
text tower, and stores the phrases as a generation of their own (provenance "imported": the file's sha256 and
a label for who wrote it). Phrases, embeddings and the name are published by one manifest commit: a failed or killed import leaves the store
as it was. No LLM anywhere: an imported list trains on a machine that never had one.

The file is refused whole, with one line naming the first problem, when it is not UTF-8, not JSON (or JSON
Lines, or Parquet), not of the shape above, has an empty list, or goes over the limits below.
"""
from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from cache.errors import UserError
from cache.fingerprint import sha256_bytes, sha256_json, short

# Limits of an imported file (documented in docs/store.md; the error names the one that was hit).
MAX_FILE_BYTES = 64 * 2**20          # a list of 1,000 classes x 100 phrases is about 3 MB
MAX_CLASSES = 20_000
MAX_PHRASES_PER_CLASS = 1_000        # CuPL writes 50-100 per class, DCLIP about 5-10
MAX_PHRASE_CHARS = 1_000             # stage one keeps at most neighbors.max_chars (60) anyway
MAX_CLASS_CHARS = 200
FORMATS = ("json", "jsonl", "parquet")
# Version of the import rule (which cleaning runs, how the key is made): part of an imported generation's key.
IMPORT_RULE = "import-v1"

# The Parquet export's embedding columns: per row, the stored vectors of its class name and of its phrase, one
# entry per (encoder fingerprint, template). A list of structs rather than one column per encoder, so a file can
# carry any number of encoders and template sets and still be read by any Parquet reader.
VECTOR_COLUMNS = {"class_embeddings": "class", "phrase_embeddings": "phrase"}
# A carried vector must be a unit vector like the ones stage one stores (float32 rounding is ~1e-7).
UNIT_NORM_TOLERANCE = 1e-4


def vectors_type():
    """list<struct<encoder_fingerprint: string, template: string, vector: list<float32>>>."""
    import pyarrow as pa

    return pa.list_(pa.struct([pa.field("encoder_fingerprint", pa.string()), pa.field("template", pa.string()),
                               pa.field("vector", pa.list_(pa.float32()))]))


@dataclass
class NeighborList:
    """A parsed file: class -> phrases in file order, and what it was."""

    classes: dict[str, list[str]]
    format: str
    sha256: str
    source: str
    # encoder fingerprint -> text -> template -> float32 [D], as the file carries them (Parquet export only)
    vectors: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)

    def vectors_for(self, encoder_fp: str, templates: Sequence[str]) -> dict[str, np.ndarray]:
        """text -> float32 [T, D] for the texts the file carries under this encoder and every one of `templates`
        (in that order): the vectors an import adopts instead of encoding."""
        out = {}
        for text, per_template in self.vectors.get(encoder_fp, {}).items():
            if all(t in per_template for t in templates):
                out[text] = np.stack([per_template[t] for t in templates])
        return out

    def vectors_summary(self) -> list[dict]:
        """[{encoder_fingerprint, dim, templates, texts}] of what the file carries."""
        out = []
        for fp in sorted(self.vectors):
            texts = self.vectors[fp]
            templates = sorted({t for per in texts.values() for t in per})
            dim = len(next(iter(next(iter(texts.values())).values())))
            out.append({"encoder_fingerprint": fp, "dim": dim, "templates": templates, "texts": len(texts)})
        return out


def _bad(where: str, why: str) -> UserError:
    return UserError(f"neighbor list {where}: {why}; nothing was stored")


def read_list(path: str) -> NeighborList:
    """The neighbor list in `path` ('-' = standard input), checked whole before anything is stored."""
    where = "<stdin>" if path == "-" else str(path)
    if path == "-":
        raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
    else:
        p = Path(path)
        if not p.is_file():
            raise _bad(where, "not found (expected a .json, .jsonl or .parquet file, or - for standard input)")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise _bad(where, f"{p.stat().st_size} bytes; at most {MAX_FILE_BYTES} (MAX_FILE_BYTES)")
        raw = p.read_bytes()
    if len(raw) > MAX_FILE_BYTES:
        raise _bad(where, f"more than {MAX_FILE_BYTES} bytes (MAX_FILE_BYTES)")
    return parse_list(raw, where)


def parse_list(raw: bytes, where: str) -> NeighborList:
    digest = sha256_bytes(raw)
    if raw[:4] == b"PAR1":
        pairs, vectors = _parquet_pairs(raw, where)
        return NeighborList(_checked(pairs, where), "parquet", digest, where, vectors)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _bad(where, f"not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
    if not text.strip():
        raise _bad(where, "empty file")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as e:
        raise _bad(where, f"class {e.args[0]!r} appears twice") from None
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip().startswith("{"):  # several JSON values: JSON Lines
            return NeighborList(_checked(_jsonl_pairs(text, where), where), "jsonl", digest, where)
        raise _bad(where, f"not JSON ({e.msg} at line {e.lineno} column {e.colno}); expected {{class: [phrases]}} "
                          f"or JSON Lines of {{\"class\": ..., \"phrase\": ...}}") from None
    if isinstance(obj, dict) and set(obj) >= {"class", "phrase"} and isinstance(obj.get("phrase"), str):
        return NeighborList(_checked(_jsonl_pairs(text, where), where), "jsonl", digest, where)  # one line
    if not isinstance(obj, dict):
        raise _bad(where, f"wrong shape: a JSON {type(obj).__name__}, expected an object {{class: [phrases]}} "
                          f"(CuPL/DCLIP) or JSON Lines of {{\"class\": ..., \"phrase\": ...}}")
    pairs = []
    for c, phrases in obj.items():
        if not isinstance(phrases, list):
            raise _bad(where, f"wrong shape: class {c!r} maps to a JSON {type(phrases).__name__}, expected a list "
                              f"of phrases")
        for i, p in enumerate(phrases):
            if not isinstance(p, str):
                raise _bad(where, f"wrong shape: class {c!r}, item {i + 1} is a JSON {type(p).__name__}, expected "
                                  f"a string")
        pairs.append((c, phrases))
    return NeighborList(_checked(pairs, where), "json", digest, where)


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(items):
    seen = {}
    for k, v in items:
        if k in seen:
            raise _DuplicateKey(k)
        seen[k] = v
    return seen


def _jsonl_pairs(text: str, where: str) -> list[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise _bad(where, f"line {n}: not JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("class"), str) or not isinstance(row.get("phrase"), str):
            raise _bad(where, f"line {n}: wrong shape, expected {{\"class\": \"...\", \"phrase\": \"...\"}}")
        grouped.setdefault(row["class"], []).append(row["phrase"])
        if len(grouped[row["class"]]) > MAX_PHRASES_PER_CLASS:
            raise _bad(where, f"class {row['class']!r} has more than {MAX_PHRASES_PER_CLASS} phrases "
                              f"(MAX_PHRASES_PER_CLASS)")
    return list(grouped.items())


def _parquet_pairs(raw: bytes, where: str) -> tuple[list[tuple[str, list[str]]], dict]:
    """(class -> phrases in rank order, the vectors the file carries: see NeighborList.vectors)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(raw))
    except (pa.ArrowException, OSError) as e:
        raise _bad(where, f"not a readable Parquet file ({e})") from None
    if not {"class", "phrase"} <= set(table.column_names) or not all(
            pa.types.is_string(table.schema.field(c).type) or pa.types.is_large_string(table.schema.field(c).type)
            for c in ("class", "phrase")):
        raise _bad(where, f"wrong shape: Parquet columns {table.column_names}, expected string columns class and "
                          f"phrase (and rank)")
    if "rank" in table.column_names:
        table = table.sort_by([("class", "ascending"), ("rank", "ascending")])
    grouped: dict[str, list[str]] = {}
    for c, p in zip(table["class"].to_pylist(), table["phrase"].to_pylist()):
        if c is None or p is None:
            raise _bad(where, "a null class or phrase")
        grouped.setdefault(c, []).append(p)
    return list(grouped.items()), _carried_vectors(table, where)


def _is_vectors_type(t) -> bool:
    """Whether `t` is vectors_type() up to the names of list items (Parquet readers call them item or element)."""
    import pyarrow as pa

    if not pa.types.is_list(t) or not pa.types.is_struct(t.value_type):
        return False
    fields = {f.name: f.type for f in t.value_type}
    return (list(fields) == ["encoder_fingerprint", "template", "vector"]
            and fields["encoder_fingerprint"] == pa.string() and fields["template"] == pa.string() and pa.types.is_list(fields["vector"])
            and fields["vector"].value_type == pa.float32())


def _carried_vectors(table, where: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The class_embeddings / phrase_embeddings columns of an exported Parquet file, checked whole: one encoder's
    vectors all of one length, finite, of unit norm, and one text carrying one vector per (encoder, template)."""
    from cache.unit_vectors import row_norms

    carried: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    dims: dict[str, int] = {}
    for column, text_column in VECTOR_COLUMNS.items():
        if column not in table.column_names:
            continue
        if not _is_vectors_type(table.schema.field(column).type):
            raise _bad(where, f"wrong shape: Parquet column {column} is {table.schema.field(column).type}, expected "
                              f"{vectors_type()} (what `neighbors export --format parquet` writes)")
        col = table[column].combine_chunks()
        parents = col.value_parent_indices().to_numpy(zero_copy_only=False)
        fps, templates, vecs = col.flatten().flatten()  # entries, parent list offsets and nulls applied
        if fps.null_count or templates.null_count or vecs.null_count:
            raise _bad(where, f"Parquet column {column}: an entry with a null encoder_fingerprint, template or vector")
        starts = np.concatenate([[0], np.cumsum(vecs.value_lengths().to_numpy(zero_copy_only=False))])
        values = vecs.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        texts = table[text_column].to_pylist()
        for i, (fp, template) in enumerate(zip(fps.to_pylist(), templates.to_pylist())):
            text, v = texts[parents[i]], values[starts[i]:starts[i + 1]]
            what = f"Parquet column {column}, {text_column} {text!r}, encoder {fp!r}, template {template!r}"
            if not fp.strip() or not template:
                raise _bad(where, f"{what}: a blank encoder fingerprint or template")
            if dims.setdefault(fp, len(v)) != len(v) or not len(v):
                raise _bad(where, f"{what}: a {len(v)}-d vector; this encoder's other vectors are {dims[fp]}-d")
            norm = float(row_norms(v))
            if not np.isfinite(v).all() or abs(norm - 1.0) > UNIT_NORM_TOLERANCE:
                raise _bad(where, f"{what}: not a finite unit vector (norm {norm:.6g}); stored embeddings are unit "
                                  f"per template")
            per_template = carried.setdefault(fp, {}).setdefault(text, {})
            if template in per_template and not np.array_equal(per_template[template].view(np.uint32),
                                                               v.view(np.uint32)):
                raise _bad(where, f"{what}: carried twice with different values")
            per_template[template] = v
    return carried


def _checked(pairs: list[tuple[str, list[str]]], where: str) -> dict[str, list[str]]:
    """Class names as given (outer whitespace stripped), every limit and emptiness checked."""
    if not pairs:
        raise _bad(where, "no classes")
    if len(pairs) > MAX_CLASSES:
        raise _bad(where, f"{len(pairs)} classes; at most {MAX_CLASSES} (MAX_CLASSES)")
    from stages.neighbors.generation import check_classes

    try:
        names = check_classes([c for c, _ in pairs], f"neighbor list {where}")
    except UserError as e:
        raise UserError(f"{e}; nothing was stored") from None
    out: dict[str, list[str]] = {}
    for name, (_, phrases) in zip(names, pairs):
        if len(name) > MAX_CLASS_CHARS:
            raise _bad(where, f"class {name[:40]!r}... is {len(name)} characters; at most {MAX_CLASS_CHARS} "
                              f"(MAX_CLASS_CHARS)")
        if not phrases:
            raise _bad(where, f"class {name!r} has an empty list (give it at least one phrase, or leave it out)")
        if len(phrases) > MAX_PHRASES_PER_CLASS:
            raise _bad(where, f"class {name!r} has {len(phrases)} phrases; at most {MAX_PHRASES_PER_CLASS} per class "
                              f"(MAX_PHRASES_PER_CLASS)")
        for i, p in enumerate(phrases):
            if len(p) > MAX_PHRASE_CHARS:
                raise _bad(where, f"class {name!r}, phrase {i + 1} is {len(p)} characters; at most "
                                  f"{MAX_PHRASE_CHARS} (MAX_PHRASE_CHARS)")
        out[name] = list(phrases)
    return out


# ------------------------------------------------------------------------------------------------ cleaning
@dataclass
class Cleaned:
    kept: dict[str, list[str]]
    dropped: dict[str, int] = field(default_factory=dict)              # rule -> phrases it dropped
    dropped_phrases: dict[str, list[list[str]]] = field(default_factory=dict)  # class -> [[phrase, rule]]
    embedding_filter: str = "on"

    def drop(self, c: str, phrase: str, rule: str) -> None:
        self.dropped[rule] = self.dropped.get(rule, 0) + 1
        self.dropped_phrases.setdefault(c, []).append([phrase, rule])


def clean_text(lists: dict[str, list[str]], neighbors_cfg) -> Cleaned:
    """Stage one's text rules (cleaning.py: normalise, drop empty, too long, other script, prose, the class name,
    repeats, truncations and reorderings of it), each class on its own, its order kept."""
    from stages.neighbors.cleaning import drop_reason, normalize

    out = Cleaned({})
    for c, phrases in lists.items():
        key, seen, kept = normalize(c), set(), []
        for raw in phrases:
            p = normalize(raw)
            reason = drop_reason(p, key, seen, neighbors_cfg.max_words, neighbors_cfg.max_chars,
                                 neighbors_cfg.same_script)
            if reason:
                out.drop(c, raw, reason)
                continue
            seen.add(p)
            kept.append(p)
        out.kept[c] = kept
    return out


def drop_near_duplicates(cleaned: Cleaned, vectors, near_duplicate_cos: float) -> None:
    """Stage one's near-duplicate filter (filters.py) over each class's kept phrases, in order; off (and said so)
    when neighbors.near_duplicate_cos >= 1 or when the encoder does not separate stage one's probe texts."""
    from stages.neighbors.filters import PROBE_TEXTS, select_neighbors, separates_texts

    if near_duplicate_cos >= 1.0:
        cleaned.embedding_filter = "off (neighbors.near_duplicate_cos >= 1)"
        return
    useful, mean_cos = separates_texts(vectors.mean(PROBE_TEXTS), near_duplicate_cos)
    if not useful:
        cleaned.embedding_filter = (f"off: the encoder does not separate texts (mean cosine {mean_cos:.4f} between "
                                    f"fixed probe texts >= neighbors.near_duplicate_cos {near_duplicate_cos})")
        return
    for c, phrases in cleaned.kept.items():
        if not phrases:
            continue
        sel = select_neighbors(vectors.mean(phrases), len(phrases), near_duplicate_cos)
        for i, reason in sel.dropped:
            cleaned.drop(c, phrases[i], reason)
        cleaned.kept[c] = [phrases[i] for i in sel.kept]


# ------------------------------------------------------------------------------------------------ encoding
def cached_embeddings(store, backbone_id: str, cfg, cache: Path, encoder_fp: str,
                      carried: dict[str, np.ndarray] | None = None):
    """The store's embeddings of this backbone, else the file's (`carried`), else the text tower's
    (encoding.CachedEmbeddings; the tower loads only if something must be encoded)."""
    from stages.neighbors.encoding import CachedEmbeddings, TextEncoder

    encoder = TextEncoder(backbone_id, cfg.backbone, str(cache), cfg.backbone.text_batch_size)
    return CachedEmbeddings(store, encoder, list(cfg.text.templates), encoder_fp, carried)


def store_generation(store, items, vectors, name: str | None, force_name: bool) -> dict:
    """Embed every class name and phrase of `items` for the backbone and store it all in one commit."""
    texts = list(dict.fromkeys([i.class_name for i in items] + [p for i in items for p in i.phrases]))
    new, arr = vectors.new_rows(texts)
    vectors.release()
    phrases, embeddings = store.put_generation(items, new, vectors.templates, vectors.fp, arr, name=name,
                                               force_name=force_name)
    adopted = sum(1 for t in new if t in vectors.adopted)
    return {"classes_stored": len(phrases.written), "classes_already_stored": len(phrases.skipped),
            "phrases_stored": phrases.rows, "texts_encoded": embeddings.texts_written - adopted,
            "texts_adopted": adopted, "texts_reused": len(texts) - embeddings.texts_written,
            "index_rows": embeddings.index_rows}


def sept_pipeline_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sept-pipeline")
    except PackageNotFoundError:
        return "unknown"


def import_list(path: str, cfg, cache_dir, backbone: str | None, name: str, llm_label: str = "",
                force_name: bool = False) -> dict:
    """`neighbors import`: parse, clean, encode and store a neighbor list as a generation named `name`."""
    from cache.fingerprint import cache_root
    from cache.store import ClassNeighbors, NeighborStore, Provenance
    from cache.store.generations import check_name
    from stages.backbones.fingerprint import encoder_fingerprint
    from stages.neighbors.keys import CLEANING_RULE

    check_name(name)
    lists = read_list(path)
    cache = cache_root(cache_dir)
    backbone_id = backbone or cfg.backbone.id
    encoder_fp = encoder_fingerprint(cfg.backbone, cache, spec=backbone_id)
    store = NeighborStore.in_cache(cache)
    n = cfg.neighbors
    rules = {"import": IMPORT_RULE, "cleaning": CLEANING_RULE, "max_words": n.max_words, "max_chars": n.max_chars,
             "same_script": n.same_script, "near_duplicate_cos": n.near_duplicate_cos}
    cleaned = clean_text(lists.classes, n)
    templates = list(cfg.text.templates)
    vectors = cached_embeddings(store, backbone_id, cfg, cache, encoder_fp, lists.vectors_for(encoder_fp, templates))
    drop_near_duplicates(cleaned, vectors, n.near_duplicate_cos)
    most = max(len(v) for v in cleaned.kept.values())
    if most == 0:
        raise _bad(lists.source, f"the cleaning rules left no phrase for any of its {len(lists.classes)} classes "
                                 f"(dropped: {cleaned.dropped})")
    prov = Provenance(llm_id=llm_label or "unlabelled", llm_revision="", llm_fingerprint=f"sha256:{lists.sha256}",
                      engine="imported", engine_version=sept_pipeline_version(),
                      prompt_hash=short(sha256_json(rules)), prompt_version="imported", num_neighbors=most)
    store.check_name_free(name, prov.generation_key, force_name)  # before the encoder runs
    sampling = {"source": "imported", "file": Path(lists.source).name, "file_sha256": lists.sha256,
                "format": lists.format, "label": llm_label, "rules": rules,
                "embedding_filter": cleaned.embedding_filter}
    items = [ClassNeighbors(c, cleaned.kept[c], prov, sampling, 0, rounds=0) for c in lists.classes]
    stored = store_generation(store, items, vectors, name, force_name)
    return {
        "store": str(store.root), "generation_key": prov.generation_key, "generation_name": name,
        "file": lists.source, "file_sha256": lists.sha256, "format": lists.format, "llm_label": llm_label,
        "classes": len(lists.classes), "phrases_in_file": sum(map(len, lists.classes.values())),
        "phrases_kept": sum(map(len, cleaned.kept.values())), "dropped": cleaned.dropped,
        "dropped_phrases": cleaned.dropped_phrases, "embedding_filter": cleaned.embedding_filter,
        "classes_empty": [c for c, v in cleaned.kept.items() if not v], "num_neighbors": most,
        "encoder_fingerprint": encoder_fp, "templates": len(vectors.templates), **stored,
        "file_vectors": _file_vectors_note(lists, encoder_fp, templates, stored),
        "file_vectors_carried": lists.vectors_summary(),
    }


def _file_vectors_note(lists: NeighborList, encoder_fp: str, templates: list[str], stored: dict) -> str:
    """One line on what became of the vectors the file carries (the CLI prints it when they were not used)."""
    if not lists.vectors:
        return "none: the file carries phrases only; texts the store lacked were encoded"
    if stored["texts_adopted"] and not stored["texts_encoded"]:
        return f"adopted: {stored['texts_adopted']} texts' vectors taken as the file carries them for {encoder_fp}"
    carried = "; ".join(f"{c['encoder_fingerprint']} ({len(c['templates'])} templates)"
                        for c in lists.vectors_summary())
    if stored["texts_adopted"]:
        return (f"partly adopted: {stored['texts_adopted']} texts taken from the file, {stored['texts_encoded']} "
                f"encoded again (the file carries no vectors for them under {encoder_fp} and the "
                f"{len(templates)} templates of text.templates)")
    if not stored["texts_encoded"]:
        return "unused: the store already held every text's vectors for this encoder"
    return (f"re-encoded: the file carries vectors for {carried}, not for {encoder_fp} under the {len(templates)} "
            f"templates of text.templates; {stored['texts_encoded']} texts were encoded again")


# ------------------------------------------------------------------------------------------------ export
def export_rows(store, key: str) -> tuple[dict[str, list[str]], dict]:
    """(class -> phrases best first, for every class of generation `key` that has any; the provenance record)."""
    rows = [r for r in store.generation_keys() if r["generation_key"] == key]
    if not rows:
        raise UserError(f"generation {key}: not in the store {store.root} (see `sept-pipeline neighbors ls`)")
    row = rows[0]
    phrases = store.get_phrases(row["class_names"], key)
    sampling = store.phrase_rows(row["class_names"][:1], key)[:1]
    provenance = {
        "generation_key": key, "names": sorted(n for n, k in store.names().items() if k == key),
        **{k: row[k] for k in ("llm_id", "llm_revision", "llm_fingerprint", "engine", "engine_version",
                               "prompt_version", "prompt_hash", "num_neighbors")},
        "sampling": json.loads(sampling[0]["sampling"]) if sampling else None,
        "first_created_at": row["first_created_at"], "last_created_at": row["last_created_at"],
        "classes": sum(1 for v in phrases.values() if v), "phrases": sum(map(len, phrases.values())),
        "classes_without_phrases": sorted(c for c, v in phrases.items() if not v),
        "short_classes": row["short_classes"],
    }
    return {c: phrases[c] for c in sorted(phrases) if phrases[c]}, provenance


def render(lists: dict[str, list[str]], fmt: str, stored: Sequence[tuple] = ()) -> bytes:
    """The file's bytes; the Parquet shape also carries `stored` (NeighborStore.stored_vectors of its texts)."""
    if fmt == "json":
        return (json.dumps(lists, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if fmt == "jsonl":
        return "".join(json.dumps({"class": c, "phrase": p}, ensure_ascii=False) + "\n"
                       for c, ps in lists.items() for p in ps).encode("utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    classes = [c for c, ps in lists.items() for _ in ps]
    phrases = [p for ps in lists.values() for p in ps]
    by_text: dict[str, list[tuple[str, str, np.ndarray]]] = {}
    for fp, texts, templates, matrix in stored:
        for text, template, v in zip(texts, templates, matrix):
            by_text.setdefault(text, []).append((fp, template, v))
    table = pa.table({"class": classes, "phrase": phrases,
                      "rank": pa.array([k for ps in lists.values() for k in range(len(ps))], pa.int32()),
                      "class_embeddings": _vectors_column(classes, by_text),
                      "phrase_embeddings": _vectors_column(phrases, by_text)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _vectors_column(row_texts: list[str], by_text: dict):
    """One list<struct> cell per row: every (encoder, template, vector) stored for the row's text (built from flat
    arrays, so the float32 values go into the file exactly as the store holds them)."""
    import pyarrow as pa

    fps, templates, vecs, offsets = [], [], [], [0]
    for text in row_texts:
        for fp, template, v in by_text.get(text, ()):
            fps.append(fp)
            templates.append(template)
            vecs.append(v)
        offsets.append(len(fps))
    vec_offsets = np.concatenate([[0], np.cumsum([len(v) for v in vecs], dtype=np.int64)]).astype(np.int32)
    values = pa.array(np.concatenate(vecs) if vecs else np.zeros(0, np.float32), pa.float32())
    entries = pa.StructArray.from_arrays(
        [pa.array(fps, pa.string()), pa.array(templates, pa.string()),
         pa.ListArray.from_arrays(pa.array(vec_offsets, pa.int32()), values)],
        fields=list(vectors_type().value_type))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), entries, type=vectors_type())


def export_generation(store, key: str, fmt: str, out: Path | None) -> dict:
    """Write generation `key` as `fmt` to `out` (atomically, with OUT.provenance.json) or return the bytes."""
    from cache.atomic import atomic_write_bytes, atomic_write_json
    from cache.store.keys import utc_now_iso

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: one of {', '.join(FORMATS)}")
    lists, provenance = export_rows(store, key)
    stored = ()
    if fmt == "parquet":  # JSON and JSON Lines are the peers' phrases-only shapes
        stored = store.stored_vectors(list(lists) + [p for ps in lists.values() for p in ps])
    data = render(lists, fmt, stored)
    carried = [{"encoder_fingerprint": fp, "dim": int(m.shape[1]), "templates": sorted(set(tpls)),
                "texts": len(set(texts))} for fp, texts, tpls, m in stored]
    provenance = {**provenance, "format": fmt, "embeddings": carried, "exported_at": utc_now_iso(),
                  "file_sha256": sha256_bytes(data), "sept_pipeline": sept_pipeline_version()}
    if out is not None:
        out = Path(out)
        sidecar = out.with_name(out.name + ".provenance.json")
        atomic_write_bytes(out, data)
        atomic_write_json(sidecar, provenance)
        provenance["file"], provenance["provenance_file"] = str(out), str(sidecar)
    return {"data": data, "provenance": provenance}


__all__ = ["FORMATS", "MAX_CLASSES", "MAX_CLASS_CHARS", "MAX_FILE_BYTES", "MAX_PHRASES_PER_CLASS",
           "MAX_PHRASE_CHARS", "export_generation", "import_list", "read_list"]


# ------------------------------------------------------------------------------------------------ encode
def encode_generation(cfg, cache_dir, backbone: str | None, generation: str, classes: list[str] | None) -> dict:
    """`neighbors encode`: frozen embeddings of a stored generation's class names and phrases for a backbone
    (under [text] templates), for the texts the store lacks. No LLM: any generation, from any machine."""
    from cache.fingerprint import cache_root
    from cache.store import NeighborStore
    from stages.backbones.fingerprint import encoder_fingerprint

    cache = cache_root(cache_dir)
    backbone_id = backbone or cfg.backbone.id
    encoder_fp = encoder_fingerprint(cfg.backbone, cache, spec=backbone_id)
    store = NeighborStore.in_cache(cache)
    templates = list(cfg.text.templates)
    chosen = store.resolve_generation(generation, [], templates, encoder_fp, where="--generation")
    stored = next(r for r in store.generation_keys() if r["generation_key"] == chosen.key)["class_names"]
    wanted = stored if classes is None else classes
    absent = [c for c in wanted if c not in set(stored)]
    if absent:
        raise UserError(f"generation {chosen.key}: {len(absent)} of the {len(wanted)} classes are not stored under "
                        f"it: {', '.join(repr(c) for c in absent[:5])}{' ...' if len(absent) > 5 else ''}")
    phrases = store.get_phrases(wanted, chosen.key)
    texts = list(dict.fromkeys(list(wanted) + [p for c in wanted for p in phrases[c]]))
    vectors = cached_embeddings(store, backbone_id, cfg, cache, encoder_fp)
    new, arr = vectors.new_rows(texts)
    vectors.release()
    result = store.put_embeddings(new, templates, encoder_fp, arr) if new else None
    if result is None:  # nothing new: still make sure this template set has its index
        result = store.put_embeddings(texts, templates, encoder_fp, store.get_embeddings(texts, templates, encoder_fp))
    return {"store": str(store.root), **chosen.record(), "classes": len(wanted), "texts": len(texts),
            "texts_encoded": len(new), "encoder_fingerprint": encoder_fp, "templates": len(templates),
            "index_rows": result.index_rows}
