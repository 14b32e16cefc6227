"""KgCoOp: CoOp plus w * (1 - mean_i cos(z_i, zero-shot embedding of class i)), w = method.kg_weight.

The zero-shot embeddings of the training classes are computed once by the frozen text tower when the
class names are set (a buffer, not saved: new classes get their own on evaluation, where it is unused).
"""
from __future__ import annotations

from typing import Sequence

import torch

from stages.tuning.learners.base import TrainForward
from stages.tuning.learners.coop import CoOpLearner
from stages.zeroshot import zeroshot_class_embeddings


class KgCoOpLearner(CoOpLearner):
    name = "kgcoop"

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None):
        super().__init__(backbone, method_cfg, templates, generator)
        self.templates = list(templates)
        self.kg_weight = float(method_cfg.kg_weight)
        self.register_buffer("zeroshot_emb", torch.empty(0), persistent=False)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        super().set_classnames(classnames)
        self.zeroshot_emb = zeroshot_class_embeddings(self.backbone, self.classnames, self.templates).to(self.ctx.device)

    def method_loss(self, out: TrainForward, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        ce, parts = super().method_loss(out, labels)
        kg = 1.0 - (out.z.float() * self.zeroshot_emb).sum(-1).mean()
        parts["kg"] = kg.detach()
        return ce + self.kg_weight * kg, parts
