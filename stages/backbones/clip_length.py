"""Bring one waveform to a model's clip length: deterministic centre crop, random crop, or repeat-pad.

The backbone does this itself (instead of leaving it to a feature extractor that crops at random) so
that evaluation is deterministic: the same clip always gives the same embedding.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def crop_offset(n_samples: int, clip_samples: int, train_crop: bool = False, generator: Any = None) -> int:
    """Start of the window of `clip_samples` kept from a longer waveform of `n_samples`.

    Evaluation (train_crop False) keeps the centre window: (n - clip) // 2, so the rounding puts the
    extra sample of an odd overflow after the window. Training draws the start uniformly from
    0..n-clip (both ends included) with `generator`: a numpy Generator, a torch Generator, or None for
    torch's global generator (so `torch.manual_seed` makes a run repeatable).
    """
    overflow = n_samples - clip_samples
    if overflow <= 0:
        return 0
    if not train_crop:
        return overflow // 2
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, overflow + 1))
    import torch

    return int(torch.randint(0, overflow + 1, (1,), generator=generator).item())


def fit_to_clip(wave: np.ndarray, clip_samples: int, train_crop: bool = False, generator: Any = None) -> np.ndarray:
    """A float32 copy of `wave` of exactly `clip_samples` samples.

    Longer: the window chosen by `crop_offset`. Shorter: LAION CLAP's 'repeatpad', i.e. the whole
    waveform repeated floor(clip / n) times, then zeros up to the clip length (the zeros keep every
    repetition whole, as the model saw in training).
    """
    wave = np.asarray(wave, dtype=np.float32)
    n = wave.shape[0]
    if n >= clip_samples:
        start = crop_offset(n, clip_samples, train_crop, generator)
        return wave[start : start + clip_samples].copy()
    repeated = np.tile(wave, clip_samples // n)
    return np.pad(repeated, (0, clip_samples - repeated.shape[0]))
