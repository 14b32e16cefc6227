"""Frozen text embeddings of class names and phrases under the T templates, batched, unit per template.

`TextEncoder` loads the backbone only when something must be encoded, and `release()` frees it (GPU
memory included). `CachedEmbeddings` puts the store in front of it: a text the store holds for this encoder
and template set is read, never encoded again. During generation the encoder runs in the CLI process beside
the LLM worker: on the CPU, or on the GPU the engine runs on when both fit (devices.gpu_plan).
"""
from __future__ import annotations

import gc
from typing import Sequence

import numpy as np

from cache.unit_vectors import unit_rows


def fill_templates(texts: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Text-major list: [t0(x0), t1(x0), ..., t0(x1), ...] (row i*T + t)."""
    return [tpl.replace("{}", x) for x in texts for tpl in templates]


def unit_per_template(raw: np.ndarray, n: int, t: int) -> np.ndarray:
    """[n*T, D] raw projections -> [n, T, D] float32, each row L2-normalised (norms in float64)."""
    unit = unit_rows(np.asarray(raw, dtype=np.float64).reshape(n, t, -1), axis=2)
    if not np.all(np.any(unit != 0, axis=2)):  # unit_rows leaves a zero vector zero: it has no direction
        raise ValueError("the text tower returned a zero vector; cannot normalise it")
    return unit.astype(np.float32)


class TextEncoder:
    """The backbone's frozen text tower, loaded lazily (see module doc)."""

    def __init__(self, backbone_id: str, backbone_cfg, cache_dir: str, batch_size: int):
        self.backbone_id = backbone_id
        self.backbone_cfg = backbone_cfg
        self.cache_dir = cache_dir
        self.batch_size = int(batch_size)
        self._backbone = None
        self.texts_encoded = 0
        self.seconds = 0.0

    def use_device(self, device: str) -> None:
        """Load on `device` ("cpu", "cuda") instead of the backbone config's choice (before the first load)."""
        import dataclasses

        if self._backbone is None and getattr(self.backbone_cfg, "device", device) != device:
            self.backbone_cfg = dataclasses.replace(self.backbone_cfg, device=device)

    def _load(self):
        if self._backbone is None:
            from stages.backbones.factory import load_backbone

            self._backbone = load_backbone(self.backbone_id, self.backbone_cfg)
        return self._backbone

    @property
    def fingerprint(self) -> str:
        return self._load().fingerprint

    def encode(self, texts: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), T, D], unit per template."""
        import time

        import torch
        from tqdm import tqdm

        texts = list(texts)
        if not texts:
            return np.zeros((0, len(templates), 0), dtype=np.float32)
        backbone = self._load()
        t0 = time.perf_counter()
        filled = fill_templates(texts, templates)
        chunks = []
        bs = self.batch_size
        with torch.inference_mode():
            for start in tqdm(range(0, len(filled), bs), desc=f"encode {len(texts)} texts x {len(templates)} templates",
                              unit="batch", leave=False):
                out = backbone.encode_text(filled[start:start + bs])
                chunks.append(out.detach().float().cpu().numpy())
        self.seconds += time.perf_counter() - t0
        self.texts_encoded += len(texts)
        return unit_per_template(np.concatenate(chunks), len(texts), len(templates))

    def release(self) -> None:
        if self._backbone is None:
            return
        self._backbone = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass


class CachedEmbeddings:
    """Frozen template embeddings of texts, from the store when there, else from the encoder; kept in memory
    for the run (the embedding filter sees a class's earlier candidates again every round)."""

    def __init__(self, store, encoder: TextEncoder, templates: list[str], encoder_fp: str):
        self.store, self.encoder, self.templates, self.fp = store, encoder, templates, encoder_fp
        self.vectors: dict[str, np.ndarray] = {}

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

    def mean(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), D] unit template means (filters.template_mean)."""
        from stages.neighbors.filters import template_mean

        if not texts:
            return np.zeros((0, 1))
        return template_mean(np.stack([self.vectors[t] for t in texts]))
