"""PALM's training conditions on the tiny random CLAP: train-mode towers (train.tower_mode), seeded random crops
at test (train.eval_crop), channels end to end (data.channels), and an exact resume of a train-mode run.

Every test that puts towers in train mode loads its own backbone: train mode moves BatchNorm statistics, and
the session's `tiny_backbone` is shared read-only.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone
from stages.data.audio import load_audio, resample
from stages.data.clips import Clip
from stages.data.config import DataConfig
from stages.tuning import trainer as trainer_mod
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig
from stages.tuning.features import evaluation_features, training_data
from stages.tuning.learners import build_learner

from tuning_kit import CLASSES, TEMPLATES

BASE = CLASSES[:3]
RATE = 16_000  # the tiny CLAP's rate; its clips are 2 s


def own_backbone(tiny_clap_dir):
    return load_backbone(tiny_clap_dir, BackboneConfig(device="cpu"))


def learner(backbone, method="coop", seed=1):
    out = build_learner(backbone, MethodConfig(name=method, n_ctx=4), TEMPLATES, seed)
    out.set_train_classes(BASE)
    return out


def waves(n=6, seconds=3.0):
    """n distinct waveforms longer than the tower's 2 s window (so crops matter)."""
    rng = np.random.default_rng(0)
    return [rng.standard_normal(int(RATE * seconds)).astype(np.float32) * 0.1 for _ in range(n)]


@pytest.fixture(scope="module")
def long_clips(tmp_path_factory):
    """Six 3 s mono WAV clips at 16 kHz, labelled 0, 1, 2, 0, 1, 2."""
    root = tmp_path_factory.mktemp("long-clips")
    clips = []
    for i, w in enumerate(waves()):
        path = root / f"clip{i}.wav"
        sf.write(path, w, RATE)
        clips.append(Clip(path=path, label=i % 3, classname=BASE[i % 3]))
    return clips


def test_train_mode_forwards_differ_and_batchnorm_statistics_move(tiny_clap_dir):
    backbone = own_backbone(tiny_clap_dir)
    model = learner(backbone)
    x = torch.randn(4, backbone.embed_dim, generator=torch.Generator().manual_seed(0))
    before = backbone.tower_buffers()
    assert before and all(".running_" in k or "num_batches" in k for k in before)
    eval_text = [model.forward_train(x).text.detach() for _ in range(2)]
    eval_audio = [backbone.encode_audio(waves(4)) for _ in range(2)]
    assert torch.equal(*eval_text) and torch.equal(*eval_audio)  # eval mode: deterministic, stats untouched
    assert all(torch.equal(v, backbone.tower_buffers()[k]) for k, v in before.items())

    backbone.set_towers_training(True)
    try:
        assert all(m.training for m in backbone.clap.modules()) and not any(p.requires_grad for p in
                                                                              backbone.parameters())
        train_text = [model.forward_train(x).text.detach() for _ in range(2)]
        assert not torch.equal(*train_text), "text dropout is off: two train-mode forwards were equal"
        backbone.encode_audio(waves(4))
    finally:
        backbone.set_towers_training(False)
    after = backbone.tower_buffers()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.endswith("running_mean") for k in moved) and any(k.endswith("running_var") for k in moved)
    assert not any(m.training for m in backbone.clap.modules())
    later = backbone.encode_audio(waves(4))
    assert not torch.equal(later, eval_audio[0]), "the moved statistics must change the eval-mode features"
    assert torch.equal(later, backbone.encode_audio(waves(4)))  # and eval mode is deterministic again


def test_palm_recomputes_its_class_name_features_through_train_mode_towers(tiny_clap_dir):
    backbone = own_backbone(tiny_clap_dir)
    model = learner(backbone, "palm")
    frozen = model.class_embeddings().detach()
    backbone.set_towers_training(True)
    try:
        noisy = [model.class_embeddings().detach() for _ in range(2)]
    finally:
        backbone.set_towers_training(False)
    assert not torch.equal(*noisy) and not torch.equal(noisy[0], frozen)
    assert torch.equal(model.class_embeddings(), frozen)  # eval mode: the cached frozen features again


def run(model, data, tmp_path, name, cfg, resume=False):
    return trainer_mod.train(model, data, cfg, SeptConfig(), None, seed=3, run_dir=tmp_path / name,
                             identity={"config": {"train": {"epochs": cfg.epochs}}},
                             backbone_fingerprint=model.backbone.fingerprint, resume=resume, progress=False)


def test_a_resumed_train_mode_run_is_bit_identical_to_an_uninterrupted_one(tiny_clap_dir, long_clips, tmp_path,
                                                                           monkeypatch):
    """PALM (its class-name features through the text tower's dropout at every step), 3 epochs of 2 steps, cut
    after epoch 2: BatchNorm statistics and torch's global generator come back from the checkpoint."""
    method = "palm"
    cfg = TrainConfig(epochs=3, batch_size=3, lr=0.05, tower_mode="train", random_crop=True)
    labels = torch.tensor([c.label for c in long_clips])

    def fresh():  # a new process: its own backbone, its own learner
        backbone = own_backbone(tiny_clap_dir)
        data, feats = training_data(backbone, long_clips, labels, None, cfg, DataConfig(), progress=False)
        assert feats is None  # encoded at every step, never cached
        return learner(backbone, method), data

    whole, data = fresh()
    run(whole, data, tmp_path, "whole", cfg)

    real_save = trainer_mod.save_checkpoint

    def save_then_die(root, epoch, *args, **kwargs):  # stand-in for a kill right after epoch 2's checkpoint
        real_save(root, epoch, *args, **kwargs)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_die)
    first, data = fresh()
    with pytest.raises(KeyboardInterrupt):
        run(first, data, tmp_path, "cut", cfg)
    assert not first.backbone.towers_training  # an interrupted run leaves eval-mode towers behind
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)

    resumed, data = fresh()
    torch.manual_seed(12345)  # whatever the new process's global generator holds: the checkpoint's state wins
    summary = run(resumed, data, tmp_path, "cut", cfg, resume=True)
    assert summary["resumed_from_epoch"] == 2 and summary["tower_mode"] == "train"
    for k, v in whole.prompt_state().items():
        assert torch.equal(v, resumed.prompt_state()[k]), k
    a, b = whole.backbone.tower_buffers(), resumed.backbone.tower_buffers()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], v) for k, v in own_backbone(tiny_clap_dir).tower_buffers().items())
    logs = [[{k: v for k, v in json.loads(x).items() if k != "seconds"}
             for x in (tmp_path / d / "train_log.jsonl").read_text().splitlines()] for d in ("whole", "cut")]
    assert logs[0] == logs[1]
    assert (tmp_path / "cut" / "tower_buffers.safetensors").is_file()


def test_test_crops_are_seeded(tiny_backbone, long_clips, tmp_path):
    from types import SimpleNamespace

    # the two fields of a plan's evaluation (pipeline/protocols/plans.py EvalSet) that evaluation_features reads
    evals = [SimpleNamespace(name="base", clips=long_clips[:3]), SimpleNamespace(name="new", clips=long_clips[3:])]
    rand, data = TrainConfig(eval_crop="random"), DataConfig()
    one = evaluation_features(tiny_backbone, evals, None, rand, data, seed=1, progress=False)
    again = evaluation_features(tiny_backbone, evals, None, rand, data, seed=1, progress=False)
    other = evaluation_features(tiny_backbone, evals, None, rand, data, seed=2, progress=False)
    fixed = evaluation_features(tiny_backbone, evals, tmp_path / "cache", TrainConfig(), data, seed=1, progress=False)
    for name in ("base", "new"):
        assert torch.equal(one[name], again[name])             # same seed, same windows
        assert not torch.equal(one[name], other[name])         # another seed, other windows
        assert not torch.equal(one[name], fixed[name])         # not the centre window
    centre = tiny_backbone.encode_audio([load_audio(c.path, RATE) for c in long_clips[:3]])
    torch.testing.assert_close(fixed["base"], centre, atol=0, rtol=0)
    # the windows themselves: one generator for the evaluations in order, seeded from the run's seed
    from stages.backbones.clip_length import crop_offset
    from stages.tuning.features import EVAL_CROP_STREAM
    from stages.tuning.trainer import derived_generator

    g = derived_generator(1, EVAL_CROP_STREAM)
    starts = [crop_offset(3 * RATE, 2 * RATE, True, g) for _ in long_clips]
    expect = tiny_backbone.encode_audio([load_audio(c.path, RATE)[s : s + 2 * RATE] for c, s in zip(long_clips, starts)])
    torch.testing.assert_close(torch.cat([one["base"], one["new"]]), expect, atol=1e-5, rtol=0)


def test_concat_lays_the_channels_of_a_stereo_file_end_to_end(tmp_path, tiny_backbone):
    left = np.linspace(-0.5, 0.5, RATE, dtype=np.float32)         # a ramp
    right = np.full(RATE, 0.25, dtype=np.float32)                 # a constant
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    concat = load_audio(path, RATE, channels="concat")
    assert concat.shape == (2 * RATE,)
    np.testing.assert_array_equal(concat[:RATE], left)            # channel 0 first, whole,
    np.testing.assert_array_equal(concat[RATE:], right)           # then channel 1
    np.testing.assert_allclose(load_audio(path, RATE), (left + right) / 2, atol=1e-7)  # mean: the default
    # another rate: each channel resampled on its own, then end to end (Pengi resamples before reshape(-1))
    at8k = load_audio(path, 8_000, channels="concat")
    np.testing.assert_array_equal(at8k, np.concatenate([resample(left, RATE, 8_000), resample(right, RATE, 8_000)]))
    mono = tmp_path / "mono.wav"
    sf.write(mono, left, RATE, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(mono, RATE, channels="concat"), left)  # mono: unchanged

    # Through the feature cache: the layout is part of the key, so each has its own cached embedding.
    from stages.audio_features import clip_features

    clip = [Clip(path=path, label=0, classname=BASE[0])]
    mean_f = clip_features(tiny_backbone, clip, tmp_path / "cache", progress=False)
    cat_f = clip_features(tiny_backbone, clip, tmp_path / "cache", progress=False, channels="concat")
    assert not torch.equal(mean_f, cat_f)
    torch.testing.assert_close(cat_f, tiny_backbone.encode_audio([concat]), atol=0, rtol=0)  # 2 s = the window
    assert torch.equal(clip_features(tiny_backbone, clip, tmp_path / "cache", progress=False), mean_f)


def test_train_bn_eval_keeps_batchnorm_still_while_dropout_acts(tiny_clap_dir):
    """jhyukjang/SubT's run_epoch: model.train(), then bn0.eval(): the towers' dropout acts, BatchNorm does not move."""
    backbone = own_backbone(tiny_clap_dir)
    model = learner(backbone)
    x = torch.randn(4, backbone.embed_dim, generator=torch.Generator().manual_seed(0))
    before = backbone.tower_buffers()
    eval_audio = backbone.encode_audio(waves(4))
    backbone.set_towers_training(True, batchnorm=False)
    try:
        bns = [m for m in backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert bns and not any(m.training for m in bns) and backbone.clap.text_model.training
        assert not torch.equal(*[model.forward_train(x).text.detach() for _ in range(2)])
        backbone.encode_audio(waves(4))
    finally:
        backbone.set_towers_training(False)
    after = backbone.tower_buffers()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(backbone.encode_audio(waves(4)), eval_audio)  # so the cached test features still hold
