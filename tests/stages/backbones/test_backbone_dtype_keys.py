"""backbone.dtype is part of the backbone's fingerprint, hence of every key built from it: the frozen-feature
cache (stages/audio_features.py) and the neighbor store's encoder key. A bfloat16-weights backbone and a
float32 one on the same files never share cached clip features or stored embeddings; float32 keys are the
ones made before the dtype was part of them."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone

TEXTS = ["dog", "a dog barking", "rain on a roof"]
TEMPLATES = ["a sound of a {}.", "{} can be heard."]


@pytest.fixture(scope="module")
def bf16_backbone(tiny_clap_dir):
    return load_backbone(tiny_clap_dir, BackboneConfig(device="cpu", dtype="bfloat16"))


def _clips(tmp_path, rate: int):
    from stages.data.clips import Clip

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"clip{i}.wav"
        sf.write(path, (0.1 * rng.standard_normal(rate)).astype(np.float32), rate)
        paths.append(path)
    return [Clip(path=p, label=0, classname="x") for p in paths]


def test_a_bf16_run_does_not_fill_the_feature_cache_a_float32_run_reads(tiny_backbone, bf16_backbone, tmp_path):
    from stages.audio_features import clip_features

    clips = _clips(tmp_path, tiny_backbone.sample_rate)
    cache = tmp_path / "cache"
    bf16 = clip_features(bf16_backbone, clips, cache, progress=False)
    f32 = clip_features(tiny_backbone, clips, cache, progress=False)  # same files, same cache folder
    uncached = clip_features(tiny_backbone, clips, None, progress=False)
    assert not torch.equal(bf16, uncached)  # guards the test: bf16 weights do give other features
    assert torch.equal(f32, uncached), "the float32 run read the bf16 run's cached features"
    assert torch.equal(clip_features(bf16_backbone, clips, cache, progress=False), bf16)  # each reads its own


def test_the_store_keeps_bf16_and_float32_embeddings_apart(tiny_backbone, bf16_backbone, tmp_path):
    from cache.store import NeighborStore
    from stages.neighbors.encoding import fill_templates

    store = NeighborStore.in_cache(tmp_path / "cache")
    with torch.no_grad():
        vectors = bf16_backbone.encode_text(fill_templates(TEXTS, TEMPLATES))
    vectors = torch.nn.functional.normalize(vectors, dim=-1).reshape(len(TEXTS), len(TEMPLATES), -1)
    store.put_embeddings(TEXTS, TEMPLATES, bf16_backbone.fingerprint, vectors.numpy())
    assert store.missing_embeddings(TEXTS, TEMPLATES, bf16_backbone.fingerprint) == []
    assert store.missing_embeddings(TEXTS, TEMPLATES, tiny_backbone.fingerprint) == TEXTS


def test_stage_ones_torch_free_key_carries_the_dtype(tiny_clap_dir, tiny_backbone, bf16_backbone, tmp_path):
    """generate-neighbors keys the embeddings it stores before loading any model: that key is the loaded one's."""
    from stages.backbones.fingerprint import encoder_fingerprint

    bf16_cfg = BackboneConfig(id=str(tiny_clap_dir), device="cpu", dtype="bfloat16")
    assert encoder_fingerprint(bf16_cfg, tmp_path / "c") == bf16_backbone.fingerprint
    assert encoder_fingerprint(BackboneConfig(id=str(tiny_clap_dir)), tmp_path / "c") == tiny_backbone.fingerprint
    assert bf16_backbone.fingerprint != tiny_backbone.fingerprint
