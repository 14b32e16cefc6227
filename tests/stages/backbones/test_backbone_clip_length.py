"""Length handling of waveforms, checked against hand-worked cases."""
import numpy as np
import torch

from stages.backbones.clip_length import crop_offset, fit_to_clip


def test_centre_crop_of_a_longer_clip():
    wave = np.arange(10, dtype=np.float32)
    # overflow 6 -> offset 3: samples 3..6
    assert fit_to_clip(wave, 4).tolist() == [3, 4, 5, 6]
    # odd overflow 5 -> offset 2 (the extra sample is dropped after the window)
    assert fit_to_clip(np.arange(9, dtype=np.float32), 4).tolist() == [2, 3, 4, 5]


def test_repeatpad_repeats_whole_copies_then_pads_with_zeros():
    wave = np.array([1, 2, 3], dtype=np.float32)
    assert fit_to_clip(wave, 8).tolist() == [1, 2, 3, 1, 2, 3, 0, 0]
    assert fit_to_clip(wave, 5).tolist() == [1, 2, 3, 0, 0]
    assert fit_to_clip(wave, 6).tolist() == [1, 2, 3, 1, 2, 3]


def test_exact_length_is_an_unchanged_float32_copy():
    wave = np.array([0.5, -0.25, 1.0], dtype=np.float64)
    out = fit_to_clip(wave, 3)
    assert out.dtype == np.float32 and out.tolist() == [0.5, -0.25, 1.0]
    out[0] = 9
    assert wave[0] == 0.5


def test_train_crop_is_reproducible_per_generator_and_covers_both_ends():
    offsets = [crop_offset(12, 10, True, np.random.default_rng(s)) for s in range(200)]
    assert set(offsets) == {0, 1, 2}
    again = [crop_offset(12, 10, True, np.random.default_rng(s)) for s in range(200)]
    assert offsets == again
    torch_offsets = {crop_offset(12, 10, True, torch.Generator().manual_seed(s)) for s in range(200)}
    assert torch_offsets == {0, 1, 2}
    wave = np.arange(12, dtype=np.float32)
    start = crop_offset(12, 10, True, np.random.default_rng(7))
    assert fit_to_clip(wave, 10, True, np.random.default_rng(7)).tolist() == list(range(start, start + 10))


def test_train_crop_has_no_effect_on_short_or_exact_clips():
    assert crop_offset(10, 10, True, np.random.default_rng(0)) == 0
    assert crop_offset(3, 10, True, np.random.default_rng(0)) == 0
