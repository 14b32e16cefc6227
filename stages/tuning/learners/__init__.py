"""Prompt learners behind the method table (stages/tuning/methods.py), which names each class by module path.

Add a method by adding its module and one line in that table; nothing here changes.
"""
from __future__ import annotations

import importlib
from typing import Sequence

import torch

from stages.tuning.learners.base import PromptLearner, TrainForward
from stages.tuning.methods import METHODS, method_info


def learner_class(name: str) -> type[PromptLearner]:
    """The learner class of method `name` (a UserError for an unknown name)."""
    module, _, cls = method_info(name).learner.partition(":")
    return getattr(importlib.import_module(module), cls)


def registered_learners() -> dict[str, type[PromptLearner]]:
    """Every method's learner class, by name (imports them all)."""
    return {name: learner_class(name) for name in METHODS}


def build_learner(backbone, method_cfg, templates: Sequence[str], seed: int,
                  logit_scale: float | str = "checkpoint") -> PromptLearner:
    """A fresh learner for `method_cfg.name`; its random initial values come from `seed` alone.
    `logit_scale` is `train.logit_scale`: a number, or "checkpoint" for the backbone's own scale."""
    cls = learner_class(method_cfg.name)
    generator = torch.Generator().manual_seed(int(seed))
    return cls(backbone, method_cfg, templates, generator, logit_scale=logit_scale)


__all__ = ["PromptLearner", "TrainForward", "build_learner", "learner_class", "registered_learners"]
