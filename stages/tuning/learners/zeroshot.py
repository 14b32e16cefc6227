"""Zero-shot: no parameters; class embedding = template-averaged frozen embedding (stages/zeroshot.py)."""
from __future__ import annotations

from typing import Sequence

import torch

from stages.tuning.learners.base import PromptLearner, unit
from stages.zeroshot import zeroshot_class_embeddings


class ZeroShotLearner(PromptLearner):
    name = "zeroshot"
    trainable = False
    starts_at_template = True

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None,
                 logit_scale: float | str = "checkpoint"):
        super().__init__(backbone, logit_scale)
        self.templates = list(templates)
        self.register_buffer("class_emb", torch.empty(0), persistent=False)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        super().set_classnames(classnames)
        self.class_emb = zeroshot_class_embeddings(self.backbone, self.classnames, self.templates).to(self.backbone.device)

    def class_embeddings(self) -> torch.Tensor:
        return self.class_emb

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        return self.logit_scale() * unit(audio) @ self.class_emb.t()
