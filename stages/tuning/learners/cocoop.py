"""CoCoOp: CoOp plus a meta-net that turns each clip's audio embedding into a bias on every context vector.

meta-net: Linear(D, D/16) -> ReLU -> Linear(D/16, W). The text tower then runs once per clip and class,
so clips go through it `method.cocoop_chunk` at a time; in training each chunk is recomputed in the
backward pass (activation checkpointing) so memory holds one chunk's activations, not the batch's.
For L_se (`sept.cocoop_bias`): "none" gives class names and neighbors the plain context without any
instance bias, so L_se trains the shared context only; "batch_mean" adds the mean of this batch's meta-net
biases, so the meta-net feels L_se too (docs/method.md).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from stages.tuning.learners.base import TrainForward, cosine_logits, unit
from stages.tuning.learners.coop import CoOpLearner


class CoCoOpLearner(CoOpLearner):
    name = "cocoop"
    starts_at_template = False  # the meta-net's bias moves the context from the first step

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None,
                 logit_scale: float | str = "checkpoint"):
        super().__init__(backbone, method_cfg, templates, generator, logit_scale)
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

    def _chunk_features(self, a: torch.Tensor) -> torch.Tensor:
        """Raw class embeddings [b, C, D] for unit audio embeddings `a` [b, D], instance-conditioned contexts."""
        b, n_cls = a.shape[0], self.class_ids.shape[0]
        ctx = self.ctx[None] + self.meta_net(a.to(self.ctx.dtype))[:, None, :]       # [b, M, W]
        ctx = ctx.repeat_interleave(n_cls, dim=0)                                    # [b*C, M, W]
        ids = self.class_ids.repeat(b, 1)
        mask = self.class_mask.repeat(b, 1)
        return self.prompt_features(ids, mask, ctx).view(b, n_cls, -1)

    def _chunk_text(self, a: torch.Tensor) -> torch.Tensor:
        """Unit class embeddings [b, C, D] for unit audio embeddings `a` [b, D], instance-conditioned contexts."""
        return unit(self._chunk_features(a))

    def _instance_features(self, a: torch.Tensor, recompute: bool) -> torch.Tensor:
        """Raw [B, C, D] for unit `a` [B, D], `method.cocoop_chunk` clips at a time through the text tower."""
        rows = []
        for start in range(0, a.shape[0], self.chunk):
            part = a[start : start + self.chunk]
            rows.append(checkpoint(self._chunk_features, part, use_reentrant=False) if recompute
                        else self._chunk_features(part))
        return torch.cat(rows)

    def _logits(self, audio: torch.Tensor, recompute: bool) -> torch.Tensor:
        a = unit(audio)
        return cosine_logits(self.logit_scale(), a, unit(self._instance_features(a, recompute)))

    def forward_train(self, audio: torch.Tensor, phrase_ids=None, phrase_mask=None,
                      cocoop_bias: str = "none") -> TrainForward:
        a = unit(audio)
        text_raw = self._instance_features(a, recompute=torch.is_grad_enabled())
        text = unit(text_raw)
        if phrase_ids is None:
            return TrainForward(audio=a, text=text, audio_raw=audio, text_raw=text_raw)
        ctx = None  # "none": the plain learned context
        if cocoop_bias == "batch_mean":
            ctx = self.ctx + self.meta_net(a.to(self.ctx.dtype)).mean(dim=0)
        elif cocoop_bias != "none":
            raise ValueError(f"cocoop_bias {cocoop_bias!r}: expected none or batch_mean")
        z, p = self.classes_and_phrases(phrase_ids, phrase_mask, ctx)
        return TrainForward(audio=a, text=text, z=z, p=p, audio_raw=audio, text_raw=text_raw)

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        return self._logits(audio, recompute=False)
