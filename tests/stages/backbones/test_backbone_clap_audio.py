"""The audio path of the CLAP adapter: deterministic at evaluation, equal to ClapModel's own."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cache.errors import UserError
from stages.backbones.clip_length import fit_to_clip


def _noise(n, seed):
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.1


def _model_own_audio_embedding(backbone, clip):
    """ClapModel.get_audio_features on the processor's features of an exact-length clip."""
    feats = backbone.feature_extractor([clip], sampling_rate=backbone.sample_rate, truncation="rand_trunc",
                                       return_tensors="pt")
    with torch.no_grad():
        return backbone.clap.get_audio_features(input_features=feats["input_features"]).pooler_output


def test_exact_length_clip_matches_get_audio_features(tiny_backbone):
    clip = _noise(tiny_backbone.clip_samples, 0)
    ours = tiny_backbone.encode_audio([clip])
    assert ours.shape == (1, tiny_backbone.embed_dim) and ours.dtype == torch.float32
    torch.testing.assert_close(F.normalize(ours, dim=-1), _model_own_audio_embedding(tiny_backbone, clip),
                               atol=1e-5, rtol=0)


def test_long_clip_at_eval_is_its_centre_crop_every_time(tiny_backbone):
    n = tiny_backbone.clip_samples
    long_clip = _noise(n + 1001, 1)
    first = tiny_backbone.encode_audio([long_clip])
    centre = long_clip[500 : 500 + n]  # overflow 1001 -> offset 500
    torch.testing.assert_close(F.normalize(first, dim=-1), _model_own_audio_embedding(tiny_backbone, centre),
                               atol=1e-5, rtol=0)
    for _ in range(2):
        assert torch.equal(tiny_backbone.encode_audio([long_clip]), first)


def test_short_clip_is_repeat_padded(tiny_backbone):
    short = _noise(tiny_backbone.clip_samples // 3 + 17, 2)
    padded = fit_to_clip(short, tiny_backbone.clip_samples)
    torch.testing.assert_close(F.normalize(tiny_backbone.encode_audio([short]), dim=-1),
                               _model_own_audio_embedding(tiny_backbone, padded), atol=1e-5, rtol=0)


def test_batching_and_batch_position_do_not_change_embeddings(tiny_backbone):
    n = tiny_backbone.clip_samples
    clips = [_noise(n // 2, 3), _noise(n * 2, 4), _noise(n, 5), _noise(n + 3, 6), _noise(100, 7)]
    together = tiny_backbone.encode_audio(clips)
    one_by_one = torch.cat([tiny_backbone.encode_audio([c]) for c in clips])
    reversed_order = tiny_backbone.encode_audio(clips[::-1]).flip(0)
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=0)
    torch.testing.assert_close(together, reversed_order, atol=1e-5, rtol=0)
    # audio_batch_size (16) > 5 here; force several batches too.
    saved = tiny_backbone.audio_batch_size
    try:
        tiny_backbone.audio_batch_size = 2
        torch.testing.assert_close(tiny_backbone.encode_audio(clips), together, atol=1e-5, rtol=0)
    finally:
        tiny_backbone.audio_batch_size = saved


def test_train_crop_follows_its_generator(tiny_backbone):
    long_clip = _noise(tiny_backbone.clip_samples * 3, 8)
    a = tiny_backbone.encode_audio([long_clip], train_crop=True, generator=np.random.default_rng(0))
    a_again = tiny_backbone.encode_audio([long_clip], train_crop=True, generator=np.random.default_rng(0))
    b = tiny_backbone.encode_audio([long_clip], train_crop=True, generator=np.random.default_rng(1))
    assert torch.equal(a, a_again)
    assert not torch.allclose(a, b, atol=1e-4)
    t = tiny_backbone.encode_audio([long_clip], train_crop=True, generator=torch.Generator().manual_seed(3))
    assert t.shape == a.shape


def test_bad_waveforms_are_named(tiny_backbone):
    good = _noise(1000, 9)
    with pytest.raises(UserError, match="waveform 1: empty"):
        tiny_backbone.encode_audio([good, np.zeros(0, dtype=np.float32)])
    with pytest.raises(UserError, match="waveform 0: shape"):
        tiny_backbone.encode_audio([np.zeros((2, 100), dtype=np.float32)])
    with pytest.raises(UserError, match="NaN"):
        tiny_backbone.encode_audio([np.full(100, np.nan, dtype=np.float32)])
    assert tiny_backbone.encode_audio([]).shape == (0, tiny_backbone.embed_dim)


def test_sample_rate_and_clip_length_are_read_from_the_saved_feature_extractor(tiny_backbone, tiny_clap_dir):
    import json

    saved = json.loads((tiny_clap_dir / "processor_config.json").read_text())["feature_extractor"]
    assert tiny_backbone.sample_rate == saved["sampling_rate"] == 16_000
    assert tiny_backbone.clip_samples == saved["max_length_s"] * saved["sampling_rate"] == 32_000
    assert tiny_backbone.clip_seconds == 2.0


def test_fusion_towers_are_deterministic_too(tiny_clap_dir, tmp_path):
    """A feature-fusion checkpoint (like laion/clap-htsat-fused): no clip is ever marked 'longer'.

    Its feature extractor would otherwise flag a random clip of each batch (numpy's global RNG).
    """
    from transformers import ClapModel, ClapProcessor

    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone
    from stages.backbones.clap.random_model import clap_config

    config = clap_config("tiny")
    config.audio_config.enable_fusion = True
    torch.manual_seed(0)
    ClapModel(config).save_pretrained(tmp_path / "fused")
    processor = ClapProcessor.from_pretrained(tiny_clap_dir)
    processor.feature_extractor.truncation = "fusion"
    processor.save_pretrained(tmp_path / "fused")

    fused = load_backbone(tmp_path / "fused", BackboneConfig(device="cpu"))
    assert fused.fusion
    clips = [_noise(fused.clip_samples * 2, 10), _noise(fused.clip_samples // 2, 11)]
    outs = []
    for seed in range(3):
        np.random.seed(seed)  # the extractor's random choice reads this generator
        outs.append(fused.encode_audio(clips))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
    feats = fused.feature_extractor([fit_to_clip(c, fused.clip_samples) for c in clips],
                                    sampling_rate=fused.sample_rate, truncation="fusion", return_tensors="pt")
    assert feats["input_features"].shape[1] == 4  # four mel channels: the fusion input
    with torch.no_grad():
        own = fused.clap.get_audio_features(input_features=feats["input_features"],
                                            is_longer=torch.zeros(2, 1, dtype=torch.bool)).pooler_output
    torch.testing.assert_close(F.normalize(outs[0], dim=-1), own, atol=1e-5, rtol=0)
