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
    """Frozen per-template embeddings of texts ([T, D] each), kept in memory for the run (the embedding filter
    sees a class's earlier candidates again every round): from the store when there, else the ones an imported
    file carries for this encoder (`carried`: text -> [T, D], taken as they are, which is what makes an
    export/import round trip bit-exact across machines), else from the encoder (lazy: loaded only if something
    must be encoded). `new` lists the texts the store lacked, in order; `adopted` those that came from the file."""

    def __init__(self, store, encoder: TextEncoder, templates: list[str], encoder_fp: str,
                 carried: dict[str, np.ndarray] | None = None):
        self.store, self.encoder, self.templates, self.fp = store, encoder, list(templates), encoder_fp
        self.vectors: dict[str, np.ndarray] = {}
        self.carried = carried or {}
        self.new: list[str] = []
        self.adopted: set[str] = set()

    def ensure(self, texts: Sequence[str]) -> None:
        todo = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if not todo:
            return
        missing = set(self.store.missing_embeddings(todo, self.templates, self.fp))
        stored = [t for t in todo if t not in missing]
        if stored:
            self.vectors.update(zip(stored, self.store.get_embeddings(stored, self.templates, self.fp)))
        adopted = [t for t in todo if t in missing and t in self.carried]
        self.vectors.update((t, self.carried[t]) for t in adopted)
        self.adopted.update(adopted)
        encode = [t for t in todo if t in missing and t not in self.carried]
        if encode:
            self.vectors.update(zip(encode, self.encoder.encode(encode, self.templates)))
        self.new += adopted + encode

    def mean(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), D] unit template means (filters.template_mean)."""
        from stages.neighbors.filters import template_mean

        if not texts:
            return np.zeros((0, 1))
        self.ensure(texts)
        return template_mean(np.stack([self.vectors[t] for t in texts]))

    def new_rows(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """(texts among `texts` that the store lacked, their vectors [n, T, D]) for the store."""
        self.ensure(texts)
        wanted = set(texts)
        new = [t for t in self.new if t in wanted]
        dim = next(iter(self.vectors.values())).shape[-1] if self.vectors else 1
        arr = np.stack([self.vectors[t] for t in new]) if new else np.zeros((0, len(self.templates), dim), np.float32)
        return new, arr

    def release(self) -> None:
        self.encoder.release()
