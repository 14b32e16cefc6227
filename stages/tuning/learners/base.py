"""What every prompt learner offers the trainer, the evaluator and the checkpoint code.

A learner holds only prompt parameters (context vectors, a meta-net). The frozen backbone is kept as a
plain attribute, not a child module, so `state_dict()`, `parameters()` and `.train()` never reach the
towers. Class-specific tensors (token ids of the class prompts, zero-shot embeddings) are set by
`set_classnames` and are not part of the checkpoint: a context trained on base classes loads onto new
classes or another dataset's classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TrainForward:
    """One training forward pass: logits [B, C]; and, when phrases were given, the unit class embeddings
    z [C, D] and unit phrase embeddings p [P, D] from the plain (instance-free) context, for L_se."""

    logits: torch.Tensor
    z: torch.Tensor | None = None
    p: torch.Tensor | None = None


class PromptLearner(nn.Module):
    name: str = "base"
    trainable: bool = True

    def __init__(self, backbone):
        super().__init__()
        self.__dict__["backbone"] = backbone  # not a submodule: the towers stay out of state_dict/parameters
        self.classnames: list[str] = []

    # ---- classes -----------------------------------------------------------------------------
    def set_classnames(self, classnames: Sequence[str]) -> None:
        self.classnames = list(classnames)

    # ---- forward -----------------------------------------------------------------------------
    def logit_scale(self) -> float:
        return float(self.backbone.logit_scale())

    def forward_train(self, audio: torch.Tensor, phrase_ids=None, phrase_mask=None) -> TrainForward:
        raise NotImplementedError

    def method_loss(self, out: TrainForward, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The baseline's own loss (cross-entropy over the training classes) and named parts for the log."""
        ce = F.cross_entropy(out.logits.float(), labels)
        return ce, {"ce": ce.detach()}

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        """Evaluation logits [B, C] for the current class names."""
        raise NotImplementedError

    def encode_phrases_needed(self) -> bool:
        """True when forward_train can embed neighbor phrases through the prompt (every trainable learner)."""
        return self.trainable

    # ---- checkpoint --------------------------------------------------------------------------
    def prompt_state(self) -> dict[str, torch.Tensor]:
        """The trainable prompt parameters by name: exactly what a checkpoint saves."""
        return {k: v.detach() for k, v in self.named_parameters()}

    def load_prompt_state(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.named_parameters())
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or extra:
            raise ValueError(f"prompt state mismatch: missing {missing}, unexpected {extra}")
        with torch.no_grad():
            for k, p in own.items():
                if tuple(state[k].shape) != tuple(p.shape):
                    raise ValueError(f"prompt parameter {k}: saved shape {tuple(state[k].shape)}, "
                                     f"this learner needs {tuple(p.shape)}")
                p.copy_(state[k].to(p.device, p.dtype))


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)
