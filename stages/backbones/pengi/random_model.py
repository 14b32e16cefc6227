"""A random Pengi checkpoint's state dict: base.pth's key layout (`source_layout`) with seeded values
(stages/backbones/checkpoint/random_model.py says which), and the real mel filterbank."""
from __future__ import annotations

from stages.backbones.checkpoint.random_model import layout_state
from stages.backbones.nets.htsat import slaney_mel_filters
from stages.backbones.pengi import adapter as pengi


def random_state(size: str, generator) -> dict:
    state = layout_state(pengi.source_layout(size), generator)
    state[f"{pengi.AUDIO_PREFIX}.base.htsat.logmel_extractor.melW"] = slaney_mel_filters(
        pengi.SAMPLE_RATE, pengi.N_FFT, pengi.MEL_BINS, pengi.FMIN, pengi.FMAX)
    return state
