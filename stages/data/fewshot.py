"""Few-shot training subsets: `shots` clips per class, drawn reproducibly and cached.

The draw: one `numpy.random.Generator(PCG64(seed))`; classes in label order; for each class, `shots`
of its clips (positions in the clip list) without replacement. Seed 0 is a seed like any other.
shots = 0, or shots >= the clips a class has, takes all of that class's clips (PALM does the same when a
class is short, without repeating clips). The result is sorted, so it is a subset in dataset order.

The cache: `<cache>/fewshot/<dataset>-<shots>shot-seed<seed>.json` holds one draw per distinct clip list,
keyed by a hash of (path, label) of every clip: a changed dataset or another fold gets its own draw,
never a stale one. Reads and writes hold a file lock; writes are atomic.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from cache.atomic import atomic_write_json
from cache.errors import UserError
from cache.fingerprint import sha256_json
from cache.lock import file_lock
from stages.data.clips import Clip

FORMAT_VERSION = 1


def fewshot_cache_file(cache_dir: str | os.PathLike, dataset: str, shots: int, seed: int) -> Path:
    return Path(cache_dir) / "fewshot" / f"{dataset}-{shots}shot-seed{seed}.json"


def clip_list_hash(clips: Sequence[Clip]) -> str:
    return sha256_json([[str(c.path), int(c.label)] for c in clips])


def draw_fewshot(labels: Sequence[int], shots: int, seed: int) -> list[int]:
    """Sorted positions of the drawn clips (no cache)."""
    if shots < 0:
        raise UserError(f"shots {shots}: expected 0 (all clips) or a positive number of clips per class")
    if seed < 0:
        raise UserError(f"seed {seed}: expected a non-negative integer")
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = np.asarray(labels, dtype=np.int64)
    chosen: list[int] = []
    for label in np.unique(labels):  # sorted label order: the same stream of draws every time
        members = np.flatnonzero(labels == label)
        if shots == 0 or shots >= len(members):
            chosen.extend(members.tolist())
        else:
            chosen.extend(rng.choice(members, size=shots, replace=False).tolist())
    return sorted(chosen)


def _cached(data: dict, key: str, n: int) -> list[int] | None:
    entry = data.get("draws", {}).get(key) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or entry.get("num_clips") != n:
        return None
    idx = entry.get("indices")
    if (not isinstance(idx, list) or not all(isinstance(i, int) and 0 <= i < n for i in idx)
            or idx != sorted(set(idx))):
        return None
    return idx


def fewshot_indices(clips: Sequence[Clip], shots: int, seed: int, cache_file: Path | None) -> list[int]:
    """Sorted positions in `clips` of the few-shot subset; cached in `cache_file` (None: not cached)."""
    if cache_file is None:
        return draw_fewshot([c.label for c in clips], shots, seed)
    cache_file = Path(cache_file)
    key = clip_list_hash(clips)
    with file_lock(cache_file.with_name(cache_file.name + ".lock")):
        try:
            data = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            data = {}  # absent or unreadable: it is a cache, draw again and rewrite it
        if data.get("version") == FORMAT_VERSION and data.get("shots") == shots and data.get("seed") == seed:
            hit = _cached(data, key, len(clips))
            if hit is not None:
                return hit
        else:
            data = {"version": FORMAT_VERSION, "shots": shots, "seed": seed, "draws": {}}
        indices = draw_fewshot([c.label for c in clips], shots, seed)
        data.setdefault("draws", {})[key] = {"num_clips": len(clips), "indices": indices}
        atomic_write_json(cache_file, data)
        return indices
