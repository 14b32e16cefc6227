"""Audio I/O: any file libsndfile reads (WAV, FLAC, OGG, ...) -> float32 mono at a requested rate.

soundfile + scipy only. torchaudio is deliberately not used: next to the CPU torch wheel it crashes at
import (docs/design.md, "Installing on a CPU machine"). Resampling is polyphase
(scipy.signal.resample_poly) with the exact rational factor target/source reduced by their gcd, so a 1 s
clip at 44.1 kHz becomes exactly 16000 samples at 16 kHz, not 15999 or 16001.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from cache.errors import UserError

EXPECTED = "a readable audio file (WAV, FLAC or OGG) with at least one sample"


def to_mono(samples: np.ndarray) -> np.ndarray:
    """[frames] or [frames, channels] -> [frames] float32, channels averaged."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of a 1-D signal by target/source; output length = ceil(n * up / down)."""
    if source_rate <= 0 or target_rate <= 0:
        raise UserError(f"sample rate: expected positive integers, got {source_rate} -> {target_rate}")
    if source_rate == target_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(source_rate), int(target_rate))
    up, down = int(target_rate) // g, int(source_rate) // g
    # float64 inside the filter: the anti-aliasing FIR is long and float32 accumulation adds noise.
    out = resample_poly(np.asarray(samples, dtype=np.float64), up, down)
    return out.astype(np.float32)


def read_audio(path: str | os.PathLike, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(float32 mono samples, native sample rate); at most `max_seconds` from the start when given."""
    data, rate = read_frames(path, max_seconds)
    return to_mono(data), rate


def read_frames(path: str | os.PathLike, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(float32 [frames, channels], native sample rate); at most `max_seconds` from the start when given."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file {path}: not found (expected {EXPECTED})")
    try:
        with sf.SoundFile(str(path)) as fh:
            rate = int(fh.samplerate)
            frames = -1 if max_seconds is None else max(1, int(round(max_seconds * rate)))
            data = fh.read(frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as e:
        raise UserError(f"audio file {path}: cannot be decoded ({e}); expected {EXPECTED}") from None
    if data.shape[0] == 0:
        raise UserError(f"audio file {path}: contains no samples (expected {EXPECTED})")
    return data, rate


def load_audio(path: str | os.PathLike, sample_rate: int, max_seconds: float | None = None,
               channels: str = "mean") -> np.ndarray:
    """float32 1-D samples of `path` at `sample_rate` Hz.

    `channels` (data.channels): "mean" averages the channels to mono, then resamples; "concat" resamples each
    channel and lays them end to end, channel 0 first (Pengi's loader: torchaudio's [channels, frames]
    resampled, then reshape(-1)), so a 10 s stereo file becomes 20 s of signal; a mono file is unchanged.
    Missing, undecodable or empty files raise UserError naming the path. Values are libsndfile's
    normalised floats (int16 full scale -> [-1, 1)); no gain or DC change is applied.
    """
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise UserError(f"sample rate {sample_rate!r}: expected a positive integer number of Hz")
    if channels == "mean":
        samples, rate = read_audio(path, max_seconds=max_seconds)
        return resample(samples, rate, int(sample_rate))
    if channels != "concat":
        raise UserError(f"config key data.channels: {channels!r} is not one of mean, concat")
    data, rate = read_frames(path, max_seconds=max_seconds)
    return np.concatenate([resample(np.ascontiguousarray(data[:, c]), rate, int(sample_rate))
                           for c in range(data.shape[1])])
