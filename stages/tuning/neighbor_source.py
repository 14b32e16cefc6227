"""From the neighbor store to a NeighborBank: read once at set-up, never the LLM, never the encoder.

Phrases come from the store's Parquet tables under the generation key the config names; the frozen
per-template embeddings of class names and phrases come from the store under this backbone's
fingerprint and margins are computed from them once. Phrases are tokenized once into prompt ids.
Anything missing stops the run before training with one line naming the classes (or texts) and the
`generate-neighbors` command that fills the gap.

This module imports the store (pyarrow); the training core (trainer, learners, loss, bank) does not.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from cache.errors import UserError
from cache.fingerprint import sha256_arrays, sha256_json, short
from stages.tuning.neighbor_bank import NeighborBank
from stages.tuning.sept_loss import frozen_margins


def fill_command(dataset: str, backbone_id: str, cache_dir: Path) -> str:
    return (f"sept-pipeline generate-neighbors --dataset {shlex.quote(str(dataset))} "
            f"--backbone {shlex.quote(str(backbone_id))} --cache-dir {shlex.quote(str(cache_dir))}")


def _preview(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def resolve_generation(cfg, cache_dir: Path, dataset: str) -> str:
    """The store generation a run of `cfg` reads: sept.generation_key, else the one [neighbors] describes."""
    gkey = cfg.sept.generation_key
    if not gkey:
        from stages.neighbors.keys import generation_key_for  # hashes the configured LLM's weights (memoised)

        gkey = generation_key_for(cfg.neighbors, cache_dir, dataset)  # the dataset's task keys prompts with {task}
    return gkey


def load_neighbor_bank(cfg, learner, backbone, classnames: Sequence[str], cache_dir: Path, dataset: str,
                       progress: bool = True) -> tuple[NeighborBank, dict]:
    """(bank over `classnames` in that order, provenance dict for metrics.json)."""
    from cache.store import NeighborStore

    classnames = list(classnames)
    store = NeighborStore.in_cache(cache_dir)
    gkey = resolve_generation(cfg, cache_dir, dataset)
    fix = fill_command(dataset, backbone.id, cache_dir)
    templates = list(cfg.text.templates)
    encoder = backbone.fingerprint

    present = store.classes_present(classnames, gkey)
    missing = [c for c in classnames if c not in present]
    if missing:
        raise UserError(f"neighbor store {store.root}: {len(missing)} of {len(classnames)} training classes have no "
                        f"neighbors under generation key {gkey}: {_preview(missing)}; fill the gap with `{fix}`")
    phrases = store.get_phrases(classnames, gkey)
    if not any(phrases[c] for c in classnames):
        raise UserError(f"neighbor store {store.root}: cleaning left no neighbor for any training class under "
                        f"generation key {gkey}; SEPT needs some (see `sept-pipeline neighbors show`), or run --no-sept")

    texts = list(dict.fromkeys(classnames + [p for c in classnames for p in phrases[c]]))
    lacking = store.missing_embeddings(texts, templates, encoder)
    if lacking:
        lacking_classes = [c for c in classnames if c in lacking or any(p in lacking for p in phrases[c])]
        raise UserError(f"neighbor store {store.root}: {len(lacking)} texts of {len(lacking_classes)} classes "
                        f"({_preview(lacking_classes)}) have no frozen embedding for backbone {encoder} under all "
                        f"{len(templates)} templates; fill the gap with `{fix}`")

    table = store.get_embeddings(texts, templates, encoder)               # [n, T, D] float32, unit per template
    row = {t: i for i, t in enumerate(texts)}
    view = _boundary_view(cfg, table, row, classnames, phrases)
    stored = phrases
    phrases = {c: [stored[c][k] for k in view.kept[j]] for j, c in enumerate(classnames)}
    if not any(phrases[c] for c in classnames):
        raise UserError(f"sept.boundary_filter: every stored neighbor of the {len(classnames)} training classes is "
                        f"closer to another training class name than to its own (generation key {gkey}); nothing "
                        f"is left for SEPT: set sept.boundary_filter=false, or run --no-sept")
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
    bank = NeighborBank(ids, mask, counts, margins, cfg.sept.neighbors_per_step, pad)
    info = {
        "store": str(store.root),
        "generation_key": gkey,
        "encoder_fingerprint": encoder,
        "templates": templates,
        "phrases_sha256": short(sha256_json({c: stored[c] for c in classnames})),
        "embeddings_sha256": short(sha256_arrays([("embeddings", table)])),
        "num_phrases": len(flat),
        "neighbors_per_class": {c: len(stored[c]) for c in classnames},
        "classes_without_neighbors": [c for c in classnames if not phrases[c]],
        "selection": {
            "boundary_filter": view.status,
            "against": f"the {len(classnames)} training classes",
            "kept": {c: len(view.kept[j]) for j, c in enumerate(classnames)},
            "dropped": {c: len(view.dropped[j]) for j, c in enumerate(classnames)},
            "dropped_phrases": {c: [stored[c][k] for k in view.dropped[j]]
                                for j, c in enumerate(classnames) if view.dropped[j]},
        },
    }
    return bank, info


def _boundary_view(cfg, table: np.ndarray, row: dict, classnames: list[str], phrases: dict):
    """The tune-time class boundary over the training classes' stored neighbors (neighbor_boundary.py).

    Only the training classes' names and phrases are handed over: `table` holds nothing else.
    """
    from stages.neighbors.filters import template_mean
    from stages.tuning import neighbor_boundary

    means = template_mean(table)                                           # [n, D] float64, unit
    class_vectors = means[[row[c] for c in classnames]]
    # A class the LLM left without a usable phrase has an empty [0, D] block (not a reshape of nothing to -1).
    neighbor_vectors = [means[np.asarray([row[p] for p in phrases[c]], dtype=np.int64)].reshape(len(phrases[c]),
                                                                                                means.shape[1])
                        for c in classnames]
    return neighbor_boundary.class_boundary_view(class_vectors, neighbor_vectors, cfg.sept.boundary_filter,
                                                 cfg.neighbors.near_duplicate_cos)


def classes_lacking(store, classes: list[str], gkey: str, templates: list[str], encoder: str) -> list[str]:
    """Classes without phrases under `gkey`, or whose name or phrases lack an embedding for `encoder` under
    every template: what `tune` would refuse to start without (a class stored with no phrase is not lacking:
    stage one tried and the LLM gave nothing usable)."""
    present = store.classes_present(classes, gkey)
    phrases = store.get_phrases([c for c in classes if c in present], gkey)
    texts = list(dict.fromkeys([c for c in present] + [p for c in present for p in phrases[c]]))
    lacking = set(store.missing_embeddings(texts, templates, encoder)) if texts else set()
    return [c for c in classes
            if c not in present or c in lacking or any(p in lacking for p in phrases.get(c, ()))]
