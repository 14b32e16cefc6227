"""The interface every audio-language model (ALM) adapter implements, small on purpose.

Stage one (frozen text embeddings of class names and neighbors) and stage two (prompt tuning) see a
backbone only through this class. An adapter holds two frozen towers and their projections into the
joint space of dimension `embed_dim`; it never normalises: callers decide where to L2-normalise.

Frozen means two things, both enforced here: no parameter requires grad, and the towers stay in eval
mode whatever `.train()` is called on (dropout off, BatchNorm statistics untouched), because a tuner
module that holds the backbone as a child calls `.train()` on all its children every epoch. The one
exception is asked for by name: `set_towers_training(True)` (`train.tower_mode = "train"`, PALM's
`model.train()` on the whole model) puts the towers in train mode, parameters still frozen, until
`set_towers_training(False)`; their BatchNorm statistics then move (`tower_buffers` saves them).
"""
from __future__ import annotations

import abc

import numpy as np
import torch
from torch import nn


class AudioTextBackbone(nn.Module, abc.ABC):
    """A frozen audio tower + text tower in one embedding space.

    Attributes (set by the subclass constructor):
        id: hub id or absolute folder path the weights came from.
        fingerprint: 'kind:<id-or-folder-name>@<16 hex>[+dtype]' (stages/backbones/fingerprint.py).
        sample_rate: Hz the audio tower expects; `encode_audio` takes waveforms already at this rate.
        clip_samples: the audio tower's clip length in samples.
        embed_dim: D, the joint embedding width.
        text_width: width of the token embeddings (CoOp's ctx_dim).
        max_text_len: longest token sequence the text tower accepts, special tokens included.
        text_pooling: 'first' | 'eos' | 'last' (stages/backbones/text_pooling.py) | 'mean'.
        item_modality: what one dataset item is: 'audio' (waveforms through `encode_audio`) or 'text'
            (UTF-8 texts through `encode_item_texts`); the kind's registry entry says the same.
    """

    id: str
    fingerprint: str
    sample_rate: int
    clip_samples: int
    embed_dim: int
    text_width: int
    max_text_len: int
    text_pooling: str
    item_modality: str = "audio"

    @property
    def kind(self) -> str:
        """The backbone kind (stages/backbones/registry.py), the fingerprint's prefix."""
        return self.fingerprint.split(":", 1)[0]

    def freeze(self) -> None:
        """Turn every parameter's grad off and put the adapter and its towers in eval mode (constructors call it)."""
        for p in self.parameters():
            p.requires_grad_(False)
        self.train(False)

    towers_training: bool = False  # True only between set_towers_training(True) and (False)
    batchnorm_training: bool = True  # with train-mode towers: BatchNorm too (False: it stays in eval mode)

    def train(self, mode: bool = True) -> "AudioTextBackbone":
        # Record the requested mode (a parent may read it) but keep every tower in eval mode, unless train-mode
        # towers were asked for by name (set_towers_training).
        self.training = mode
        for child in self.children():
            child.train(self.towers_training)
        if self.towers_training and not self.batchnorm_training:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def set_towers_training(self, on: bool, batchnorm: bool = True) -> None:
        """Towers in train mode (dropout, drop-path, BatchNorm on batch statistics and updating its running
        statistics; with `batchnorm` False, BatchNorm stays in eval mode) or back in eval mode; parameters stay
        frozen either way. Only `train.tower_mode` "train" / "train_bn_eval" asks for it (PALM and SubT trained
        so); evaluation always runs after set_towers_training(False)."""
        self.towers_training = bool(on)
        self.batchnorm_training = bool(batchnorm)
        self.train(self.training)

    def tower_buffers(self) -> dict[str, torch.Tensor]:
        """Copies of the towers' BatchNorm running statistics by name: what train-mode towers change."""
        out = {}
        for name, module in self.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                for key, buf in module.named_buffers(recurse=False):
                    out[f"{name}.{key}"] = buf.detach().clone().cpu()
        return out

    def load_tower_buffers(self, state: dict[str, torch.Tensor]) -> None:
        """Put back BatchNorm statistics saved by `tower_buffers` (a resumed train-mode run)."""
        own = dict(self.named_buffers())
        missing = sorted(set(self.tower_buffers()) - set(state))
        if missing or not set(state) <= set(own):
            raise ValueError(f"tower buffers mismatch: missing {missing[:3]}, unexpected "
                             f"{sorted(set(state) - set(own))[:3]}")
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(value.to(own[name].device, own[name].dtype))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.sample_rate if self.sample_rate else 0.0  # 0: no audio tower

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- text -------------------------------------------------------------------------------
    @abc.abstractmethod
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """{'input_ids', 'attention_mask'}: LongTensors [B, L], padded, on the model's device."""

    def _hf_tokenize(self, texts: list[str], strip: bool = False) -> dict[str, torch.Tensor]:
        """tokenize() for a Hugging Face tokenizer in `self.tokenizer`: checked input, padded and truncated to
        `self.max_text_len`, on the model's device; `strip` trims each text first (sentence-transformers does)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("tokenize() takes a list of strings")
        if not texts:
            raise ValueError("tokenize() needs at least one text")
        enc = self.tokenizer([t.strip() for t in texts] if strip else list(texts), padding=True, truncation=True,
                             max_length=self.max_text_len, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device),
                "attention_mask": enc["attention_mask"].to(self.device)}

    @abc.abstractmethod
    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The word embeddings [B, L, text_width] of `input_ids` (no position embeddings)."""

    @abc.abstractmethod
    def encode_text_from_embeddings(
        self, embeds: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Run the text tower on word embeddings; [B, D] projected, not normalised, float32.

        `input_ids` are only read for what the tower derives from ids (position ids, the pooled
        position); the token content comes from `embeds`. Differentiable w.r.t. `embeds`.
        """

    @abc.abstractmethod
    def encode_text(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """[B, D] float32 text embeddings, projected, not normalised; no grad; batched."""

    def encode_text_in_batches(self, texts, batch_size: int | None = None, batch_starts=None) -> torch.Tensor:
        """[len(texts), D] frozen sentence embeddings, a batch at a time through the prompt path
        (tokenize -> token_embeddings -> encode_text_from_embeddings), so a prompt made of the template's own
        tokens reproduces them. batch_starts(n, size) may wrap the batch offsets (a progress bar)."""
        texts = list(texts)
        if not texts:
            return torch.empty(0, self.embed_dim, device=self.device)
        size = batch_size or self.text_batch_size
        starts = batch_starts(len(texts), size) if batch_starts else range(0, len(texts), size)
        out = []
        with torch.no_grad():
            for start in starts:
                tok = self.tokenize(texts[start : start + size])
                ids = tok["input_ids"]
                out.append(self.encode_text_from_embeddings(self.token_embeddings(ids), ids, tok["attention_mask"]))
        return torch.cat(out)

    # ---- audio ------------------------------------------------------------------------------
    @abc.abstractmethod
    def encode_audio(
        self, waveforms: list[np.ndarray], train_crop: bool = False, generator=None, *, batch_size: int | None = None
    ) -> torch.Tensor:
        """[B, D] float32 audio embeddings, projected, not normalised; no grad; batched.

        `waveforms` are 1-D float arrays already at `sample_rate`; length handling follows
        stages/backbones/clip_length.py (centre crop unless `train_crop`, repeat-pad when short).
        `batch_size` clips go through the tower at once (default `audio_batch_size`): with train-mode towers,
        the batch whose statistics BatchNorm uses.
        """

    def encode_item_texts(self, texts: list[str]) -> torch.Tensor:
        """[B, D] float32 embeddings of text items (item_modality 'text'); no grad; batched."""
        from cache.errors import UserError

        raise UserError(f"backbone {self.id} (kind {self.kind!r}) takes audio items, not texts")

    @abc.abstractmethod
    def logit_scale(self) -> float:
        """The checkpoint's multiplier for audio->text cosine logits (already exponentiated)."""
