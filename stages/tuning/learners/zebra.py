"""ZEBRA on a CoOp-family prompt: the prompt's logits fused with zero-shot logits, plus a self-entropy term.

Hanif et al., INTERSPEECH 2026 (public code asif-hanif/zebra at d428bc6; read for ideas only). `ZeroShotFusion`
adds to CoOp (`zebra`) or CoCoOp (`cocoop-zebra`), the same prompt, so SEPT plugs in as into the base method:
- logits = (1 - w) * the base method's own logits + w * scale * cos(audio, zero-shot_c), w = method.zebra_weight
  (0.5: methods/coop.py and methods/cocoop.py `0.5*logits + 0.5*self.zeroshot_logits(audio_features)`): a
  fusion of logits, not of probabilities, both at the same scale (ZEBRA's 100 on both);
- zero-shot_c: the frozen unit embedding of class c under method.zebra_templates, ZEBRA's one prompt
  f"{prompt_prefix} {c}." with --prompt_prefix 'The is a recording of ' (two spaces, verbatim), for whatever
  classes are scored (training, base or new test, cross targets): ZEBRA fuses inside its model's forward, so its
  base and novel tests both score fused logits;
- loss = CE(fused logits) - method.zebra_entropy * H(softmax(fused logits)), H = mean over clips of
  -sum_c p_c log(p_c + 1e-8), zebra_entropy = 0.05 (utils/utils.py `compute_loss`: `ce_loss - 0.05 * ent_loss`,
  "maximize entropy"), plus the base method's own term (none for CoOp and CoCoOp).
Zero-shot embeddings are computed by the frozen tower in eval mode when the classes are set (ZEBRA computes them
once at the first forward, which during training runs with the text projection's dropout active; ours are the
clean ones). Nothing of it is checkpointed: the prompt (and CoCoOp's meta-net) is the whole state.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from stages.tuning.learners.base import TrainForward, unit
from stages.tuning.learners.cocoop import CoCoOpLearner
from stages.tuning.learners.coop import CoOpLearner
from stages.zeroshot import zeroshot_class_embeddings

ENTROPY_EPS = 1e-8  # utils/utils.py entropy_loss: log(p + eps)


def self_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_c p_c log(p_c + 1e-8), p = softmax(logits): ZEBRA's entropy_loss."""
    p = F.softmax(logits, dim=-1)
    return -(p * torch.log(p + ENTROPY_EPS)).sum(dim=-1).mean()


class ZeroShotFusion:
    """ZEBRA, mixed in before a CoOp-family learner: `class X(ZeroShotFusion, CoOpLearner)`. It wraps the base
    learner's logits, loss and scoring; the prompt stays the base method's."""

    starts_at_template = False  # zero-shot logits of another prompt are fused in from the start

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None,
                 logit_scale: float | str = "checkpoint"):
        super().__init__(backbone, method_cfg, templates, generator, logit_scale)
        self.zebra_weight = float(method_cfg.zebra_weight)
        self.zebra_entropy = float(method_cfg.zebra_entropy)
        self.zebra_templates = list(method_cfg.zebra_templates) or list(templates)
        self.register_buffer("zebra_zeroshot", torch.empty(0), persistent=False)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        super().set_classnames(classnames)
        self.zebra_zeroshot = zeroshot_class_embeddings(self.backbone, self.classnames,
                                                        self.zebra_templates).to(self.ctx.device)

    def zeroshot_logits(self, unit_audio: torch.Tensor) -> torch.Tensor:
        """scale * cos(audio, zero-shot_c) [B, C] in the dtype of `unit_audio`."""
        return self.logit_scale() * unit_audio @ self.zebra_zeroshot.to(unit_audio.dtype).t()

    def fuse(self, prompt_logits: torch.Tensor, unit_audio: torch.Tensor) -> torch.Tensor:
        w = self.zebra_weight
        return (1.0 - w) * prompt_logits + w * self.zeroshot_logits(unit_audio)

    def logits(self, out: TrainForward) -> torch.Tensor:
        return self.fuse(super().logits(out), out.audio)

    def method_loss(self, out: TrainForward, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """CE(fused logits) - zebra_entropy * H(fused) + the base method's `extra_loss`, in the dtype of `out`."""
        fused = self.logits(out)
        ce = F.cross_entropy(fused, labels)
        entropy = self_entropy(fused)
        loss = ce - self.zebra_entropy * entropy
        return self.plus_extra_loss(out, loss, {"ce": ce.detach(), "entropy": entropy.detach()})

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        return self.fuse(super().predict_logits(audio), unit(audio))


class ZebraLearner(ZeroShotFusion, CoOpLearner):
    """ZEBRA on CoOp's prompt (asif-hanif/zebra methods/coop.py with --use_zebra)."""
    name = "zebra"


class CoCoOpZebraLearner(ZeroShotFusion, CoCoOpLearner):
    """ZEBRA on CoCoOp's instance-conditioned prompt (asif-hanif/zebra methods/cocoop.py with --use_zebra)."""
    name = "cocoop-zebra"
