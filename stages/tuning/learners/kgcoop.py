"""KgCoOp: CoOp plus w * (1 - mean_i cos(z_i, zero-shot embedding of class i)), w = method.kg_weight.

The zero-shot embeddings of the training classes are computed once by the frozen text tower when the
class names are set (a buffer, not saved: new classes get their own on evaluation, where it is unused).
Their templates are `method.kg_templates` (the original, htyao89/KgCoOp, uses one hand-written template
per dataset), or every [text] template averaged when that list is empty.
"""
from __future__ import annotations

from typing import Sequence

import torch

from stages.tuning.learners.base import TrainForward
from stages.tuning.learners.coop import CoOpLearner
from stages.zeroshot import zeroshot_class_embeddings


class KgCoOpLearner(CoOpLearner):
    name = "kgcoop"

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None,
                 logit_scale: float | str = "checkpoint"):
        super().__init__(backbone, method_cfg, templates, generator, logit_scale)
        self.templates = list(method_cfg.kg_templates) or list(templates)
        self.kg_weight = float(method_cfg.kg_weight)
        self.register_buffer("zeroshot_emb", torch.empty(0), persistent=False)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        super().set_classnames(classnames)
        self.zeroshot_emb = zeroshot_class_embeddings(self.backbone, self.classnames, self.templates).to(self.ctx.device)

    def extra_loss(self, out: TrainForward) -> tuple[torch.Tensor, dict]:
        """kg_weight * (1 - mean_i cos(z_i, zero-shot_i)), added to the CE by `method_loss`."""
        kg = 1.0 - (out.z * self.zeroshot_emb.to(out.z.dtype)).sum(-1).mean()  # both unit: the dot is the cosine
        return self.kg_weight * kg, {"kg": kg.detach()}
