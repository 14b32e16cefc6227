"""Random MS-CLAP checkpoints' state dicts: CLAP_weights_<year>.pth's key layout (`source_layout`) with seeded
values (stages/backbones/checkpoint/random_model.py says which), the real mel filterbank and msclap's initial
temperature."""
from __future__ import annotations

import numpy as np
import torch

from stages.backbones.checkpoint.random_model import layout_state
from stages.backbones.msclap import adapter as msclap
from stages.backbones.nets.htsat import slaney_mel_filters


def _random_state(version: str, size: str, generator) -> dict:
    state = layout_state(msclap.source_layout(version, size), generator)
    v = msclap.VERSIONS[version]
    mel_key = "audio_encoder.base.htsat.logmel_extractor.melW" if version == "2023" else "audio_encoder.base.logmel_extractor.melW"
    state[mel_key] = slaney_mel_filters(v["sample_rate"], v["n_fft"], v["mels"], v["fmin"], v["fmax"])
    state["logit_scale"] = torch.tensor(float(np.log(1 / 0.07)))  # msclap's initial temperature
    return state


def random_state_2022(size: str, generator) -> dict:
    return _random_state("2022", size, generator)


def random_state_2023(size: str, generator) -> dict:
    return _random_state("2023", size, generator)
