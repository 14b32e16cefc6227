"""Stage one end to end: generate, clean, filter, encode and store the neighbors of a class list.

    summary = generate_neighbors(classes, cfg, cache_dir)

Order of work, and why:
1. Resolve everything torch-free (LLM fingerprint, prompt hash, generation key, encoder fingerprint),
   check the files this run relies on (cache/store/verify.py: check_files) and ask the store what is
   missing. When nothing is, return: a warm rerun imports neither torch, transformers, vLLM nor faiss.
2. Classes missing under the key go to ONE LLM worker (worker.py, its own process, started once per run;
   the request and the session are in worker_launch.py), which keeps its engine for the whole run. Each
   round is one batched chat call; the worker ranks each class's answers into candidates
   (ranking.rank_answers: text cleaning, votes, verification) and returns those.
3. Here, beside the waiting worker, the frozen text tower encodes the candidates under the T templates
   (on the CPU; on a GPU beside the engine when both fit, devices.gpu_plan); near-duplicates within the
   class are dropped (filters.py); up to N are kept. Each class is selected on its own: what is stored
   for a class never depends on which other classes were generated alongside (the class boundary is a
   tune-time view over the store). Classes left short are asked again, with fresh seeds, while the round
   budget (1 + max_retries) lasts; then the worker closes its engine and exits.
4. Whole classes are stored (short ones too, flagged, so reruns do not ask again), then the embeddings
   of every text the class list needs that the store lacks.

A per-key lock serialises two runs of the same generation on one cache: the second waits, then finds
the classes present. A `kill -9` anywhere leaves the store as it was before the unfinished write; the
rerun redoes only what was not committed.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cache.errors import UserError
from cache.fingerprint import cache_root
from cache.lock import file_lock
from cache.store import ClassNeighbors, NeighborStore, Provenance, template_id, template_set_id
from cache.store.verify import check_files
from stages.neighbors import cleaning, worker_log
from stages.neighbors.encoding import CachedEmbeddings
from stages.neighbors.keys import GenerationIdentity, resolve_generation
from stages.neighbors.ranking import Candidate
from stages.neighbors.worker_launch import sampling_spec, worker_request, worker_session


def check_classes(classes: Sequence[str], where: str) -> list[str]:
    """Class names as given (outer whitespace stripped); empty, blank or duplicated ones are UserErrors."""
    names = [str(c).strip() for c in classes]
    if not names:
        raise UserError(f"{where}: no class names (give one class name per line)")
    for i, (raw, name) in enumerate(zip(classes, names), 1):
        if not name:
            raise UserError(f"{where}: class {i} is blank; every line must name a class")
    seen: dict[str, int] = {}
    for i, name in enumerate(names, 1):
        key = cleaning.normalize(name)
        if key in seen:
            raise UserError(f"{where}: class {name!r} (line {i}) repeats line {seen[key]}; each class once")
        seen[key] = i
    return names


@dataclass
class RunStats:
    llm_requests: int = 0
    llm_rounds: int = 0
    worker_starts: int = 0
    engine: str = ""
    engine_version: str = ""
    engine_dtype: str = ""
    engine_dtype_reason: str = ""
    engine_startup_seconds: float = 0.0
    generate_seconds: float = 0.0
    tokens: int = 0
    truncated_answers: int = 0
    unseeded: int = 0  # requests that ran on another request's seed (sampled transformers batches)
    filters: str = "on"  # embedding filters: "on" or why they were off
    encoder_device: str = ""  # where the encoder ran beside the engine ("" = the backbone config's choice)
    encode_seconds: float = 0.0
    texts_encoded: int = 0
    dropped: dict = field(default_factory=dict)  # reason -> count


def _recorded_sampling(cfg, stats: RunStats) -> dict:
    spec = sampling_spec(cfg)
    structured = "json" if spec.pop("json_schema") is not None else "none"
    if structured == "json" and stats.engine != "vllm":
        structured = "json-prompted"  # transformers: asked for JSON in the prompt, not constrained
    out = {**spec, "structured_output": structured, "output_format": cfg.neighbors.output_format,
           "overgenerate": cfg.neighbors.overgenerate, "seed_rule": "sha256(seed:round:class[\\x00setK])",
           "verify_threshold": cfg.neighbors.verify_threshold, "dtype": stats.engine_dtype}
    if stats.unseeded:
        out["seed_rule"] += f"; {stats.unseeded} request(s) shared their batch's seed (transformers batches)"
    return out


def _progress(line: str) -> None:
    """Our own progress lines: on stderr, so that stdout stays a --json summary."""
    print(line, file=sys.stderr, flush=True)


@dataclass
class _Classes:
    """What the run knows of each missing class: its candidates so far (worker-ranked, round after round),
    those the embedding filter kept, and how many rounds it was asked in."""

    names: list[str]
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    kept: dict[str, list[Candidate]] = field(default_factory=dict)
    rounds: dict[str, int] = field(default_factory=dict)
    filtered: dict[str, list[str]] = field(default_factory=dict)  # the filter's reasons, latest selection

    def __post_init__(self):
        for c in self.names:
            self.candidates[c], self.kept[c], self.rounds[c], self.filtered[c] = [], [], 0, []

    def short(self, need: int) -> list[str]:
        return [c for c in self.names if len(self.kept[c]) < need]


def _ask(llm, classes: _Classes, pending: list[str], round_index: int, stats: RunStats) -> None:
    """One round of the worker for the `pending` classes; their new ranked candidates join the earlier ones."""
    resp = llm.ask(pending, round_index, {c: [x.phrase for x in classes.candidates[c]] for c in pending})
    _progress(f"LLM: round {round_index + 1}: {resp['requests']} answers for {len(pending)} classes, "
              f"{resp['generate_seconds']:.1f} s")
    stats.llm_requests += resp["requests"]
    stats.llm_rounds += 1
    stats.generate_seconds += resp["generate_seconds"]
    for reason, k in resp["dropped"].items():
        stats.dropped[reason] = stats.dropped.get(reason, 0) + k
    for c, r in resp["classes"].items():
        classes.rounds[c] += 1
        for a in r["answers"]:
            stats.unseeded += not a.get("seeded", True)
            stats.tokens += a["tokens"]
            stats.truncated_answers += a["finish"] == "length"
        classes.candidates[c] += [Candidate.from_json(x) for x in r["candidates"]]


def _select(cfg, classes: _Classes, emb: CachedEmbeddings, useful: bool, stats: RunStats) -> None:
    """Each class's kept neighbors: its candidates in rank order, near-duplicates among them dropped by their
    frozen embeddings (filters.py), up to N. One class at a time: nothing here looks at another class."""
    from stages.neighbors.filters import select_neighbors

    n = cfg.neighbors
    if useful:
        todo = [x.phrase for c in classes.names for x in classes.candidates[c]]
        if [t for t in todo if t not in emb.vectors]:
            _progress(f"encoding the candidates of {len(classes.names)} classes for the near-duplicate filter"
                      + (" (the LLM engine waits)" if stats.engine else ""))
        emb.ensure(todo)
    for c in classes.names:
        cands = classes.candidates[c]
        if not useful:
            classes.kept[c] = cands[:n.num_neighbors]
            continue
        sel = select_neighbors(emb.mean([x.phrase for x in cands]), n.num_neighbors, n.near_duplicate_cos)
        classes.kept[c] = [cands[i] for i in sel.kept]
        classes.filtered[c] = [reason for _, reason in sel.dropped]


def _filters_useful(cfg, emb: CachedEmbeddings, stats: RunStats) -> bool:
    """Whether the embedding filter runs at all: off when asked (near_duplicate_cos >= 1), and off when the
    encoder cannot tell texts apart. That is a property of the encoder and the templates, judged on fixed
    probe texts, never on the class list of this call."""
    from stages.neighbors.filters import PROBE_TEXTS, separates_texts

    n = cfg.neighbors
    if n.near_duplicate_cos >= 1.0:
        stats.filters = "off (neighbors.near_duplicate_cos >= 1)"
        return False
    emb.ensure(PROBE_TEXTS)
    useful, mean_cos = separates_texts(emb.mean(PROBE_TEXTS), n.near_duplicate_cos)
    if not useful:
        stats.filters = (f"off: the encoder does not separate texts (mean cosine {mean_cos:.4f} between "
                         f"fixed probe texts >= neighbors.near_duplicate_cos {n.near_duplicate_cos}); "
                         f"text cleaning only")
        print(f"warning: embedding filters {stats.filters}", file=sys.stderr)
    return useful


def _to_records(cfg, ident: GenerationIdentity, classes: _Classes, stats: RunStats) -> list[ClassNeighbors]:
    provenance = Provenance(
        llm_id=ident.llm["id"], llm_revision=ident.llm["revision"], llm_fingerprint=ident.llm["fingerprint"],
        engine=stats.engine, engine_version=stats.engine_version, prompt_hash=ident.prompt_hash,
        prompt_version=ident.template.version, num_neighbors=cfg.neighbors.num_neighbors)
    sampling = _recorded_sampling(cfg, stats)
    items = []
    for c in classes.names:
        for reason in classes.filtered[c]:  # the filter's drops of the selection that was stored
            stats.dropped[reason] = stats.dropped.get(reason, 0) + 1
        ks = classes.kept[c]
        items.append(ClassNeighbors(c, [x.phrase for x in ks], provenance, sampling,
                                    seed=[x.seed for x in ks] if ks else 0, rounds=classes.rounds[c],
                                    votes=[x.votes for x in ks], verify_scores=[x.verify_score for x in ks]))
    return items


def _generate_missing(cfg, ident: GenerationIdentity, missing: list[str], emb: CachedEmbeddings, cache_dir: Path,
                      stats: RunStats, verbose: bool = False, encoder_weight_bytes: int | None = None
                      ) -> list[ClassNeighbors]:
    """Generate, clean and select the neighbors of each missing class, each class on its own, on one engine.

    One plain loop: ask the worker for a round, run the embedding filter, collect the classes still short,
    ask again while the round budget (1 + neighbors.max_retries) lasts. The worker (and its engine) stays up
    for the whole loop; the encoder runs here meanwhile. Nothing compares one class with another: a class's
    rows are the same whether it is generated alone or with fifty others (the LLM batch aside, see
    docs/method.md).
    """
    n = cfg.neighbors
    budget = 1 + n.max_retries
    classes = _Classes(list(missing))
    request = worker_request(cfg, ident, missing, cache_dir, encoder_weight_bytes)
    _progress(f"LLM ({n.backend}): asking for the neighbors of {len(missing)} classes, up to {budget} round(s) "
              f"on one engine" + ("" if verbose else f" (engine log: {worker_log.log_path(cache_dir)})"))
    with worker_session(request, cache_dir, verbose) as llm:
        stats.worker_starts += 1
        import torch

        # On a CPU the encoder works here while the engine starts (is the encoder able to separate texts at
        # all: its probe texts). On a GPU it loads only once the engine has taken its share of the device, on
        # the device the worker's plan gives it (devices.gpu_plan).
        useful = None if torch.cuda.is_available() else _filters_useful(cfg, emb, stats)
        ready = llm.wait_ready()
        stats.engine, stats.engine_version = ready["engine"], ready["engine_version"]
        stats.engine_dtype, stats.engine_dtype_reason = ready["dtype"], ready["dtype_reason"]
        stats.engine_startup_seconds += ready["startup_seconds"]
        _progress(f"LLM: {ready['engine']} {ready['engine_version']} started in {ready['startup_seconds']:.1f} s; "
                  f"dtype {ready['dtype']} ({ready['dtype_reason']})")
        if useful is None:
            if cfg.backbone.device == "auto":
                emb.encoder.use_device(ready["encoder_device"])
            stats.encoder_device = ready["encoder_device"]
            _progress(f"encoder: {ready['placement']}")
            useful = _filters_useful(cfg, emb, stats)
        pending = list(missing)
        for round_index in range(budget):
            _ask(llm, classes, pending, round_index, stats)
            _select(cfg, classes, emb, useful, stats)
            pending = classes.short(n.num_neighbors)
            if not pending:
                break
    return _to_records(cfg, ident, classes, stats)


# ------------------------------------------------------------------------------------------------
# The entry point


def generate_neighbors(classes: Sequence[str], cfg, cache_dir: str | os.PathLike | None = None,
                       backbone: str | None = None, verbose: bool = False, task: str = "",
                       name: str | None = None, force_name: bool = False) -> dict:
    """Make sure every class has its neighbors and every needed text its embeddings; return a summary.

    cfg: the root Config (sections neighbors, backbone, text). backbone: overrides cfg.backbone.id.
    verbose: the LLM engine's own log lines on stderr instead of CACHE/logs/llm-worker.log.
    task: the dataset's task, context for prompts with {task} (neighbors.task wins when set).
    name: also name the generation (sept.generation = NAME), in the manifest commit of its phrases.
    """
    t0 = time.perf_counter()
    classes = check_classes(classes, "class list")
    cache = cache_root(cache_dir)
    backbone_id = backbone or cfg.backbone.id
    ident = resolve_generation(cfg.neighbors, cache, task)  # checks --llm and the prompt first
    from stages.backbones.fingerprint import encoder_fingerprint

    encoder_fp = encoder_fingerprint(cfg.backbone, cache, spec=backbone_id)
    templates = list(cfg.text.templates)
    store = NeighborStore.in_cache(cache)
    naming = {"name": store.check_name_free(name, ident.key, force_name), "force_name": force_name} if name else {}
    stats = RunStats()
    (cache / "tmp").mkdir(parents=True, exist_ok=True)
    from stages.neighbors import leftovers

    leftovers.report(cache / "tmp" / leftovers.RECORDS)  # an engine a killed run left holds memory (stderr)
    lock = cache / "locks" / f"generate-{ident.key}.lock"
    with file_lock(lock):
        check_files(store, ident.key, encoder_fp, templates)  # before anything is read or written
        present = store.classes_present(classes, ident.key)
        missing = [c for c in classes if c not in present]
        encoder = _lazy_encoder(backbone_id, cfg, cache)
        emb = CachedEmbeddings(store, encoder, templates, encoder_fp)
        written = []
        if missing:
            items = _generate_missing(cfg, ident, missing, emb, cache, stats, verbose,
                                      encoder_weight_bytes=_encoder_weight_bytes(backbone_id, cfg))
            written = store.put_phrases(items, **naming).written
        phrases = store.get_phrases(classes, ident.key)
        texts = list(dict.fromkeys(list(classes) + [p for c in classes for p in phrases[c]]))
        todo = store.missing_embeddings(texts, templates, encoder_fp)
        if todo:
            emb.ensure(todo)  # reuses what the filters already encoded
            import numpy as np

            vectors = np.stack([emb.vectors[t] for t in todo])
            store.put_embeddings(todo, templates, encoder_fp, vectors)
        encoder.release()
        if naming and not written:  # nothing new to commit it with
            store.name_generation(name, ident.key, force_name)
        _ensure_index(store, texts, templates, encoder_fp)
        status = store.class_status(classes, ident.key)
        index_rows = _index_entry(store, templates, encoder_fp).rows
    short_rows = sorted((r for r in status if r["short"]), key=lambda r: classes.index(r["class_name"]))
    stats.texts_encoded = encoder.texts_encoded
    stats.encode_seconds = encoder.seconds
    return {
        "classes": len(classes),
        "llm_requests": stats.llm_requests,
        "llm_rounds": stats.llm_rounds,
        "engine_starts": stats.worker_starts,
        "classes_generated": len(written),
        "classes_reused": len(classes) - len(missing),
        "phrases_encoded": len(todo),
        "phrases_reused": len(texts) - len(todo),
        "phrases_kept": sum(len(v) for v in phrases.values()),
        "texts_encoded_for_filters": stats.texts_encoded,
        "classes_short": [r["class_name"] for r in short_rows],
        "classes_short_counts": {r["class_name"]: r["num_kept"] for r in short_rows},
        "store": str(store.root),
        "generation_key": ident.key,
        "generation_name": name or "",
        "llm_fingerprint": ident.llm["fingerprint"],
        "prompt_hash": ident.prompt_hash,
        "prompt": ident.template.path,
        "task": ident.task,
        "encoder_fingerprint": encoder_fp,
        "templates": len(templates),
        "index_rows": index_rows,
        "engine": stats.engine or None,
        "engine_version": stats.engine_version or None,
        "engine_dtype": stats.engine_dtype or None,
        "engine_dtype_reason": stats.engine_dtype_reason or None,
        "encoder_device": stats.encoder_device or None,
        "engine_startup_seconds": round(stats.engine_startup_seconds, 3),
        "generate_seconds": round(stats.generate_seconds, 3),
        "encode_seconds": round(stats.encode_seconds, 3),
        "tokens_generated": stats.tokens,
        "answers_truncated": stats.truncated_answers,
        "dropped": stats.dropped,
        "embedding_filters": None if not missing else stats.filters if stats.filters != "on" else (
            f"on (near_duplicate_cos {cfg.neighbors.near_duplicate_cos}; the class boundary is a tune-time view)"),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _index_entry(store: NeighborStore, templates: list[str], encoder_fp: str):
    set_id = template_set_id([template_id(t) for t in templates])
    return next((e for e in store.indexes(encoder_fp) if e.template_set_id == set_id), None)


def _ensure_index(store: NeighborStore, texts: list[str], templates: list[str], encoder_fp: str) -> None:
    """The FAISS index of this encoder and template set exists (rebuilt from stored vectors if not)."""
    if _index_entry(store, templates, encoder_fp) is None:
        store.put_embeddings(texts, templates, encoder_fp, store.get_embeddings(texts, templates, encoder_fp))


def _encoder_weight_bytes(backbone_id: str, cfg) -> int | None:
    """The encoder's weight files in bytes, for sharing a GPU with the LLM (None when they cannot be seen)."""
    from stages.backbones.registry import is_checkpoint_kind, resolve_kind
    from stages.neighbors import devices

    try:
        kind = resolve_kind(str(backbone_id), cfg.backbone.kind)
        if is_checkpoint_kind(kind):
            from stages.backbones.checkpoint.files import local_checkpoint_file

            where = str(local_checkpoint_file(backbone_id))
        else:
            from stages.backbones.locate import locate_model

            where = str(locate_model(str(backbone_id), download=False).folder)
    except Exception:  # noqa: BLE001 - not local yet: the worker assumes a default size
        return None
    return devices.weight_bytes(where, 0) or None


def _lazy_encoder(backbone_id: str, cfg, cache: Path):
    from stages.neighbors.encoding import TextEncoder

    return TextEncoder(backbone_id, cfg.backbone, str(cache), cfg.backbone.text_batch_size)
