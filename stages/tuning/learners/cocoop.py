"""CoCoOp: CoOp plus a meta-net that turns each clip's audio embedding into a bias on every context vector.

meta-net: Linear(D, D/16) -> ReLU -> Linear(D/16, W). The text tower then runs once per clip and class,
so clips go through it `method.cocoop_chunk` at a time; in training each chunk is recomputed in the
backward pass (activation checkpointing) so memory holds one chunk's activations, not the batch's.
For L_se, class names and neighbors use the plain context without the instance bias (DESIGN.md).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from stages.tuning.learners.base import TrainForward, unit
from stages.tuning.learners.coop import CoOpLearner


class CoCoOpLearner(CoOpLearner):
    name = "cocoop"
    starts_at_template = False  # the meta-net's bias moves the context from the first step

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None):
        super().__init__(backbone, method_cfg, templates, generator)
        d, w = backbone.embed_dim, backbone.text_width
        hidden = max(1, d // 16)
        self.meta_net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, w))
        # Seeded init from the run's generator (torch's default init, drawn from `generator`).
        with torch.no_grad():
            for layer in (self.meta_net[0], self.meta_net[2]):
                bound = 1.0 / layer.in_features ** 0.5
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
        self.meta_net.to(self.ctx.device)
        self.chunk = int(method_cfg.cocoop_chunk)

    def _chunk_logits(self, a: torch.Tensor) -> torch.Tensor:
        """Logits [b, C] of unit audio embeddings `a` [b, D] with instance-conditioned contexts."""
        b, n_cls = a.shape[0], self.class_ids.shape[0]
        ctx = self.ctx[None] + self.meta_net(a.to(self.ctx.dtype))[:, None, :]       # [b, M, W]
        ctx = ctx.repeat_interleave(n_cls, dim=0)                                    # [b*C, M, W]
        ids = self.class_ids.repeat(b, 1)
        mask = self.class_mask.repeat(b, 1)
        z = self.encode_prompts(ids, mask, ctx).view(b, n_cls, -1)                   # [b, C, D]
        return self.logit_scale() * (a[:, None, :] * z).sum(-1)

    def _logits(self, audio: torch.Tensor, recompute: bool) -> torch.Tensor:
        a = unit(audio)
        rows = []
        for start in range(0, a.shape[0], self.chunk):
            part = a[start : start + self.chunk]
            rows.append(checkpoint(self._chunk_logits, part, use_reentrant=False) if recompute
                        else self._chunk_logits(part))
        return torch.cat(rows)

    def forward_train(self, audio: torch.Tensor, phrase_ids=None, phrase_mask=None) -> TrainForward:
        logits = self._logits(audio, recompute=torch.is_grad_enabled())
        if phrase_ids is None:
            return TrainForward(logits=logits)
        z, p = self.classes_and_phrases(phrase_ids, phrase_mask)
        return TrainForward(logits=logits, z=z, p=p)

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        return self._logits(audio, recompute=False)
