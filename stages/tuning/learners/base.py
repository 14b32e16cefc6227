"""The learner contract: what every prompt learner offers the trainer, the evaluator, the checkpoint
code, the neighbor bank and the diagnostics. Nothing outside a learner's own module tests its class.

A learner holds only prompt parameters (context vectors, a meta-net, a head). The frozen backbone is kept
as a plain attribute, not a child module, so `state_dict()`, `parameters()` and `.train()` never reach
the towers. The contract, in the order a run uses it:

- `set_train_classes(names)`: the classes it will train on; a learner with per-class parameters (a
  head over the base classes, per-class vectors) creates them here. Called once, before training.
- `set_classnames(names)`: the classes `predict_logits` scores next (training classes, new classes,
  another dataset's). A learner that cannot score classes it never trained on raises a UserError here,
  saying so, which the run calls before training.
- `forward_train` / `method_loss`: one training forward, stopped before any loss (embeddings only, under
  the towers' autocast), and the method's own loss on them, everything it adds on top included (a head, a
  regulariser): the trainer runs `method_loss` in float32 with autocast off. A regulariser added to the CE
  lives in `extra_loss`, so a head stacked on the method (DePT) reweights the CE and keeps the regulariser.
- `logit_scale()`: `train.logit_scale`, a fixed number (PALM's 100) or the backbone's learned scale.
- `predict_logits(audio)`: evaluation logits for the current class names.
- `param_groups()`: the trainable parameters with their learning-rate multiplier.
- `prompt_state()` / `load_prompt_state(state)`: exactly what a checkpoint holds; loading onto other
  classes keeps what transfers (the prompt) and drops what does not (a head over other classes).
- SEPT (`supports_sept`): `phrases_fit`, `tokenize_phrases`, `phrase_pad_id` and `embed_phrases` put neighbor
  phrases through the learned prompt; `class_embeddings()` gives the unit class embeddings it scores with.
- `run_notes()`: what metrics.json and the report must say about how this run scored its classes.

Class-specific tensors built by `set_classnames` (token ids, zero-shot embeddings) are not checkpointed.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TrainForward:
    """One training forward pass, stopped before any loss so the trainer can compute every loss in float32
    outside autocast: unit audio embeddings `audio` [B, D]; the unit class embeddings the logits use, `text`
    [C, D] shared by all clips or [B, C, D] per clip (CoCoOp); when phrases were given, the unit class
    embeddings z [C, D] and unit phrase embeddings p [P, D] of L_se; and, where the learner has them, the raw
    (projected, not normalised) tower outputs behind `audio` and `text`: `audio_raw` [B, D] and `text_raw`
    (the shape of `text`), which a head on the raw features reads (DePT, as Koorye/DePT computes it)."""

    audio: torch.Tensor
    text: torch.Tensor
    z: torch.Tensor | None = None
    p: torch.Tensor | None = None
    audio_raw: torch.Tensor | None = None
    text_raw: torch.Tensor | None = None

    def float(self) -> "TrainForward":
        return TrainForward(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).float()
                               for f in fields(self)})


def cosine_logits(scale: float, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """scale * cos(audio_b, text_c) as [B, C] for unit `audio` [B, D] and unit `text` [C, D] or [B, C, D]."""
    if text.ndim == 2:
        return scale * audio @ text.t()
    return scale * torch.einsum("bd,bcd->bc", audio, text)


class PromptLearner(nn.Module):
    name: str = "base"
    trainable: bool = True
    supports_sept: bool = False   # True: neighbor phrases can go through the learned prompt (SEPT)
    # True: built with method.ctx_init = a template's words, it scores exactly as zero-shot with that one
    # template before any step (the frozen model); False where an extra part changes it from the start.
    starts_at_template: bool = False

    def __init__(self, backbone, logit_scale: float | str = "checkpoint"):
        super().__init__()
        self.__dict__["backbone"] = backbone  # not a submodule: the towers stay out of state_dict/parameters
        self.classnames: list[str] = []
        self.fixed_logit_scale = None if logit_scale == "checkpoint" else float(logit_scale)

    # ---- classes -----------------------------------------------------------------------------
    def set_train_classes(self, classnames: Sequence[str]) -> None:
        """The classes trained on; per-class parameters are created here. Ends with them as current classes."""
        self.set_classnames(classnames)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        """The classes `predict_logits` scores next; a UserError when the learner cannot score them."""
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
        """The baseline's own loss (cross-entropy over the training classes, plus `extra_loss`) and named parts
        for the log. Computed in the dtype of `out`: the trainer hands it float32 embeddings outside autocast."""
        ce = F.cross_entropy(self.logits(out), labels)
        return self.plus_extra_loss(out, ce, {"ce": ce.detach()})

    def extra_loss(self, out: TrainForward) -> tuple[torch.Tensor | None, dict]:
        """The method's own weighted term added to its cross-entropy (KgCoOp's knowledge term), with named parts
        for the log; None where there is none. Kept apart so a head on top (DePT) can reweight the CE alone."""
        return None, {}

    def plus_extra_loss(self, out: TrainForward, loss: torch.Tensor, parts: dict) -> tuple[torch.Tensor, dict]:
        """(`loss` + `extra_loss`, `parts` with its named parts): how every method_loss ends."""
        extra, more = self.extra_loss(out)
        return (loss if extra is None else loss + extra), {**parts, **more}

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        """Evaluation logits [B, C] for the current class names."""
        raise NotImplementedError

    def class_embeddings(self) -> torch.Tensor:
        """Unit class embeddings [C, D] of the current class names, as scored (no instance bias)."""
        raise NotImplementedError(f"{self.name} does not provide class embeddings")

    # ---- SEPT: neighbor phrases through the learned prompt (only where supports_sept) --------
    def tokenize_phrases(self, phrases: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) [P, L] on the CPU of neighbor phrases in the learner's prompt layout."""
        raise NotImplementedError(f"{self.name} cannot embed neighbor phrases (supports_sept is False)")

    def phrases_fit(self, phrases: Sequence[str]) -> list[bool]:
        """Per phrase: whether its prompt fits the text tower (a run leaves out those that do not)."""
        raise NotImplementedError(f"{self.name} cannot embed neighbor phrases (supports_sept is False)")

    @property
    def phrase_pad_id(self) -> int:
        """The id that pads phrase rows of different lengths."""
        raise NotImplementedError(f"{self.name} cannot embed neighbor phrases (supports_sept is False)")

    def embed_phrases(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unit embeddings [P, D] of tokenized phrases through the learned prompt."""
        raise NotImplementedError(f"{self.name} cannot embed neighbor phrases (supports_sept is False)")

    # ---- optimisation and reporting ---------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """Trainable parameters as optimizer groups; "lr_mult" scales the schedule's lr for a group."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr_mult": 1.0}]

    def run_notes(self) -> dict:
        """Facts about how this learner scored its classes that metrics.json and the report must show."""
        return {}

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
