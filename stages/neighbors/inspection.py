"""What `neighbors search` and `neighbors quality` compute (the CLI only prints it)."""
from __future__ import annotations

import os
from typing import Sequence

from cache.errors import UserError
from cache.fingerprint import cache_root
from cache.store import NeighborStore


def search_store(text: str, k: int, cfg, cache_dir: str | os.PathLike | None, backbone: str | None) -> dict:
    """The k stored texts nearest to `text` in the FAISS index of the backbone's encoder.

    backbone None: the store's only encoder (a store with several asks which, naming them). The query
    is embedded like every stored text (template mean of the frozen text tower), from the store when
    `text` is already there, else by loading the backbone.
    """
    from stages.backbones.fingerprint import encoder_fingerprint
    from stages.neighbors.filters import template_mean

    text = text.strip()
    if not text:
        raise UserError("search TEXT: empty; give a word or phrase")
    cache = cache_root(cache_dir)
    templates = list(cfg.text.templates)
    store = NeighborStore.in_cache(cache)
    if backbone is None:
        fp = only_encoder(store)
    else:
        fp = encoder_fingerprint(cfg.backbone, cache, spec=backbone)
        if not store.indexes(fp):
            raise UserError(f"no index for encoder {fp} in {store.root}; run `sept-pipeline generate-neighbors "
                            f"--backbone {backbone}` first (see `sept-pipeline neighbors ls`)")
    if not store.missing_embeddings([text], templates, fp):
        vectors, source = store.get_embeddings([text], templates, fp), "store"
    else:
        from stages.neighbors.encoding import TextEncoder

        backbone_id = backbone or _loadable_id(fp, cfg.backbone.kind, cache)
        if backbone_id is None:
            raise UserError(f"search {text!r}: not in the store, so the encoder {fp} must embed it and its "
                            f"weights were not found under that name; pass --backbone ID|FOLDER")
        import dataclasses

        from stages.backbones.fingerprint import fingerprint_dtype

        held = dataclasses.replace(cfg.backbone, dtype=fingerprint_dtype(fp))  # the dtype the index was made in
        enc = TextEncoder(backbone_id, held, str(cache), cfg.backbone.text_batch_size)
        vectors, source = enc.encode([text], templates), "encoder"
        enc.release()
    hits = store.search(fp, template_mean(vectors), k, templates)[0]
    owners: dict[str, set[str]] = {}
    for row in store.phrase_rows():
        owners.setdefault(row["phrase"], set()).add(row["class_name"])
    class_names = {r["class_name"] for r in store.class_status(None)}
    return {
        "query": text,
        "query_from": source,
        "encoder_fingerprint": fp,
        "store": str(store.root),
        "hits": [{"text": t, "score": s, "is_class": t in class_names, "neighbor_of": sorted(owners.get(t, ()))}
                 for t, s in hits],
    }


def only_encoder(store: NeighborStore) -> str:
    """The fingerprint of the one encoder the store has an index for; a one-line error naming them otherwise."""
    fps = sorted({e.encoder_fingerprint for e in store.indexes()})
    if len(fps) == 1:
        return fps[0]
    if not fps:
        raise UserError(f"no index in {store.root}; run `sept-pipeline generate-neighbors` first")
    raise UserError(f"the store {store.root} holds {len(fps)} encoders ({', '.join(fps)}); "
                    f"pick one with --backbone ID|FOLDER")


def _loadable_id(fingerprint: str, kind: str, cache) -> str | None:
    """The hub id or folder a fingerprint ('kind:NAME@hex[+dtype]') was made from, when NAME still loads as
    those very weights (a hub id in the local cache, a folder under the current directory); else None."""
    from stages.backbones.fingerprint import backbone_fingerprint, fingerprint_dtype

    name = fingerprint.split(":", 1)[-1].rsplit("@", 1)[0]
    try:
        return name if backbone_fingerprint(name, kind, cache, fingerprint_dtype(fingerprint)) == fingerprint else None
    except (UserError, OSError):
        return None


def quality_report(cfg, cache_dir: str | os.PathLike | None, classes: Sequence[str] | None,
                   generation_key: str | None, reference: str, task: str = "") -> dict:
    """Quality figures (quality.score) of the neighbors stored under one generation key (default: the
    config's, for a dataset of task `task`)."""
    from stages.neighbors.keys import resolve_generation
    from stages.neighbors.quality import load_reference, score

    cache = cache_root(cache_dir)
    store = NeighborStore.in_cache(cache)
    key = generation_key or resolve_generation(cfg.neighbors, cache, task).key
    status = store.class_status(None, key)
    if not status:
        raise UserError(f"generation key {key}: nothing stored under it in {store.root} "
                        f"(see `sept-pipeline neighbors ls`; pass --key or the config used to generate)")
    if classes is None:
        classes = list(dict.fromkeys(r["class_name"] for r in status))
    neighbors = store.get_phrases(list(classes), key)
    num_neighbors = status[0]["num_neighbors"]
    result = score(list(classes), neighbors, load_reference(reference), num_neighbors)
    return {"generation_key": key, "reference": reference, "store": str(store.root), **result}
