"""Random checkpoints hold torchlibrosa's real STFT kernels, not random ones.

The real Pengi / MS-CLAP files carry the hann-windowed DFT rows their original code convolves the waveform with;
our adapters drop them (torch.stft computes the transform), but a reference run of the original code on a random
checkpoint uses them, so they must be the real transform for such a run to mean anything
(benchmarks/check_msclap_reference.py). Checked against torch.stft, an independent computation.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stages.backbones.checkpoint.random_model import random_state, stft_kernels


def test_the_kernels_convolved_as_torchlibrosa_does_equal_torch_stft():
    n_fft, hop = 1024, 320
    wave = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    real, imag = stft_kernels(n_fft)
    padded = F.pad(wave[:, None, :], (n_fft // 2, n_fft // 2), mode="reflect")  # torchlibrosa: center, reflect
    conv_real = F.conv1d(padded, real.double(), stride=hop)[0]
    conv_imag = F.conv1d(padded, imag.double(), stride=hop)[0]
    ref = torch.stft(wave, n_fft, hop_length=hop, window=torch.hann_window(n_fft, periodic=True, dtype=torch.float64),
                     center=True, pad_mode="reflect", return_complex=True)[0]
    scale = ref.abs().max()
    assert (conv_real - ref.real).abs().max() / scale < 1e-6
    assert (conv_imag - ref.imag).abs().max() / scale < 1e-6


@pytest.mark.parametrize("kind", ["pengi", "msclap-2022", "msclap-2023"])
def test_every_kind_writes_the_real_kernels(kind):
    state = random_state(kind, "tiny", 0)
    keys = [k for k in state if k.endswith("spectrogram_extractor.stft.conv_real.weight")]
    assert len(keys) == 1
    real, imag = stft_kernels(state[keys[0]].shape[-1])
    assert torch.equal(state[keys[0]], real)
    assert torch.equal(state[keys[0].replace("conv_real", "conv_imag")], imag)
