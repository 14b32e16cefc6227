"""DePT on a CoOp-family prompt: a base-class head over channel-wise transformed features, decoupled from it.

Zhang et al., "DePT: Decoupled Prompt Tuning", CVPR 2024 (public code Koorye/DePT; read for ideas only).
`DecoupledHead` adds to any CoOp-family learner (CoOp, KgCoOp, CoCoOp: the same prompt, hence SEPT plugs in
exactly as into the base method):
- a channel-wise transform (scale, init 1; shift, init 0) on text features and another on audio features;
- a linear head D -> C_base over transformed features, trained on the concatenation of [text features of
  the batch's labels, audio features] with both label copies. The text feature of a clip's label is the class
  embedding its logits use: shared (CoOp, KgCoOp) or that clip's own instance-conditioned one (CoCoOp);
- the transforms and the head act on the RAW tower outputs (projected, not normalised: the text tower's
  output for the prompt, the frozen audio embedding as cached), as Koorye/DePT's elp_coop.py feeds
  `_forward_logits_linear_probe` the encoders' outputs; only the similarity branch uses unit vectors;
- loss (1 - w) CE(similarity logits) + w CE(head) + the base method's own term unweighted (KgCoOp's
  kg_weight * (1 - mean cos), on the untransformed class embeddings, as Koorye/DePT's elp_kgcoop.py adds it),
  w = method.dept_weight (0.7);
- scoring the training (base) classes fuses (1 - w) * the base method's own similarity logits (CoCoOp's per
  clip) + w head; any other class list (new classes, cross-dataset targets) uses the similarity logits only:
  the head is never called for them;
- the head and the transforms learn at method.dept_lr_mult (6.5) times the prompt's learning rate (the prompt
  and CoCoOp's meta-net at 1x) once the schedule runs; during a constant warm-up every group runs at
  train.warmup_lr, as Dassl's ConstantWarmupScheduler sets them.

The head exists once the training classes are set; a checkpoint holds it with the class names it scores
(as UTF-8 bytes in `head_classes`), so loading onto other classes keeps the prompt (and meta-net) and drops
the head.
"""
from __future__ import annotations

import json
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stages.tuning.learners.base import TrainForward
from stages.tuning.learners.cocoop import CoCoOpLearner
from stages.tuning.learners.coop import CoOpLearner
from stages.tuning.learners.kgcoop import KgCoOpLearner

HEAD_CLASSES = "head_classes"


class ChannelTransform(nn.Module):
    """x * scale + shift per channel (DePT's FiLM-style transform), starting as the identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)  # in x's dtype: the loss's precision


def label_text(text: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The class embedding [B, D] of each clip's label: from shared `text` [C, D], or per clip [B, C, D]."""
    if text.ndim == 2:
        return text[labels]
    return text[torch.arange(labels.shape[0], device=labels.device), labels]


class DecoupledHead:
    """DePT's decoupled head, mixed in before a CoOp-family learner: `class X(DecoupledHead, CoOpLearner)`.
    It only wraps the base learner's forward, loss and logits; the prompt stays the base method's."""

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
        # The head is drawn from the run's generator once the classes are known, after everything the base
        # learner drew in its own __init__: the base method's initial values do not move.
        self._generator = generator

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
        """The base method's embeddings; the transforms and the head run later, in `method_loss`, outside autocast."""
        if not self.fuses():
            raise RuntimeError("DePT trains on the classes given to set_train_classes")
        return super().forward_train(audio, phrase_ids, phrase_mask, cocoop_bias)

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The base head in the dtype of `features` (float32 in training, whatever the towers ran in)."""
        return F.linear(features, self.head.weight.to(features.dtype), self.head.bias.to(features.dtype))

    def method_loss(self, out: TrainForward, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(1 - w) CE(similarity of the unit features) + w CE(head over [transformed raw text of the labels;
        transformed raw audio]) + the base method's `extra_loss`. In the dtype of `out` (float32 from the
        trainer), transforms and head included."""
        ce = F.cross_entropy(self.logits(out), labels)
        # At w = 0 the head's gradient into the prompt is exactly zero; cutting that branch keeps the base method's
        # backward untouched (a zero gradient summed in still changes the memory layout of CoCoOp's [B, C, D]
        # text gradient, hence the text tower's backward rounding). The head itself still gets its gradient.
        if out.text_raw is None or out.audio_raw is None:
            raise RuntimeError(f"{self.name}: the base learner's forward gave no raw features for the head")
        text = out.text_raw if self.weight else out.text_raw.detach()
        feats = torch.cat([self.text_transform(label_text(text, labels)), self.audio_transform(out.audio_raw)])
        head = F.cross_entropy(self.head_logits(feats), torch.cat([labels, labels]))
        loss = (1.0 - self.weight) * ce + self.weight * head
        return self.plus_extra_loss(out, loss, {"ce": ce.detach(), "head": head.detach()})

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        sim = super().predict_logits(audio)  # the base method's own logits (CoCoOp: per clip)
        if not self.fuses():
            return sim  # new classes, other datasets: the prompt alone
        # The head reads the raw audio embedding (not normalised), in float32 like the similarity.
        return (1.0 - self.weight) * sim + self.weight * self.head_logits(self.audio_transform(audio.float()))

    # ---- optimisation and checkpoints ---------------------------------------------------------
    def param_groups(self) -> list[dict]:
        decoupled = [*self.text_transform.parameters(), *self.audio_transform.parameters()]
        if self.head is not None:
            decoupled += list(self.head.parameters())
        own = {id(p) for p in decoupled}
        prompt = [p for p in self.parameters() if p.requires_grad and id(p) not in own]  # ctx (+ meta-net)
        return [{"params": prompt, "lr_mult": 1.0}, {"params": decoupled, "lr_mult": self.lr_mult}]

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


class DePTLearner(DecoupledHead, CoOpLearner):
    """DePT on CoOp's prompt (Koorye/DePT's elp_coop.py)."""
    name = "dept"


class KgCoOpDePTLearner(DecoupledHead, KgCoOpLearner):
    """DePT on KgCoOp's prompt, its knowledge term kept at full weight (Koorye/DePT's elp_kgcoop.py)."""
    name = "kgcoop-dept"


class CoCoOpDePTLearner(DecoupledHead, CoCoOpLearner):
    """DePT on CoCoOp's instance-conditioned prompt (Koorye/DePT's elp_cocoop.py)."""
    name = "cocoop-dept"
