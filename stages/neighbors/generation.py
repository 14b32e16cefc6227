"""Stage one end to end: generate, clean, filter, encode and store the neighbors of a class list.

    summary = generate_neighbors(classes, cfg, cache_dir)

Order of work, and why:
1. Resolve everything torch-free (LLM fingerprint, prompt hash, generation key, encoder fingerprint),
   check the files this run relies on (cache/store/verify.py: check_files) and ask the store what is
   missing. When nothing is, return: a warm rerun imports neither torch, transformers, vLLM nor faiss.
2. Classes missing under the key go to the LLM worker (worker.py, its own process; the request and the
   spawn are in worker_launch.py): one batched chat call per round. Its raw answers are text-cleaned
   here (cleaning.py).
3. The worker has exited (engine gone) before the frozen text tower loads: candidate phrases are
   encoded under the T templates; near-duplicates within the class are dropped (filters.py); up to N
   are kept. Each class is selected on its own: what is stored for a class never depends on which
   other classes were generated alongside (the class boundary is a tune-time view over the store).
   Classes left short get another worker round with fresh seeds while the round budget
   (1 + max_retries) lasts; the encoder is released first.
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
from stages.neighbors import cleaning, voting, worker_log
from cache.store.verify import check_files
from stages.neighbors.keys import GenerationIdentity, resolve_generation
from stages.neighbors.worker_launch import cleaning_kwargs, run_worker, sampling_spec, worker_request


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
class Candidate:
    phrase: str
    seed: int
    round: int
    votes: int | None = None  # answers that proposed it (samples > 1), else None
    verify_score: float | None = None  # P(yes) of the verification round, when there was one


@dataclass
class RunStats:
    llm_requests: int = 0
    llm_rounds: int = 0
    worker_starts: int = 0
    engine: str = ""
    engine_version: str = ""
    engine_startup_seconds: float = 0.0
    generate_seconds: float = 0.0
    tokens: int = 0
    truncated_answers: int = 0
    unseeded: int = 0  # requests that ran on another request's seed (sampled transformers batches)
    filters: str = "on"  # embedding filters: "on" or why they were off
    encode_seconds: float = 0.0
    texts_encoded: int = 0
    dropped: dict = field(default_factory=dict)  # reason -> count


def _recorded_sampling(cfg, engine: str) -> dict:
    spec = sampling_spec(cfg)
    structured = "json" if spec.pop("json_schema") is not None else "none"
    if structured == "json" and engine != "vllm":
        structured = "json-prompted"  # transformers: asked for JSON in the prompt, not constrained
    return {**spec, "structured_output": structured, "output_format": cfg.neighbors.output_format,
            "overgenerate": cfg.neighbors.overgenerate, "seed_rule": "sha256(seed:round:class[\\x00setK])",
            "verify_threshold": cfg.neighbors.verify_threshold}


class _Embeddings:
    """Frozen template embeddings of texts, from the store when there, else from the encoder."""

    def __init__(self, store: NeighborStore, encoder, templates: list[str], encoder_fp: str):
        self.store, self.encoder, self.templates, self.fp = store, encoder, templates, encoder_fp
        self.vectors: dict[str, object] = {}

    def ensure(self, texts: Sequence[str]) -> None:
        todo = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if not todo:
            return
        missing = set(self.store.missing_embeddings(todo, self.templates, self.fp))
        stored = [t for t in todo if t not in missing]
        if stored:
            arr = self.store.get_embeddings(stored, self.templates, self.fp)
            self.vectors.update(zip(stored, arr))
        new = [t for t in todo if t in missing]
        if new:
            self.vectors.update(zip(new, self.encoder.encode(new, self.templates)))

    def mean(self, texts: Sequence[str]):
        import numpy as np

        from stages.neighbors.filters import template_mean

        if not texts:
            return np.zeros((0, 1))
        return template_mean(np.stack([self.vectors[t] for t in texts]))


def _ranked_candidates(cfg, c: str, r: dict, round_index: int, earlier: list[Candidate],
                       stats: RunStats) -> list[Candidate]:
    """This round's new candidates of class `c`, best first: its answers pooled and ranked by votes
    (voting.py), those the verification round scored below neighbors.verify_threshold dropped."""
    n = cfg.neighbors
    answers = voting.answers_of(r)
    sets = voting.set_answers(r)
    seeds = [a["seed"] for a in sets] + [r.get("samples_seed", r["seed"])] * (len(answers) - len(sets))
    scores = r.get("verify", {})
    out = []
    for x in voting.pool(answers, c, cleaning_kwargs(cfg), [e.phrase for e in earlier], stats.dropped):
        score = scores.get(x.phrase) if n.verify_threshold > 0 else None
        if score is not None and score < n.verify_threshold:
            stats.dropped["verification"] = stats.dropped.get("verification", 0) + 1
            continue
        out.append(Candidate(x.phrase, seeds[x.answer], round_index, x.votes if n.samples > 1 else None, score))
    return out


def _progress(line: str) -> None:
    """Our own progress lines: on stderr, so that stdout stays a --json summary."""
    print(line, file=sys.stderr, flush=True)


def _generate_missing(cfg, ident: GenerationIdentity, missing: list[str], emb: _Embeddings, cache_dir: Path,
                      stats: RunStats, verbose: bool = False) -> list[ClassNeighbors]:
    """Generate, clean and select the neighbors of each missing class, each class on its own.

    Nothing here compares one class with another: a class's rows are the same whether it is generated
    alone or with fifty others (the LLM batch aside, see docs/method.md).
    """
    from stages.neighbors.filters import PROBE_TEXTS, select_neighbors, separates_texts

    n = cfg.neighbors
    need = n.num_neighbors
    budget = 1 + n.max_retries
    candidates: dict[str, list[Candidate]] = {c: [] for c in missing}
    rounds_of: dict[str, int] = {c: 0 for c in missing}
    kept: dict[str, list[Candidate]] = {c: [] for c in missing}
    pending = list(missing)
    provenance = None
    useful = None  # whether the encoder separates texts at all: judged once, on fixed probe texts
    while pending and stats.llm_rounds < budget:
        emb.encoder.release()  # never the encoder and the LLM on one device at once
        request = worker_request(cfg, ident, pending, {c: [x.phrase for x in candidates[c]] for c in pending},
                                 stats.llm_rounds, budget - stats.llm_rounds, cache_dir)
        _progress(f"LLM ({cfg.neighbors.backend}): asking for the neighbors of {len(pending)} classes, round "
                  f"{stats.llm_rounds + 1} of at most {budget}"
                  + ("" if verbose else f" (engine log: {worker_log.log_path(cache_dir)})"))
        resp = run_worker(request, cache_dir, verbose)
        _progress(f"LLM: {resp['requests']} answers in {len(resp['rounds'])} round(s), "
                  f"{resp['generate_seconds']:.1f} s (engine start {resp['startup_seconds']:.1f} s)")
        stats.worker_starts += 1
        stats.llm_requests += resp["requests"]
        stats.llm_rounds += len(resp["rounds"])
        stats.engine, stats.engine_version = resp["engine"], resp["engine_version"]
        stats.engine_startup_seconds += resp["startup_seconds"]
        stats.generate_seconds += resp["generate_seconds"]
        for rnd in resp["rounds"]:
            for c, r in rnd["results"].items():
                rounds_of[c] += 1
                for a in voting.set_answers(r):
                    stats.unseeded += not a.get("seeded", True)
                    stats.tokens += a["tokens"]
                    stats.truncated_answers += a["finish"] == "length"
                candidates[c] += _ranked_candidates(cfg, c, r, rnd["round"], candidates[c], stats)
        if provenance is None:
            provenance = Provenance(
                llm_id=ident.llm["id"], llm_revision=ident.llm["revision"], llm_fingerprint=ident.llm["fingerprint"],
                engine=resp["engine"], engine_version=resp["engine_version"], prompt_hash=ident.prompt_hash,
                prompt_version=ident.template.version, num_neighbors=need)
        if n.near_duplicate_cos >= 1.0:  # filter off: nothing to encode yet
            kept = {c: candidates[c][:need] for c in missing}
            pending = [c for c in missing if len(kept[c]) < need]
            stats.filters = "off (neighbors.near_duplicate_cos >= 1)"
            continue
        # The near-duplicate filter over every candidate so far (the encoder loads here, after the worker
        # exited). Whether the encoder can tell texts apart at all is a property of the encoder and the
        # templates, judged on fixed probe texts, never on the class list of this call.
        if useful is None:
            emb.ensure(PROBE_TEXTS)
            useful, mean_cos = separates_texts(emb.mean(PROBE_TEXTS), n.near_duplicate_cos)
            if not useful:
                stats.filters = (f"off: the encoder does not separate texts (mean cosine {mean_cos:.4f} between "
                                 f"fixed probe texts >= neighbors.near_duplicate_cos {n.near_duplicate_cos}); "
                                 f"text cleaning only")
                print(f"warning: embedding filters {stats.filters}", file=sys.stderr)
        if useful:
            emb.ensure([x.phrase for c in missing for x in candidates[c]])
        for c in missing:
            cands = candidates[c]
            if not useful:
                kept[c] = cands[:need]
                continue
            sel = select_neighbors(emb.mean([x.phrase for x in cands]), need, n.near_duplicate_cos)
            kept[c] = [cands[i] for i in sel.kept]
            for _, reason in sel.dropped:
                stats.dropped[reason] = stats.dropped.get(reason, 0) + 1
        pending = [c for c in missing if len(kept[c]) < need]
    sampling = _recorded_sampling(cfg, stats.engine)
    if stats.unseeded:
        sampling["seed_rule"] += f"; {stats.unseeded} request(s) shared their batch's seed (transformers batches)"
    items = []
    for c in missing:
        ks = kept[c]
        items.append(ClassNeighbors(c, [x.phrase for x in ks], provenance, sampling,
                                    seed=[x.seed for x in ks] if ks else 0, rounds=rounds_of[c],
                                    votes=[x.votes for x in ks], verify_scores=[x.verify_score for x in ks]))
    return items


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
        emb = _Embeddings(store, encoder, templates, encoder_fp)
        written = []
        if missing:
            items = _generate_missing(cfg, ident, missing, emb, cache, stats, verbose)
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


def _lazy_encoder(backbone_id: str, cfg, cache: Path):
    from stages.neighbors.encoding import TextEncoder

    return TextEncoder(backbone_id, cfg.backbone, str(cache), cfg.backbone.text_batch_size)
