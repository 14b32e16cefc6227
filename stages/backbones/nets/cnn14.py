"""CNN14 (PANNs, Kong et al. 2020), the audio network of MS-CLAP 2022, in its inference form.

Six blocks of two 3x3 convolutions (no bias) + BatchNorm + ReLU, 2x2 average pooling after the first
five; then the mean over mel bins, max + mean over time, and ReLU(fc1): the embedding MS-CLAP
projects (2048 wide). Dropout and the AudioSet classifier (fc_audioset) are training-only here.
Module names follow the original, so the conversion table maps them one to one.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FULL_CHANNELS = (64, 128, 256, 512, 1024, 2048)
TINY_CHANNELS = (4, 8, 8, 16, 16, 32)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, kernel_size=pool) if pool > 1 else x


class Cnn14(nn.Module):
    def __init__(self, mel_bins: int, channels: tuple = FULL_CHANNELS):
        super().__init__()
        self.bn0 = nn.BatchNorm2d(mel_bins)
        widths = (1, *channels)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(channels[-1], channels[-1])
        self.width = channels[-1]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 1, frames, mels] log-mel -> [B, width] embedding."""
        x = self.bn0(mel.transpose(1, 3)).transpose(1, 3)  # BatchNorm over the mel bins
        for i in range(6):
            x = getattr(self, f"conv_block{i + 1}")(x, pool=2 if i < 5 else 1)
        x = x.mean(dim=3)  # over mel bins -> [B, C, time]
        x = x.max(dim=2).values + x.mean(dim=2)
        return F.relu(self.fc1(x))


def cnn14_source_layout(prefix: str, channels: tuple, mel_bins: int, n_fft: int, classes: int) -> dict[str, tuple]:
    """Names and shapes of the original Cnn14 state dict (msclap/models/audio.py structure)."""
    freq = n_fft // 2 + 1
    out = {f"{prefix}.spectrogram_extractor.stft.conv_real.weight": (freq, 1, n_fft),
           f"{prefix}.spectrogram_extractor.stft.conv_imag.weight": (freq, 1, n_fft),
           f"{prefix}.logmel_extractor.melW": (freq, mel_bins)}
    def bn(name, width):
        for part in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.{part}"] = (width,)
        out[f"{name}.num_batches_tracked"] = ()
    bn(f"{prefix}.bn0", mel_bins)
    widths = (1, *channels)
    for i in range(6):
        b = f"{prefix}.conv_block{i + 1}"
        out[f"{b}.conv1.weight"] = (widths[i + 1], widths[i], 3, 3)
        out[f"{b}.conv2.weight"] = (widths[i + 1], widths[i + 1], 3, 3)
        bn(f"{b}.bn1", widths[i + 1])
        bn(f"{b}.bn2", widths[i + 1])
    out[f"{prefix}.fc1.weight"], out[f"{prefix}.fc1.bias"] = (channels[-1], channels[-1]), (channels[-1],)
    out[f"{prefix}.fc_audioset.weight"], out[f"{prefix}.fc_audioset.bias"] = (classes, channels[-1]), (classes,)
    return out
