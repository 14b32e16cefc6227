"""From the neighbor store to a NeighborBank: read once at set-up, never the LLM, never the encoder.

Which generation: `sept.generation` ("auto", a key or a name), answered by the store alone
(cache/store/generations.py): nothing of the LLM is resolved, hashed or imported, so a store copied to a
machine without the LLM trains the same. Phrases come from the store's Parquet tables under that key; the
frozen per-template embeddings of class names and phrases come from the store under this backbone's
fingerprint and margins are computed from them once. Phrases are tokenized once into prompt ids; a stored
phrase whose prompt does not fit the text tower is left out of this run (counted, named in one warning
line); a class name that does not fit stops the run. Anything missing stops the run before training with
one line naming the classes (or texts) and the command that fills the gap.

This module imports the store (pyarrow); the training core (trainer, learners, loss, bank) does not.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cache.errors import UserError
from cache.fingerprint import sha256_arrays, sha256_json, short
from cache.unit_vectors import template_mean
from stages.tuning.neighbor_bank import NeighborBank
from stages.tuning.sept_loss import frozen_margins


def _q(x) -> str:
    return shlex.quote(str(x))


def fill_command(dataset: str, backbone_id: str, cache_dir: Path) -> str:
    """What adds missing classes: stage one (needs the LLM) or an imported list (needs none)."""
    return (f"`sept-pipeline generate-neighbors --dataset {_q(dataset)} --backbone {_q(backbone_id)} --cache-dir "
            f"{_q(cache_dir)}` (with the LLM), or `sept-pipeline neighbors import FILE --name NAME --backbone "
            f"{_q(backbone_id)} --cache-dir {_q(cache_dir)}`")


def encode_command(generation: str, dataset: str, backbone_id: str, cache_dir: Path) -> str:
    """What embeds a stored generation's texts for another backbone (no LLM)."""
    return (f"`sept-pipeline neighbors encode --generation {_q(generation)} --dataset {_q(dataset)} --backbone "
            f"{_q(backbone_id)} --cache-dir {_q(cache_dir)}`")


def _preview(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def resolve_generation(cfg, store, classnames: Sequence[str], encoder: str, dataset: str, backbone_id: str,
                       cache_dir: Path):
    """The store generation a run of `cfg` reads for `classnames` under backbone fingerprint `encoder`:
    `sept.generation` ("auto", a key or a name), answered by the store alone (cache/store/generations.py);
    its errors end with the command that fills the gap."""
    return store.resolve_generation(cfg.sept.generation, list(classnames), list(cfg.text.templates), encoder,
                                    _fixer(dataset, backbone_id, cache_dir))


def _fixer(dataset: str, backbone_id: str, cache_dir: Path):
    """fix(None): what adds missing classes; fix(key): what embeds generation `key`'s texts for this backbone."""
    def fix(key: str | None) -> str:
        return fill_command(dataset, backbone_id, cache_dir) if key is None else encode_command(
            key, dataset, backbone_id, cache_dir)
    return fix


def read_generation(cfg, store, classnames: list[str], encoder: str, dataset: str, backbone_id: str,
                    cache_dir: Path):
    """(Resolved generation, phrases by class, embeddings [n, T, D], row of each text) for the run's classes."""
    templates = list(cfg.text.templates)
    fix = _fixer(dataset, backbone_id, cache_dir)
    chosen = resolve_generation(cfg, store, classnames, encoder, dataset, backbone_id, cache_dir)
    gkey, label = chosen.key, f"generation {chosen.key}" + (f" ({chosen.name!r})" if chosen.name else "")
    present = store.classes_present(classnames, gkey)
    missing = [c for c in classnames if c not in present]
    if missing:
        raise UserError(f"neighbor store {store.root}: {len(missing)} of {len(classnames)} training classes have no "
                        f"neighbors under {label}: {_preview(missing)}; fill the gap with {fix(None)}")
    phrases = store.get_phrases(classnames, gkey)
    if not any(phrases[c] for c in classnames):
        raise UserError(f"neighbor store {store.root}: cleaning left no neighbor for any training class under "
                        f"{label}; SEPT needs some (see `sept-pipeline neighbors show`), or run --no-sept")
    texts = list(dict.fromkeys(classnames + [p for c in classnames for p in phrases[c]]))
    lacking = store.missing_embeddings(texts, templates, encoder)
    if lacking:
        lacking_classes = [c for c in classnames if c in lacking or any(p in lacking for p in phrases[c])]
        raise UserError(f"neighbor store {store.root}: {len(lacking)} texts of {len(lacking_classes)} classes "
                        f"({_preview(lacking_classes)}) of {label} have no frozen embedding for backbone {encoder} "
                        f"under all {len(templates)} templates; fill the gap with {fix(gkey)}")
    table = store.get_embeddings(texts, templates, encoder)                # [n, T, D] float32, unit per template
    return chosen, phrases, table, {t: i for i, t in enumerate(texts)}


def fitting_phrases(learner, classnames: list[str], phrases: dict) -> tuple[dict, dict]:
    """(phrases whose prompt fits the text tower, those that do not), per class in stored order."""
    flat = [p for c in classnames for p in phrases[c]]
    fits = dict(zip(flat, learner.phrases_fit(flat))) if flat else {}
    kept = {c: [p for p in phrases[c] if fits[p]] for c in classnames}
    too_long = {c: [p for p in phrases[c] if not fits[p]] for c in classnames}
    return kept, too_long


def _warn_too_long(too_long: dict, learner) -> None:
    pairs = [(p, c) for c, ps in too_long.items() for p in ps]
    if pairs:
        shown = ", ".join(f"{p!r} ({c})" for p, c in pairs[:5]) + (f" and {len(pairs) - 5} more" if len(pairs) > 5
                                                                   else "")
        print(f"warning: {len(pairs)} stored neighbor phrases do not fit the text tower with "
              f"{getattr(learner, 'n_ctx', 0)} context tokens and are left out of this run: {shown}",
              file=sys.stderr, flush=True)


def load_neighbor_bank(cfg, learner, backbone, classnames: Sequence[str], cache_dir: Path, dataset: str,
                       progress: bool = True) -> tuple[NeighborBank, dict]:
    """(bank over `classnames` in that order, provenance dict for metrics.json)."""
    from cache.store import NeighborStore

    classnames = list(classnames)
    store = NeighborStore.in_cache(cache_dir)
    encoder = backbone.fingerprint
    chosen, stored, table, row = read_generation(cfg, store, classnames, encoder, dataset, backbone.id, cache_dir)
    gkey = chosen.key
    fitting, too_long = fitting_phrases(learner, classnames, stored)
    _warn_too_long(too_long, learner)
    view = _boundary_view(cfg, table, row, classnames, fitting)
    phrases = {c: [fitting[c][k] for k in view.kept[j]] for j, c in enumerate(classnames)}
    if not any(phrases[c] for c in classnames):
        raise UserError(f"every stored neighbor of the {len(classnames)} training classes (generation {gkey}) is "
                        f"left out: {sum(map(len, too_long.values()))} do not fit the text tower, the others are "
                        f"closer to another training class name than to their own (sept.boundary_filter); nothing "
                        f"is left for SEPT: set sept.boundary_filter=false, fewer method.n_ctx, or run --no-sept")
    bank, num = _bank(cfg, learner, table, row, classnames, phrases)
    info = {
        "store": str(store.root),
        **chosen.record(),
        **_provenance(store, gkey),
        "encoder_fingerprint": encoder,
        "templates": list(cfg.text.templates),
        "phrases_sha256": short(sha256_json({c: stored[c] for c in classnames})),
        "embeddings_sha256": short(sha256_arrays([("embeddings", table)])),
        "num_phrases": num,
        "neighbors_per_class": {c: len(stored[c]) for c in classnames},
        "classes_without_neighbors": [c for c in classnames if not phrases[c]],
        "selection": {
            "boundary_filter": view.status,
            "against": f"the {len(classnames)} training classes",
            "kept": {c: len(view.kept[j]) for j, c in enumerate(classnames)},
            "dropped": {c: len(view.dropped[j]) for j, c in enumerate(classnames)},
            "dropped_phrases": {c: [fitting[c][k] for k in view.dropped[j]]
                                for j, c in enumerate(classnames) if view.dropped[j]},
            # Stored phrases whose prompt (context + phrase) exceeds the text tower: never in this run's bank.
            "phrases_too_long": sum(map(len, too_long.values())),
            "too_long": {c: len(too_long[c]) for c in classnames},
            "too_long_phrases": {c: v for c, v in too_long.items() if v},
        },
    }
    return bank, info


def _provenance(store, gkey: str) -> dict:
    """Where the generation came from (LLM and prompt, or "imported" / "control:<kind>"), for the record."""
    row = next((r for r in store.generation_keys() if r["generation_key"] == gkey), None)
    if row is None:
        return {}
    return {"generation_source": {k: row[k] for k in ("llm_id", "engine", "engine_version", "prompt_version",
                                                      "prompt_hash", "num_neighbors", "last_created_at")}}


def _bank(cfg, learner, table: np.ndarray, row: dict, classnames: list[str], phrases: dict) -> tuple[NeighborBank, int]:
    """The bank over `phrases` (every one fits the tower): frozen margins, prompt ids tokenized once."""
    n_max = max(len(phrases[c]) for c in classnames)
    c_count, (_, t_count, dim) = len(classnames), table.shape
    class_emb = torch.from_numpy(np.stack([table[row[c]] for c in classnames]))
    neighbor_emb = torch.zeros(c_count, n_max, t_count, dim)
    valid = torch.zeros(c_count, n_max, dtype=torch.bool)
    for j, c in enumerate(classnames):
        for k, p in enumerate(phrases[c]):
            neighbor_emb[j, k] = torch.from_numpy(table[row[p]])
            valid[j, k] = True
    margins = frozen_margins(class_emb, neighbor_emb, valid)

    flat = [p for c in classnames for p in phrases[c]]
    ids_flat, mask_flat = learner.tokenize_phrases(flat)
    length = ids_flat.shape[1]
    pad = learner.phrase_pad_id
    ids = torch.full((c_count, n_max, length), pad, dtype=torch.long)
    mask = torch.zeros((c_count, n_max, length), dtype=torch.long)
    at = 0
    for j, c in enumerate(classnames):
        n = len(phrases[c])
        ids[j, :n], mask[j, :n] = ids_flat[at : at + n], mask_flat[at : at + n]
        at += n
    counts = valid.sum(1)
    return NeighborBank(ids, mask, counts, margins, cfg.sept.neighbors_per_step, pad), len(flat)


def _boundary_view(cfg, table: np.ndarray, row: dict, classnames: list[str], phrases: dict):
    """The tune-time class boundary over the training classes' stored neighbors (neighbor_boundary.py).

    Only the training classes' names and phrases are handed over: `table` holds nothing else.
    """
    from stages.tuning import neighbor_boundary

    means = template_mean(table)                                           # [n, D] float64, unit
    class_vectors = means[[row[c] for c in classnames]]
    # A class the LLM left without a usable phrase has an empty [0, D] block (not a reshape of nothing to -1).
    neighbor_vectors = [means[np.asarray([row[p] for p in phrases[c]], dtype=np.int64)].reshape(len(phrases[c]),
                                                                                                means.shape[1])
                        for c in classnames]
    return neighbor_boundary.class_boundary_view(class_vectors, neighbor_vectors, cfg.sept.boundary_filter,
                                                 cfg.sept.same_text_cos)
