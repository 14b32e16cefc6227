"""PALM: per-class prompts in the text feature space; the text tower never runs during training.

Hanif et al., "PALM: Few-Shot Prompt Learning for Audio Language Models", EMNLP 2024 (asif-hanif/palm;
read for ideas only). The text input is the class name alone; f_T(c_i) is its unit frozen text feature.
Per training class i: a learnable vector z_i (dimension D, init N(0, 0.02^2)) and lambda_i = sigmoid(l_i),
l_i ~ U(0, 1) at init; class feature = normalise((1 - lambda_i) f_T(c_i) + lambda_i z_i).
Logits are scale * cos with the scale of `train.logit_scale` (PALM fixes it at 100: the palm recipe).

f_T is computed once per backbone fingerprint and class name and kept in memory (`frozen_name_features`),
so training and evaluation never call the text tower again and no gradient reaches it; with train-mode
towers (train.tower_mode = "train", PALM's own training) it is recomputed at every step instead, as PALM's
forward does, through the tower's dropout.
A class PALM never trained on has no z_i: scoring one is refused in one line, unless method.palm_unseen is
"zeroshot", which scores it with lambda = 0 (its frozen class-name feature) and says so in metrics.json
(`method_notes`) and in the report's label. There is no shared prompt for neighbor phrases: no SEPT.
"""
from __future__ import annotations

import json
from typing import Sequence

import torch
from torch import nn

from cache.errors import UserError
from stages.tuning.learners.base import PromptLearner, TrainForward, cosine_logits, unit

CLASSES_KEY = "classes"
# (backbone fingerprint, class name) -> unit frozen feature of the bare name, on the CPU.
_NAME_FEATURES: dict[tuple[str, str], torch.Tensor] = {}


@torch.no_grad()
def frozen_name_features(backbone, names: Sequence[str]) -> torch.Tensor:
    """Unit frozen text features [C, D] of the bare class names; the tower runs only for names not seen yet."""
    todo = [n for n in dict.fromkeys(names) if (backbone.fingerprint, n) not in _NAME_FEATURES]
    if todo:
        feats = unit(backbone.encode_text(list(todo))).cpu()
        for n, f in zip(todo, feats):
            _NAME_FEATURES[(backbone.fingerprint, n)] = f
    return torch.stack([_NAME_FEATURES[(backbone.fingerprint, n)] for n in names])


def _encode_names(names: list[str]) -> torch.Tensor:
    return torch.tensor(list(json.dumps(names).encode()), dtype=torch.uint8)


class PALMLearner(PromptLearner):
    name = "palm"
    supports_sept = False
    starts_at_template = False  # class-name-only text and random z_i: not the template's frozen model

    def __init__(self, backbone, method_cfg, templates: Sequence[str], generator: torch.Generator | None = None,
                 logit_scale: float | str = "checkpoint"):
        super().__init__(backbone, logit_scale)
        self.unseen = method_cfg.palm_unseen
        self._generator = generator
        self.train_classes: list[str] = []
        self.register_parameter("z", None)              # [C, D], made by set_train_classes
        self.register_parameter("lambda_logit", None)   # [C]: lambda_i = sigmoid(lambda_logit_i)
        self.register_buffer("name_features", torch.empty(0), persistent=False)   # f_T of the current classes
        self.register_buffer("rows", torch.empty(0, dtype=torch.long), persistent=False)  # row of z, -1 unseen

    # ---- classes ------------------------------------------------------------------------------
    def set_train_classes(self, classnames: Sequence[str]) -> None:
        names, d = list(classnames), self.backbone.embed_dim
        device = self.backbone.device
        self.z = nn.Parameter(torch.empty(len(names), d).normal_(0.0, 0.02, generator=self._generator).to(device))
        self.lambda_logit = nn.Parameter(torch.rand(len(names), generator=self._generator).to(device))
        self.train_classes = names
        self.set_classnames(names)

    def set_classnames(self, classnames: Sequence[str]) -> None:
        names = list(classnames)
        known = {c: i for i, c in enumerate(self.train_classes)}
        unseen = [c for c in names if c not in known]
        if unseen and self.unseen != "zeroshot":
            shown = ", ".join(repr(c) for c in unseen[:5]) + (f" and {len(unseen) - 5} more" if len(unseen) > 5 else "")
            raise UserError(f"method palm: no prompt for {len(unseen)} classes it never trained on ({shown}); PALM "
                            f"learns one vector per training class: use --protocol fewshot, or set "
                            f"method.palm_unseen=\"zeroshot\" to score them with lambda = 0 (labelled so)")
        super().set_classnames(names)
        self.name_features = frozen_name_features(self.backbone, names).to(self.backbone.device)
        self.rows = torch.tensor([known.get(c, -1) for c in names], dtype=torch.long, device=self.backbone.device)

    # ---- forward ------------------------------------------------------------------------------
    def class_embeddings(self) -> torch.Tensor:
        f = self.name_features
        if self.backbone.towers_training:
            # Train-mode towers (train.tower_mode = "train"): PALM's forward encodes the class names at every
            # step, through its text projection's dropout; no gradient reaches the tower.
            with torch.no_grad():
                f = unit(self.backbone.encode_text(list(self.classnames))).to(f.device)
        if self.z is None:  # nothing trained: every class is unseen (only reachable with palm_unseen = zeroshot)
            return unit(f)
        seen = self.rows >= 0
        rows = self.rows.clamp(min=0)
        lam = torch.where(seen, torch.sigmoid(self.lambda_logit[rows]), torch.zeros_like(rows, dtype=f.dtype))
        z = torch.where(seen[:, None], self.z[rows], torch.zeros_like(f))
        return unit((1.0 - lam[:, None]) * f + lam[:, None] * z)

    def forward_train(self, audio: torch.Tensor, phrase_ids=None, phrase_mask=None,
                      cocoop_bias: str = "none") -> TrainForward:
        if phrase_ids is not None:
            raise ValueError("PALM has no shared prompt for neighbor phrases (no SEPT)")
        return TrainForward(audio=unit(audio), text=self.class_embeddings())

    @torch.no_grad()
    def predict_logits(self, audio: torch.Tensor) -> torch.Tensor:
        return cosine_logits(self.logit_scale(), unit(audio), self.class_embeddings())

    # ---- checkpoints and reporting ------------------------------------------------------------
    def prompt_state(self) -> dict[str, torch.Tensor]:
        state = super().prompt_state()
        if self.train_classes:
            state[CLASSES_KEY] = _encode_names(self.train_classes)
        return state

    def load_prompt_state(self, state: dict[str, torch.Tensor]) -> None:
        state = dict(state)
        saved = json.loads(bytes(state.pop(CLASSES_KEY).tolist()).decode()) if CLASSES_KEY in state else []
        if not self.train_classes and saved:
            current = list(self.classnames)
            self.set_train_classes(saved)       # adopt the saved classes (their vectors are loaded below)
            if current:
                self.set_classnames(current)
        elif saved != self.train_classes:
            raise UserError(f"PALM prompt: holds vectors for the classes {saved}, this run trains "
                            f"{self.train_classes}; PALM's prompts belong to the classes they were trained on")
        super().load_prompt_state(state)

    def run_notes(self) -> dict:
        return {"unseen": "zeroshot"} if self.unseen == "zeroshot" else {}
