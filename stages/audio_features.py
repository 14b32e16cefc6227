"""Frozen audio embeddings of dataset clips, computed once per backbone and reused (cache/features.py).

With a deterministic evaluation crop the embedding of a clip is a pure function of its bytes, the backbone
weights and the preprocessing, which is exactly the cache key. Random-crop augmentation bypasses the cache.
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
from stages.data.audio import load_audio


def preprocessing_key(backbone) -> dict:
    """What, besides the weights, decides a clip's embedding: rate, length and crop policy."""
    return {
        "sample_rate": int(backbone.sample_rate),
        "clip_samples": int(backbone.clip_samples),
        "crop": getattr(backbone, "eval_crop", "deterministic"),
        "adapter": type(backbone).__name__,
    }


def _encode(backbone, paths: Sequence[Path], train_crop: bool, generator) -> np.ndarray:
    waves = [load_audio(p, backbone.sample_rate) for p in paths]
    with torch.no_grad():
        out = backbone.encode_audio(waves, train_crop=train_crop, generator=generator)
    return out.float().cpu().numpy()


def clip_features(
    backbone,
    clips: Sequence,
    cache_dir: str | os.PathLike | None,
    random_crop: bool = False,
    generator: np.random.Generator | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """[N, D] float32 audio embeddings (projected, not normalised) for `clips` (objects with `.path`)."""
    batch_size = batch_size or int(getattr(backbone, "audio_batch_size", 16))
    paths = [Path(c.path) for c in clips]
    if random_crop or cache_dir is None:
        rows = []
        for i in tqdm(range(0, len(paths), batch_size), desc="encode audio", disable=not progress, leave=False):
            rows.append(_encode(backbone, paths[i : i + batch_size], random_crop, generator))
        return torch.from_numpy(np.concatenate(rows)) if rows else torch.empty(0, backbone.embed_dim)

    cache = FeatureCache(Path(cache_dir) / "features")
    prep = preprocessing_key(backbone)
    keys = [FeatureCache.key(sha256_file(p), backbone.fingerprint, prep) for p in paths]
    vectors: list = cache.get_many(keys)
    todo = [i for i, v in enumerate(vectors) if v is None]
    for start in tqdm(range(0, len(todo), batch_size), desc="encode audio (uncached)", disable=not progress or not todo,
                      leave=False):
        idx = todo[start : start + batch_size]
        feats = _encode(backbone, [paths[i] for i in idx], False, None)
        for i, f in zip(idx, feats):
            cache.put(keys[i], f)
            vectors[i] = f
    if not vectors:
        return torch.empty(0, backbone.embed_dim)
    return torch.from_numpy(np.stack(vectors).astype(np.float32))
