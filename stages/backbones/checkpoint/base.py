"""What Pengi and MS-CLAP adapters share: single-file checkpoints with a log-mel audio front end.

Both come from the same lab and lay their models out alike: an audio encoder (HTS-AT or CNN14) fed a
torchlibrosa log-mel, a text encoder from transformers, and the same two-layer projection head on
each side. This base class holds everything but the text tower and the audio network:

- audio length: 'repeat then cut' for short clips (no zero padding, as both originals load audio),
  centre crop of longer clips at evaluation (the originals crop at random even there; we keep
  evaluation deterministic), random crop when training asks for it;
- the log-mel front end, using the mel filterbank stored in the checkpoint (so the features are the
  ones the checkpoint was trained on, whatever sample rate its filterbank was built for);
- batching of text and audio encoding.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from cache.errors import UserError
from stages.backbones.base import AudioTextBackbone
from stages.backbones.clip_length import crop_offset


class ProjectionHead(nn.Module):
    """Pengi's and MS-CLAP's projection: LayerNorm(l1(x) + dropout(l2(gelu(l1(x))))); the dropout (Pengi's
    p = 0.5, models/pengi.py Projection) acts only with train-mode towers (train.tower_mode = "train")."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = self.linear1(x)
        return self.layer_norm(first + self.drop(self.linear2(F.gelu(first))))


class CheckpointBackbone(AudioTextBackbone):
    """Subclasses set text_model / audio networks and implement the text-side hooks and `audio_latent`."""

    text_suffix = ""  # appended to every text before tokenizing (MS-CLAP 2023: ' <|endoftext|>')

    def setup_common(self, tokenizer, *, id: str, fingerprint: str, sample_rate: int, clip_seconds: float,
                     embed_dim: int, text_width: int, max_text_len: int, text_pooling: str,
                     text_batch_size: int, audio_batch_size: int) -> None:
        self.tokenizer = tokenizer
        self.id, self.fingerprint = id, fingerprint
        self.sample_rate = int(sample_rate)
        self.clip_samples = int(round(sample_rate * clip_seconds))
        self.embed_dim, self.text_width, self.max_text_len = int(embed_dim), int(text_width), int(max_text_len)
        self.text_pooling = text_pooling
        self.text_batch_size, self.audio_batch_size = int(text_batch_size), int(audio_batch_size)

    def hold_weights_in(self, dtype: torch.dtype) -> "CheckpointBackbone":
        """Cast the towers and projections to `dtype` (config key backbone.dtype). The log-mel front end and the
        logit scale stay float32: the filterbank is preprocessing, computed in float32 whatever the towers."""
        for name, module in self.named_children():
            if name != "logmel":
                module.to(dtype)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.text_projection.linear1.weight.dtype  # the towers' (the logit scale may come first)

    # ---- text -------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
            raise TypeError("tokenize() takes a non-empty list of strings")
        enc = self.tokenizer([t + self.text_suffix for t in texts], padding=True, truncation=True,
                             max_length=self.max_text_len, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(self.device), "attention_mask": enc["attention_mask"].to(self.device)}

    def check_embeds(self, embeds: torch.Tensor, input_ids: torch.Tensor) -> None:
        if embeds.dim() != 3 or embeds.shape[:2] != input_ids.shape or embeds.shape[2] != self.text_width:
            raise ValueError(f"embeds {tuple(embeds.shape)} must be [B, L, {self.text_width}] matching "
                             f"input_ids {tuple(input_ids.shape)}")

    def encode_text(self, texts: list[str], batch_size: int | None = None, **_) -> torch.Tensor:
        return self.encode_text_in_batches(texts, batch_size)

    # ---- audio ------------------------------------------------------------------------------
    def fit_clip(self, wave, train_crop: bool = False, generator=None) -> np.ndarray:
        """The originals' length rule: a short clip is repeated whole and cut (no zero padding)."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or wave.shape[0] == 0 or not np.all(np.isfinite(wave)):
            raise UserError(f"waveform of shape {wave.shape}: expected non-empty finite mono samples "
                            f"at {self.sample_rate} Hz")
        n, clip = wave.shape[0], self.clip_samples
        if n < clip:
            return np.tile(wave, -(-clip // n))[:clip]
        start = crop_offset(n, clip, train_crop, generator)
        return wave[start : start + clip].copy()

    def audio_latent(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 1, frames, mels] log-mel -> [B, width] the audio network's embedding (before projection)."""
        raise NotImplementedError

    def audio_embeddings_from_waves(self, waves: torch.Tensor) -> torch.Tensor:
        """[B, clip_samples] -> [B, D]: log-mel, audio network, projection (the originals' eval graph)."""
        mel = self.logmel(waves.to(self.device)).to(self.dtype)
        return self.audio_projection(self.audio_latent(mel)).float()

    def encode_audio(self, waveforms, train_crop: bool = False, generator=None, *, batch_size: int | None = None,
                     **_) -> torch.Tensor:
        clips = [self.fit_clip(w, train_crop, generator) for w in waveforms]
        if not clips:
            return torch.empty(0, self.embed_dim, device=self.device)
        out, size = [], batch_size or self.audio_batch_size
        with torch.no_grad():
            for start in range(0, len(clips), size):
                batch = torch.from_numpy(np.stack(clips[start : start + size]))
                out.append(self.audio_embeddings_from_waves(batch))
        return torch.cat(out)
