"""The Pengi adapter on a tiny random checkpoint in Pengi's real key layout.

Checked against independent computations: the CLIP text tower's own forward on token ids plus a
float64 Pengi projection written out here, a numpy float64 log-mel, and the key layout fixture.
"""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cache.errors import UserError
from stages.backbones.pengi import adapter as pengi
from stages.backbones.checkpoint.read import read_checkpoint
from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone
from stages.backbones.checkpoint.random_model import clip_style_tokenizer, make_random_checkpoint, random_state

FIXTURE = Path(__file__).parent / "fixtures" / "pengi_base_layout.json"


@pytest.fixture(scope="module")
def pengi_dir(tmp_path_factory):
    return make_random_checkpoint("pengi", "tiny", 0, tmp_path_factory.mktemp("models") / "tiny-pengi")


@pytest.fixture(scope="module")
def pengi_backbone(pengi_dir):
    return load_backbone(pengi_dir, BackboneConfig(device="cpu"))


def test_full_layout_is_the_committed_fixture_and_tiny_has_the_same_keys():
    committed = {k: tuple(v) for k, v in json.loads(FIXTURE.read_text())["keys"].items()}
    assert pengi.source_layout("full") == committed
    assert pengi.source_layout("tiny").keys() == committed.keys()
    # Spot facts of the real model: CLIP B/16 text, HTS-AT 768 latent, Pengi's 1024 projections.
    assert committed["caption_encoder.base.embeddings.token_embedding.weight"] == (49408, 512)
    assert committed["audio_encoder.projection.linear1.weight"] == (1024, 768)
    assert committed["audio_encoder.base.htsat.layers.2.blocks.5.attn.qkv.weight"] == (1152, 384)


def test_registry_detects_the_kind_and_fingerprint_is_the_file_hash(pengi_dir, pengi_backbone):
    from cache.fingerprint import sha256_file
    from stages.backbones.registry import kind_for_spec

    assert kind_for_spec(str(pengi_dir)) == "pengi" and kind_for_spec("pengi:base") == "pengi"
    assert pengi_backbone.fingerprint == f"pengi:tiny-pengi@{sha256_file(pengi_dir / 'pengi.pth')[:16]}"
    assert (pengi_backbone.sample_rate, pengi_backbone.clip_samples, pengi_backbone.max_text_len) == (44100, 308700, 40)
    assert pengi_backbone.logit_scale() == 100.0 and pengi_backbone.text_pooling == "eos"


def test_every_tensor_lands_where_the_table_says(pengi_dir, pengi_backbone):
    state = read_checkpoint(pengi_dir / "pengi.pth")
    ours = pengi_backbone.state_dict()
    qkv = state["audio_encoder.base.htsat.layers.1.blocks.1.attn.qkv.weight"]
    q, k, v = qkv.chunk(3)
    block = "audio_model.audio_encoder.layers.1.blocks.1.attention.self"
    assert torch.equal(ours[f"{block}.query.weight"], q) and torch.equal(ours[f"{block}.value.weight"], v)
    assert torch.equal(ours[f"{block}.key.weight"], k)
    assert torch.equal(ours["text_model.encoder.layers.1.mlp.fc2.weight"],
                       state["caption_encoder.base.encoder.layers.1.mlp.fc2.weight"])
    assert torch.equal(ours["logmel.mel_filters"], state["audio_encoder.base.htsat.logmel_extractor.melW"])


def _projection64(x, prefix, state):
    """Pengi's Projection in float64: LayerNorm(l1 x + l2 gelu(l1 x)), eps 1e-5."""
    w1, w2 = state[f"{prefix}.linear1.weight"].double(), state[f"{prefix}.linear2.weight"].double()
    e1 = x @ w1.T
    s = e1 + torch.nn.functional.gelu(e1) @ w2.T
    s = (s - s.mean(-1, keepdim=True)) / torch.sqrt(s.var(-1, unbiased=False, keepdim=True) + 1e-5)
    return s * state[f"{prefix}.layer_norm.weight"].double() + state[f"{prefix}.layer_norm.bias"].double()


def test_text_embedding_equals_clip_forward_plus_float64_projections(pengi_dir, pengi_backbone):
    state = read_checkpoint(pengi_dir / "pengi.pth")
    texts = ["a sound of a dog.", "rain", "an audio recording of a hi-hat, live"]
    tok = pengi_backbone.tokenize(texts)
    with torch.no_grad():
        # CLIPTextModel's own forward on ids: causal mask and its eos pooling, not our embedding path.
        pooled = pengi_backbone.text_model(**tok).pooler_output.double()
    pooled = pooled @ state["caption_encoder.clip_text_projection.weight"].double().T
    ref = _projection64(pooled, "caption_encoder.projection", state)
    torch.testing.assert_close(pengi_backbone.encode_text(texts).double(), ref, atol=1e-5, rtol=0)


def test_coop_from_template_reproduces_the_frozen_sentence(pengi_backbone):
    from stages.tuning.config import MethodConfig
    from stages.tuning.learners import build_learner

    names = ["dog", "rain", "vacuum cleaner", "hi-hat"]
    learner = build_learner(pengi_backbone, MethodConfig(name="coop", ctx_init="a sound of a"),
                            ["a sound of a {}."], seed=0)
    learner.set_classnames(names)
    with torch.no_grad():
        z = learner.class_embeddings()
    ref = torch.nn.functional.normalize(pengi_backbone.encode_text([f"a sound of a {c}." for c in names]), dim=-1)
    torch.testing.assert_close(z, ref, atol=1e-5, rtol=0)


def test_log_mel_equals_numpy_float64(pengi_backbone):
    rng = np.random.default_rng(0)
    wave = rng.standard_normal(44100).astype(np.float32) * 0.1
    ours = pengi_backbone.logmel(torch.from_numpy(wave)[None]).double().numpy()[0, 0]
    padded = np.pad(wave.astype(np.float64), 512, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic hann
    frames = np.stack([padded[i : i + 1024] * window for i in range(0, len(padded) - 1024 + 1, 320)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = power @ pengi_backbone.logmel.mel_filters.double().numpy()
    ref = 10 * np.log10(np.maximum(mel, 1e-10))
    assert ours.shape == ref.shape == (138, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_audio_length_rule_and_deterministic_eval(pengi_backbone):
    short = np.arange(1, 100_001, dtype=np.float32)
    fitted = pengi_backbone.fit_clip(short)
    assert fitted.shape == (308_700,) and fitted[100_000] == 1 and fitted[-1] == 8_700  # repeated, no zeros
    long = np.arange(400_000, dtype=np.float32)
    assert pengi_backbone.fit_clip(long)[0] == (400_000 - 308_700) // 2  # centre crop
    clip = np.random.default_rng(1).standard_normal(50_000).astype(np.float32)
    a = pengi_backbone.encode_audio([clip])
    torch.testing.assert_close(a, pengi_backbone.encode_audio([clip]), atol=0, rtol=0)
    assert a.shape == (1, pengi_backbone.embed_dim)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2)}, "x": _Payload(marker)}, path)
    with pytest.raises(UserError) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and "refused" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
    with pytest.raises(Exception):  # the control: full unpickling would have run it
        pickle.loads(pickle.dumps(_Payload(marker)))
        raise RuntimeError("ran")
    assert marker.exists()


def test_second_read_comes_from_the_safetensors_cache_not_the_pickle(tmp_path, monkeypatch):
    path = tmp_path / "w.pth"
    torch.save({"model": {"module.a": torch.arange(4.0), "b": torch.ones(2, 2)}}, path)
    first = read_checkpoint(path)
    assert set(first) == {"a", "b"}

    def no_pickle(*args, **kwargs):
        raise AssertionError("the pickle was opened again")

    monkeypatch.setattr(torch, "load", no_pickle)
    second = read_checkpoint(path)
    assert set(second) == {"a", "b"} and torch.equal(second["a"], first["a"])


@pytest.mark.parametrize("damage, message", [
    ("missing", "missing key for 'text_projection.layer_norm.bias'"),
    ("other-kind", "unexpected key 'text_encoder.base.embeddings.word_embeddings.weight'"),
    ("truncated", "cannot read it as a torch checkpoint"),
])
def test_bad_checkpoints_exit_2_with_one_line_naming_file_and_key(tmp_path, capsys, damage, message):
    from pipeline.cli import main

    folder = tmp_path / damage
    folder.mkdir()
    path = folder / "pengi.pth"
    state = random_state("pengi", "tiny", 0)
    if damage == "missing":
        del state["caption_encoder.projection.layer_norm.bias"]
    if damage == "other-kind":
        state["text_encoder.base.embeddings.word_embeddings.weight"] = torch.zeros(3, 4)
    torch.save({"model": state}, path)
    clip_style_tokenizer().save_pretrained(folder / "tokenizer")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SystemExit) as info:
        main(["backbones", "info", str(folder), "--set", "backbone.kind=pengi", "--set", "backbone.device=cpu"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert message in err and str(path) in err


def test_spec_augment_zeroes_at_most_two_time_and_two_mel_stripes_in_train_mode_only():
    from stages.backbones.nets.htsat import SpecAugment

    aug = SpecAugment()
    x = torch.ones(3, 1, 300, 64)
    assert torch.equal(aug.eval()(x.clone()), x)  # eval mode: identity
    torch.manual_seed(0)
    out = aug.train()(x.clone())
    for clip in out[:, 0]:
        zero_frames = (clip == 0).all(dim=1)      # whole frames zeroed: the time stripes
        zero_bins = (clip == 0).all(dim=0)        # whole mel bins zeroed: the frequency stripes
        assert int(zero_frames.sum()) <= 2 * 63 and int(zero_bins.sum()) <= 2 * 7
        # every zero lies in a zeroed frame or a zeroed bin (stripes, nothing else)
        assert torch.equal(clip == 0, zero_frames[:, None] | zero_bins[None, :])
    assert (out == 0).any()


def test_train_mode_towers_act_as_palm_trained_them(pengi_dir):
    """Pengi's projection dropout (p 0.5), HTS-AT's drop-path and SpecAugment act in train mode only; bn0's
    running statistics move, and the eval-mode features after it use them (a backbone of its own: it changes)."""
    model = load_backbone(pengi_dir, BackboneConfig(device="cpu"))
    assert model.audio_projection.drop.p == 0.5 and model.text_projection.drop.p == 0.5
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(44_100 * 2).astype(np.float32) * 0.1 for _ in range(2)]
    before = model.encode_audio(waves)
    assert torch.equal(before, model.encode_audio(waves)) and torch.equal(*[model.encode_text(["rain"])] * 2)
    stats = model.tower_buffers()
    assert set(stats) == {f"audio_model.audio_encoder.batch_norm.{k}" for k in
                          ("running_mean", "running_var", "num_batches_tracked")}
    model.set_towers_training(True)
    try:
        assert not torch.equal(model.encode_audio(waves), model.encode_audio(waves))
        assert not torch.equal(model.encode_text(["rain"]), model.encode_text(["rain"]))
    finally:
        model.set_towers_training(False)
    moved = model.tower_buffers()
    assert all(not torch.equal(stats[k], moved[k]) for k in stats)
    after = model.encode_audio(waves)
    assert not torch.equal(after, before) and torch.equal(after, model.encode_audio(waves))
    model.load_tower_buffers(stats)  # the saved statistics put back: the features of before
    assert torch.equal(model.encode_audio(waves), before)
