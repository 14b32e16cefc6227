"""Prompt learners behind one registry: name -> class. Add a method by adding a module and a line here."""
from __future__ import annotations

from typing import Sequence

import torch

from cache.errors import UserError
from stages.tuning.learners.base import PromptLearner, TrainForward
from stages.tuning.learners.cocoop import CoCoOpLearner
from stages.tuning.learners.coop import CoOpLearner
from stages.tuning.learners.kgcoop import KgCoOpLearner
from stages.tuning.learners.zeroshot import ZeroShotLearner

LEARNERS: dict[str, type[PromptLearner]] = {
    "zeroshot": ZeroShotLearner,
    "coop": CoOpLearner,
    "cocoop": CoCoOpLearner,
    "kgcoop": KgCoOpLearner,
}


def build_learner(backbone, method_cfg, templates: Sequence[str], seed: int,
                  logit_scale: float | str = "checkpoint") -> PromptLearner:
    """A fresh learner for `method_cfg.name`; its random initial values come from `seed` alone.
    `logit_scale` is `train.logit_scale`: a number, or "checkpoint" for the backbone's own scale."""
    cls = LEARNERS.get(method_cfg.name)
    if cls is None:
        raise UserError(f"--method {method_cfg.name!r}: unknown (known: {', '.join(LEARNERS)})")
    generator = torch.Generator().manual_seed(int(seed))
    return cls(backbone, method_cfg, templates, generator, logit_scale=logit_scale)


__all__ = ["LEARNERS", "PromptLearner", "TrainForward", "build_learner"]
