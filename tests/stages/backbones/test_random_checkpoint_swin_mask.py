"""Random checkpoints hold HTS-AT's real shifted-window attention masks, not zeros.

msclap's / Pengi's SwinTransformerBlock saves its mask as a persistent buffer and the original code uses the
loaded one, so a reference run on a random checkpoint (benchmarks/check_msclap_reference.py) ran unmasked
while our adapters recompute the mask. Checked against transformers' ClapAudioLayer.get_attn_mask.
"""
from __future__ import annotations

import torch
from transformers.models.clap.modeling_clap import ClapAudioLayer

from stages.backbones.nets.htsat import FULL, clap_audio_config
from stages.backbones.checkpoint.random_model import random_state, swin_relative_position_index, swin_shift_mask


def test_masks_equal_the_ones_transformers_builds():
    config = clap_audio_config(FULL, 64)
    window = FULL["window"]
    for res in (64, 32, 16):  # the shifted stages of a 256x256 image with 4x4 patches
        layer = ClapAudioLayer(config, dim=16, input_resolution=(res, res), num_heads=2, shift_size=window // 2)
        expected = layer.get_attn_mask(res, res, torch.float32, "cpu")
        mask = swin_shift_mask(tuple(expected.shape))
        assert torch.equal(mask, expected)


def test_the_random_msclap_2023_checkpoint_carries_them():
    state = random_state("msclap-2023", "tiny", 0)
    masks = {k: v for k, v in state.items() if k.endswith("attn_mask")}
    assert len(masks) == 5  # odd blocks of stages 0-2
    for mask in masks.values():
        assert torch.equal(mask, swin_shift_mask(tuple(mask.shape))) and (mask == -100).any()


def test_relative_position_index_equals_the_one_transformers_builds():
    """Pengi's file stores the index (msclap's leaves it out); the random one holds the computed values."""
    from transformers.models.clap.modeling_clap import ClapAudioSelfAttention

    config = clap_audio_config(FULL, 64)
    window = FULL["window"]
    attn = ClapAudioSelfAttention(config, dim=16, num_heads=2, window_size=window)
    expected = attn.relative_position_index
    index = swin_relative_position_index(tuple(expected.shape))
    assert torch.equal(index, expected) and index.max() == (2 * window - 1) ** 2 - 1
    state = random_state("pengi", "tiny", 0)
    stored = [v for k, v in state.items() if k.endswith("relative_position_index")]
    assert stored and all(torch.equal(v, swin_relative_position_index(tuple(v.shape))) for v in stored)
