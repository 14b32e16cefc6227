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
    """One training forward pass, stopped before any loss so the trainer can compute every loss in float32
    outside autocast: unit audio embeddings `audio` [B, D]; the unit class embeddings the logits use, `text`
    [C, D] shared by all clips or [B, C, D] per clip (CoCoOp); and, when phrases were given, the unit class
    embeddings z [C, D] and unit phrase embeddings p [P, D] of L_se."""

    audio: torch.Tensor
    text: torch.Tensor
    z: torch.Tensor | None = None
    p: torch.Tensor | None = None

    def float(self) -> "TrainForward":
        return TrainForward(*(None if t is None else t.float() for t in (self.audio, self.text, self.z, self.p)))


def cosine_logits(scale: float, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """scale * cos(audio_b, text_c) as [B, C] for unit `audio` [B, D] and unit `text` [C, D] or [B, C, D]."""
    if text.ndim == 2:
        return scale * audio @ text.t()
    return scale * torch.einsum("bd,bcd->bc", audio, text)


class PromptLearner(nn.Module):
    name: str = "base"
    trainable: bool = True

    def __init__(self, backbone, logit_scale: float | str = "checkpoint"):
        super().__init__()
        self.__dict__["backbone"] = backbone  # not a submodule: the towers stay out of state_dict/parameters
        self.classnames: list[str] = []
        self.fixed_logit_scale = None if logit_scale == "checkpoint" else float(logit_scale)

    # ---- classes -----------------------------------------------------------------------------
    def set_classnames(self, classnames: Sequence[str]) -> None:
        self.classnames = list(classnames)

    # ---- forward -----------------------------------------------------------------------------
    def logit_scale(self) -> float:
        """`train.logit_scale`: a fixed number (PALM uses 100), or the backbone's own learned scale."""
        return self.fixed_logit_scale if self.fixed_logit_scale is not None else float(self.backbone.logit_scale())

    def forward_train(self, audio: torch.Tensor, phrase_ids=None, phrase_mask=None,
                      cocoop_bias: str = "none") -> TrainForward:
        """Embeddings of one training step (no loss). `cocoop_bias` is `sept.cocoop_bias` (CoCoOp only)."""
        raise NotImplementedError

    def logits(self, out: TrainForward) -> torch.Tensor:
        return cosine_logits(self.logit_scale(), out.audio, out.text)

    def method_loss(self, out: TrainForward, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The baseline's own loss (cross-entropy over the training classes) and named parts for the log.
        Computed in the dtype of `out`: the trainer hands it float32 embeddings outside autocast."""
        ce = F.cross_entropy(self.logits(out), labels)
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
