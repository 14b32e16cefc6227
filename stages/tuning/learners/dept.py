"""DePT on CoOp's prompt: a base-class head over channel-wise transformed features, decoupled from the prompt.

Zhang et al., "DePT: Decoupled Prompt Tuning", CVPR 2024 (public code Koorye/DePT; read for ideas only).
On top of CoOp's context (the same prompt, hence SEPT plugs in exactly as into CoOp's):
- a channel-wise transform (scale, init 1; shift, init 0) on text features and another on audio features;
- a linear head D -> C_base over transformed features, trained on the concatenation of [text features of
  the batch's labels, audio features] with both label copies;
- loss (1 - w) CE(similarity logits) + w CE(head), w = method.dept_weight (0.7);
- scoring the training (base) classes fuses (1 - w) similarity + w head; any other class list (new classes,
  cross-dataset targets) uses the similarity logits only: the head is never called for them;
- the head and the transforms learn at method.dept_lr_mult (6.5) times the prompt's learning rate.
Features are the unit embeddings the similarity uses (the original transforms CLIP's raw features).

The head exists once the training classes are set; a checkpoint holds it with the class names it scores
(as UTF-8 bytes in `head_classes`), so loading onto other classes keeps the prompt and drops the head.
"""
from __future__ import annotations

import json
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stages.tuning.learners.base import TrainForward, cosine_logits, unit
from stages.tuning.learners.coop import CoOpLearner

HEAD_CLASSES = "head_classes"


class ChannelTransform(nn.Module):
    """x * scale + shift per channel (DePT's FiLM-style transform), starting as the identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)  # in x's dtype: the loss's precision


class DePTLearner(CoOpLearner):
    name = "dept"
    starts_at_template = False  # the base head is fused into the training classes' logits from the start

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None,
                 logit_scale: float | str = "checkpoint"):
        super().__init__(backbone, method_cfg, templates, generator, logit_scale)
        d = backbone.embed_dim
        self.weight = float(method_cfg.dept_weight)
        self.lr_mult = float(method_cfg.dept_lr_mult)
        self.text_transform = ChannelTransform(d).to(self.ctx.device)
        self.audio_transform = ChannelTransform(d).to(self.ctx.device)
        self.head: nn.Linear | None = None
        self.head_classes: list[str] = []
        self._generator = generator  # the head is drawn from the run's generator once the classes are known

    # ---- classes ------------------------------------------------------------------------------
    def set_train_classes(self, classnames: Sequence[str]) -> None:
        d, names = self.backbone.embed_dim, list(classnames)
        head = nn.Linear(d, len(names))
        bound = 1.0 / d ** 0.5  # torch's default Linear init, drawn from the run's generator
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=self._generator)
            head.bias.uniform_(-bound, bound, generator=self._generator)
        self.head, self.head_classes = head.to(self.ctx.device), names
        self.set_classnames(names)

    def fuses(self) -> bool:
        """Whether the current classes are the head's (then the logits are fused)."""
        return self.head is not None and self.classnames == self.head_classes

    # ---- forward ------------------------------------------------------------------------------
    def forward_train(self, audio: torch.Tensor, phrase_ids=None, phrase_mask=None,
                      cocoop_bias: str = "none") -> TrainForward:
        """CoOp's embeddings; the transforms and the head run later, in `method_loss`, outside autocast."""
        if not self.fuses():
            raise RuntimeError("DePT trains on the classes given to set_train_classes")
        return super().forward_train(audio, phrase_ids, phrase_mask, cocoop_bias)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The base head in the dtype of `features` (float32 in training, whatever the towers ran in)."""
        return F.linear(features, self.head.weight.to(features.dtype), self.head.bias.to(features.dtype))

    def method_loss(self, out: TrainForward, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(1 - w) CE(similarity) + w CE(head over [transformed text of the labels; transformed audio]).
        Computed in the dtype of `out` (float32 from the trainer), the transforms and the head included."""
        ce = F.cross_entropy(self.logits(out), labels)
        feats = torch.cat([self.text_transform(out.text[labels]), self.audio_transform(out.audio)])
        head = F.cross_entropy(self.head_logits(feats), torch.cat([labels, labels]))
        loss = (1.0 - self.weight) * ce + self.weight * head
        return loss, {"ce": ce.detach(), "head": head.detach()}

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        a = unit(audio)
        sim = cosine_logits(self.logit_scale(), a, self.class_embeddings())
        if not self.fuses():
            return sim  # new classes, other datasets: the prompt alone
        return (1.0 - self.weight) * sim + self.weight * self.head_logits(self.audio_transform(a))

    # ---- optimisation and checkpoints ---------------------------------------------------------
    def param_groups(self) -> list[dict]:
        decoupled = [*self.text_transform.parameters(), *self.audio_transform.parameters()]
        if self.head is not None:
            decoupled += list(self.head.parameters())
        return [{"params": [self.ctx], "lr_mult": 1.0}, {"params": decoupled, "lr_mult": self.lr_mult}]

    def prompt_state(self) -> dict[str, torch.Tensor]:
        state = super().prompt_state()
        if self.head is not None:
            state[HEAD_CLASSES] = torch.tensor(list(json.dumps(self.head_classes).encode()), dtype=torch.uint8)
        return state

    def load_prompt_state(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        saved = json.loads(bytes(state.pop(HEAD_CLASSES).tolist()).decode()) if HEAD_CLASSES in state else None
        if saved != self.head_classes or self.head is None:
            # Other classes (or none set): the prompt and transforms transfer, a head over other classes does not.
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
            self.head, self.head_classes = None, []
        super().load_prompt_state(state)
