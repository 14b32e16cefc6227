"""Frozen item embeddings of dataset clips, computed once per backbone and reused (cache/features.py).

With a deterministic evaluation crop the embedding of a clip is a pure function of its bytes, the backbone
weights and the preprocessing, which is exactly the cache key. Random-crop augmentation bypasses the cache.

An item is what the backbone's `item_modality` says: an audio file (decoded at the backbone's rate, through
`encode_audio`) or a UTF-8 .txt file (through `encode_item_texts`, kind text-dual). A file of the other
modality is a one-line UserError naming it and the backbone kind, before anything is encoded.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from cache.features import FeatureCache
from cache.fingerprint import sha256_file
from cache.errors import UserError
from stages.data.audio import load_audio
from stages.data.item_text import is_text_item, read_item_text


def preprocessing_key(backbone) -> dict:
    """What, besides the weights, decides a clip's embedding: rate, length and crop policy (text: length)."""
    if item_modality(backbone) == "text":
        return {"item_modality": "text", "max_text_len": int(backbone.max_text_len),
                "adapter": type(backbone).__name__}
    return {
        "sample_rate": int(backbone.sample_rate),
        "clip_samples": int(backbone.clip_samples),
        "crop": getattr(backbone, "eval_crop", "deterministic"),
        "adapter": type(backbone).__name__,
    }


def item_modality(backbone) -> str:
    return getattr(backbone, "item_modality", "audio")


def check_item_files(backbone, paths: Sequence[Path]) -> None:
    """Every item must be of the backbone's modality: a .txt reaching an audio tower (or audio reaching a
    text-item backbone) is a UserError naming the first such file and the backbone kind."""
    modality = item_modality(backbone)
    for path in paths:
        if is_text_item(path) != (modality == "text"):
            kind = getattr(backbone, "kind", type(backbone).__name__)
            if modality == "text":
                raise UserError(f"item {path}: not a .txt text item, but backbone kind {kind!r} takes text "
                                f"items (UTF-8 .txt files); use an audio backbone for audio datasets")
            raise UserError(f"item {path}: a text item (.txt), but backbone kind {kind!r} takes audio items "
                            f"(WAV, FLAC or OGG); text datasets need a text-item backbone such as "
                            f"'packaged:minilm-dual'")


def _encode(backbone, paths: Sequence[Path], train_crop: bool, generator, channels: str = "mean") -> np.ndarray:
    if item_modality(backbone) == "text":
        texts = [read_item_text(p) for p in paths]
        with torch.no_grad():
            out = backbone.encode_item_texts(texts)
        return out.float().cpu().numpy()
    waves = [load_audio(p, backbone.sample_rate, channels=channels) for p in paths]
    with torch.no_grad():  # the batch goes through the tower at once (train-mode BatchNorm: its statistics)
        out = backbone.encode_audio(waves, train_crop=train_crop, generator=generator, batch_size=len(paths))
    return out.float().cpu().numpy()


def clip_features(
    backbone,
    clips: Sequence,
    cache_dir: str | os.PathLike | None,
    random_crop: bool = False,
    generator: np.random.Generator | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    channels: str = "mean",
) -> torch.Tensor:
    """[N, D] float32 audio embeddings (projected, not normalised) for `clips` (objects with `.path`).

    `channels` is data.channels (stages/data/audio.py load_audio); "concat" is part of the cache key.
    `batch_size` clips go through the tower at once (default `audio_batch_size`)."""
    batch_size = batch_size or int(getattr(backbone, "audio_batch_size", 16))
    paths = [Path(c.path) for c in clips]
    check_item_files(backbone, paths)
    if random_crop or cache_dir is None:
        rows = []
        for i in tqdm(range(0, len(paths), batch_size), desc="encode audio", disable=not progress, leave=False):
            rows.append(_encode(backbone, paths[i : i + batch_size], random_crop, generator, channels))
        return torch.from_numpy(np.concatenate(rows)) if rows else torch.empty(0, backbone.embed_dim)

    cache = FeatureCache(Path(cache_dir) / "features")
    prep = preprocessing_key(backbone)
    if channels != "mean" and item_modality(backbone) == "audio":  # mean: the keys written before the option
        prep = {**prep, "channels": channels}
    keys = [FeatureCache.key(sha256_file(p), backbone.fingerprint, prep) for p in paths]
    vectors: list = cache.get_many(keys)
    todo = [i for i, v in enumerate(vectors) if v is None]
    for start in tqdm(range(0, len(todo), batch_size), desc="encode audio (uncached)", disable=not progress or not todo,
                      leave=False):
        idx = todo[start : start + batch_size]
        feats = _encode(backbone, [paths[i] for i in idx], False, None, channels)
        for i, f in zip(idx, feats):
            cache.put(keys[i], f)
            vectors[i] = f
    if not vectors:
        return torch.empty(0, backbone.embed_dim)
    return torch.from_numpy(np.stack(vectors).astype(np.float32))
