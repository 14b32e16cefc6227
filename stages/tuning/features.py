"""Where a run's audio features come from: the frozen-feature cache, or the towers at every step.

The default (frozen towers in eval mode, the centre window of every clip) makes a clip's embedding a pure
function of its bytes, so training and test features are read from the cache (stages/audio_features.py).
Three settings break that, each an original's behaviour asked for by a recipe:
- `train.random_crop`: a new window of each training clip at every step (PALM's loader);
- `train.tower_mode = "train"`: train-mode towers (PALM's model.train()), so the same clip gives another
  embedding at every step (dropout, drop-path, SpecAugment, BatchNorm on the batch), and the BatchNorm
  running statistics move, so the test features must be computed after training ("train_bn_eval", SubT's:
  the same with BatchNorm in eval mode, which leaves the test features as cached);
- `train.eval_crop = "random"`: a window of each test clip drawn from the run's seed (PALM crops at test).
Those features are encoded when needed and never cached; the batch of a step goes through the tower at once.
"""
from __future__ import annotations

from typing import Sequence

import torch

from stages.audio_features import clip_features
from stages.tuning.trainer import TrainData, derived_generator

EVAL_CROP_STREAM = 4  # derived_generator stream of the evaluation crops


def per_step_audio(train_cfg) -> bool:
    """Whether training clips are encoded at every step instead of read from the cache."""
    return bool(train_cfg.random_crop) or train_cfg.tower_mode != "eval"


def eval_features_cached(train_cfg) -> bool:
    """Whether test features are the cached frozen ones, computable before training (train-mode towers whose
    BatchNorm stays in eval mode, "train_bn_eval", leave the eval-mode towers as they were)."""
    return train_cfg.eval_crop == "fixed" and train_cfg.tower_mode in ("eval", "train_bn_eval")


def training_data(backbone, clips: Sequence, labels: torch.Tensor, cache, train_cfg, data_cfg,
                  progress: bool = True) -> tuple[TrainData, torch.Tensor | None]:
    """(TrainData of `clips`, their cached features or None when they are encoded at every step)."""
    channels = data_cfg.channels
    if not per_step_audio(train_cfg):
        feats = clip_features(backbone, clips, cache, progress=progress, channels=channels)
        return TrainData(labels=labels, features=feats), feats
    random_crop = bool(train_cfg.random_crop)

    def encode(idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        batch = [clips[i] for i in idx.tolist()]
        return clip_features(backbone, batch, None, random_crop=random_crop, generator=gen, batch_size=len(batch),
                             progress=False, channels=channels)

    return TrainData(labels=labels, encode=encode), None


def evaluation_features(backbone, evals: Sequence, cache, train_cfg, data_cfg, seed: int,
                        progress: bool = True) -> dict[str, torch.Tensor]:
    """{evaluation name: [N, D] test features}: cached centre windows, or (eval_crop random) windows drawn
    from the run's seed, the evaluations in their order from one generator; with train-mode towers, computed
    by the towers as they are after training (call it then), in eval mode."""
    if eval_features_cached(train_cfg):
        return {ev.name: clip_features(backbone, ev.clips, cache, progress=progress, channels=data_cfg.channels)
                for ev in evals}
    random_crop = train_cfg.eval_crop == "random"
    gen = derived_generator(seed, EVAL_CROP_STREAM) if random_crop else None
    return {ev.name: clip_features(backbone, ev.clips, None, random_crop=random_crop, generator=gen,
                                   progress=progress, channels=data_cfg.channels) for ev in evals}
