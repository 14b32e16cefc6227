"""Frozen-feature cache: one float32 vector per (clip content, backbone fingerprint, preprocessing).

The audio tower is frozen, so a clip's embedding under a deterministic crop never changes: compute it once
and reuse it across epochs, runs, methods and seeds. Stored as one .npy per key in a two-level fan-out
folder; written atomically, so two processes computing the same clip at once both publish the same bytes.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from cache.atomic import atomic_write_bytes
from cache.fingerprint import sha256_json


class FeatureCache:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @staticmethod
    def key(clip_hash: str, backbone_fingerprint: str, preprocessing: dict) -> str:
        return sha256_json({"clip": clip_hash, "backbone": backbone_fingerprint, "prep": preprocessing})

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError):
            # A damaged entry is a cache miss, not an error: it is recomputed and rewritten.
            return None

    def put(self, key: str, vector: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(vector, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self._path(key), buf.getvalue())

    def get_many(self, keys: Iterable[str]) -> list[np.ndarray | None]:
        return [self.get(k) for k in keys]
