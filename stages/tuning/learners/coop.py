"""CoOp: M context vectors shared by all classes, in the text tower's token-embedding space.

Prompt of class c: "<bos> ctx_1 .. ctx_M c. <eos>" (stages/tuning/prompt_tokens.py builds the ids once).
Initialised N(0, 0.02^2) from the run's generator, or from the token embeddings of an init text, in
which case the prompts before any step are exactly the frozen sentences "<init text> c.".
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from stages.tuning.learners.base import PromptLearner, TrainForward, cosine_logits, unit
from stages.tuning.prompt_tokens import PromptLayout, pad_to


class CoOpLearner(PromptLearner):
    name = "coop"
    supports_sept = True
    starts_at_template = True

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None,
                 logit_scale: float | str = "checkpoint"):
        super().__init__(backbone, logit_scale)
        self.layout = PromptLayout.build(backbone, method_cfg.n_ctx, method_cfg.ctx_init)
        device = backbone.device
        if method_cfg.ctx_init.strip():
            with torch.no_grad():
                ids = torch.tensor([self.layout.slot_ids], dtype=torch.long, device=device)
                ctx = backbone.token_embeddings(ids)[0].float().clone()
        else:
            ctx = torch.empty(self.layout.n_ctx, backbone.text_width).normal_(0.0, 0.02, generator=generator)
        self.ctx = nn.Parameter(ctx.to(device))
        self.register_buffer("class_ids", torch.empty(0, dtype=torch.long), persistent=False)
        self.register_buffer("class_mask", torch.empty(0, dtype=torch.long), persistent=False)

    @property
    def n_ctx(self) -> int:
        return self.layout.n_ctx

    def set_classnames(self, classnames: Sequence[str]) -> None:
        super().set_classnames(classnames)
        ids, mask = self.layout.tokenize(self.backbone, self.classnames, what="class name")
        self.class_ids, self.class_mask = ids.to(self.ctx.device), mask.to(self.ctx.device)

    def tokenize_phrases(self, phrases: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt ids for neighbor phrases: the same layout as class names (same learnable context)."""
        return self.layout.tokenize(self.backbone, phrases, what="neighbor phrase")

    def phrases_fit(self, phrases: Sequence[str]) -> list[bool]:
        return self.layout.fits(self.backbone, phrases)

    @property
    def phrase_pad_id(self) -> int:
        return self.layout.pad_id

    def embed_phrases(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unit phrase embeddings [P, D] through the shared context (no instance bias)."""
        return self.encode_prompts(ids.to(self.ctx.device), mask.to(self.ctx.device))

    def prompt_features(self, ids: torch.Tensor, mask: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Raw (projected, not normalised) embeddings [B, D] of prompts `ids` with the context `ctx` ([M, W]
        shared or [B, M, W] per row)."""
        ctx = self.ctx if ctx is None else ctx
        embeds = self.backbone.token_embeddings(ids)
        b, a = self.layout.n_bos, self.layout.n_bos + self.layout.n_ctx
        ctx = ctx.to(embeds.dtype).expand(ids.shape[0], -1, -1) if ctx.ndim == 2 else ctx.to(embeds.dtype)
        embeds = torch.cat([embeds[:, :b], ctx, embeds[:, a:]], dim=1)
        return self.backbone.encode_text_from_embeddings(embeds, ids, mask)

    def encode_prompts(self, ids: torch.Tensor, mask: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """Unit embeddings [B, D] of prompts `ids` with the context `ctx` ([M, W] shared or [B, M, W] per row)."""
        return unit(self.prompt_features(ids, mask, ctx))

    def class_embeddings(self) -> torch.Tensor:
        return self.encode_prompts(self.class_ids, self.class_mask)

    def classes_and_phrases(self, phrase_ids=None, phrase_mask=None, ctx: torch.Tensor | None = None,
                            raw: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z [C, D] and p [P, D] from one tower call (one batch is cheaper than two on any device), with the
        context `ctx` [M, W] (default: the learned context itself); unit vectors, or the raw tower outputs
        when `raw`."""
        encode = self.prompt_features if raw else self.encode_prompts
        if phrase_ids is None:
            return encode(self.class_ids, self.class_mask, ctx), None
        n_cls = self.class_ids.shape[0]
        length = max(self.class_ids.shape[1], phrase_ids.shape[1])
        ci, cm = pad_to(self.class_ids, self.class_mask, length, self.layout.pad_id)
        pi, pm = pad_to(phrase_ids, phrase_mask, length, self.layout.pad_id)
        feats = encode(torch.cat([ci, pi]), torch.cat([cm, pm]), ctx)
        return feats[:n_cls], feats[n_cls:]

    def forward_train(self, audio: torch.Tensor, phrase_ids=None, phrase_mask=None,
                      cocoop_bias: str = "none") -> TrainForward:
        z_raw, p_raw = self.classes_and_phrases(phrase_ids, phrase_mask, raw=True)
        z = unit(z_raw)
        return TrainForward(audio=unit(audio), text=z, z=z, p=None if p_raw is None else unit(p_raw),
                            audio_raw=audio, text_raw=z_raw)

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        return cosine_logits(self.logit_scale(), unit(audio), self.class_embeddings())
