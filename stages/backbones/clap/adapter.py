"""The CLAP adapter: transformers' ClapModel (LAION CLAP: HTS-AT audio tower, RoBERTa text tower).

Text path, made explicit so prompt tuning can feed learned vectors in place of word embeddings:

    word embeddings (or learned context) --+
    position ids from the token ids -------+--> RoBERTa encoder --> hidden state at the pooled
    (padding-aware, as RoBERTa does for ids)        position ('first' = <s>) --> pooler dense + tanh
                                                    --> text_projection  = the joint-space embedding

With the plain word embeddings this is exactly `ClapModel.get_text_features` before its L2
normalisation (tests check it to 1e-5). Audio path: our own deterministic crop / repeat-pad to the
clip length (stages/backbones/clip_length.py), then the checkpoint's feature extractor, the audio tower
and audio_projection.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cache.errors import UserError
from stages.backbones.base import AudioTextBackbone
from stages.backbones.clip_length import fit_to_clip
from stages.backbones.fingerprint import fingerprint_location
from stages.backbones.locate import ModelLocation, locate_model
from stages.backbones.strict_load import load_strict
from stages.backbones.text_pooling import POOLINGS, gather_positions, pooling_positions

def _batches(n: int, size: int, desc: str, progress: bool | None):
    starts = range(0, n, size)
    show = progress if progress is not None else len(starts) > 4
    # disable=None lets tqdm hide the bar when stderr is not a terminal (CI logs).
    return tqdm(starts, desc=desc, unit="batch", leave=False, disable=True if not show else None)


def load_clap_strict(folder: Path, dtype: torch.dtype):
    """ClapModel.from_pretrained(folder), refusing any missing, unexpected or mis-shaped weight."""
    from transformers import ClapModel

    return load_strict(ClapModel, folder, dtype, "ClapModel")


class ClapBackbone(AudioTextBackbone):
    """A frozen transformers ClapModel behind the AudioTextBackbone interface."""

    def __init__(self, model, tokenizer, feature_extractor, *, id: str, fingerprint: str,
                 text_pooling: str = "first", text_batch_size: int = 64, audio_batch_size: int = 16):
        super().__init__()
        if text_pooling not in POOLINGS:
            raise UserError(f"config key backbone.text_pooling: {text_pooling!r} is not one of {', '.join(POOLINGS)}")
        self.clap = model
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.id = id
        self.fingerprint = fingerprint
        self.text_pooling = text_pooling
        self.text_batch_size = int(text_batch_size)
        self.audio_batch_size = int(audio_batch_size)

        config = model.config
        text = config.text_config
        self.pad_token_id = int(text.pad_token_id)
        self.eos_token_id = tokenizer.eos_token_id
        if tokenizer.pad_token_id != self.pad_token_id:
            # RoBERTa derives position ids from the pad id: a mismatch silently shifts every position.
            raise UserError(f"backbone {id}: tokenizer pad id {tokenizer.pad_token_id} differs from the text "
                            f"config's pad_token_id {self.pad_token_id}")
        if feature_extractor.feature_size != config.audio_config.num_mel_bins:
            raise UserError(f"backbone {id}: feature extractor makes {feature_extractor.feature_size} mel bins, "
                            f"the audio tower expects {config.audio_config.num_mel_bins}")
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.clip_samples = int(feature_extractor.nb_max_samples)
        self.embed_dim = int(config.projection_dim)
        self.text_width = int(text.hidden_size)
        # RoBERTa positions start at pad_id + 1, so the table holds max_position - pad_id - 1 tokens.
        self.max_text_len = int(min(tokenizer.model_max_length, text.max_position_embeddings - self.pad_token_id - 1))
        # A non-fusion tower takes one mel channel ('rand_trunc'); the fusion one takes four.
        # Clips arrive exactly clip length, so neither mode's random cropping ever triggers.
        self.fusion = bool(config.audio_config.enable_fusion)
        self._truncation = "fusion" if self.fusion else "rand_trunc"
        self.freeze()

    # ---- text -------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self._hf_tokenize(texts)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.clap.text_model.embeddings.word_embeddings(input_ids.to(self.device))

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """RoBERTa's padding-aware positions: pad tokens get pad_id, real tokens pad_id+1, pad_id+2, ..."""
        not_pad = input_ids.ne(self.pad_token_id).long()
        return torch.cumsum(not_pad, dim=1) * not_pad + self.pad_token_id

    def encode_text_from_embeddings(self, embeds: torch.Tensor, input_ids: torch.Tensor,
                                    attention_mask: torch.Tensor) -> torch.Tensor:
        if embeds.dim() != 3 or embeds.shape[:2] != input_ids.shape or embeds.shape[2] != self.text_width:
            raise ValueError(f"embeds {tuple(embeds.shape)} must be [B, L, {self.text_width}] matching "
                             f"input_ids {tuple(input_ids.shape)}")
        device = self.device
        input_ids = input_ids.to(device)
        attention_mask = attention_mask.to(device)
        text_model = self.clap.text_model
        # Positions come from the ids (the learned context keeps placeholder ids), not from the
        # embeddings: transformers' inputs_embeds default would number pads as real tokens.
        hidden = text_model(inputs_embeds=embeds.to(device=device, dtype=self.dtype),
                            attention_mask=attention_mask,
                            position_ids=self.position_ids(input_ids)).last_hidden_state
        positions = pooling_positions(input_ids, attention_mask, self.text_pooling, self.eos_token_id)
        pooler = text_model.pooler  # BERT-style head: dense + tanh on the pooled token
        pooled = pooler.activation(pooler.dense(gather_positions(hidden, positions)))
        return self.clap.text_projection(pooled).float()

    def encode_text(self, texts: list[str], batch_size: int | None = None, *,
                    progress: bool | None = None) -> torch.Tensor:
        return self.encode_text_in_batches(
            texts, batch_size, lambda n, size: _batches(n, size, "text embeddings", progress))

    # ---- audio ------------------------------------------------------------------------------
    def _check_waveform(self, index: int, wave) -> np.ndarray:
        wave = np.asarray(wave)
        if wave.ndim != 1:
            raise UserError(f"waveform {index}: shape {wave.shape}; expected mono 1-D samples at {self.sample_rate} Hz")
        if wave.shape[0] == 0:
            raise UserError(f"waveform {index}: empty (0 samples)")
        if not np.all(np.isfinite(wave)):
            raise UserError(f"waveform {index}: contains NaN or infinite samples")
        return wave

    def audio_features(self, clips: list[np.ndarray]) -> dict[str, torch.Tensor]:
        """Feature-extractor output for clips that are already exactly `clip_samples` long."""
        feats = self.feature_extractor(clips, sampling_rate=self.sample_rate, truncation=self._truncation,
                                       padding="repeatpad", return_tensors="pt")
        # The fusion extractor marks one random clip as 'longer' when none is; ours never are
        # (we crop before), so every flag is False and the result is deterministic.
        is_longer = torch.zeros(len(clips), 1, dtype=torch.bool, device=self.device)
        return {"input_features": feats["input_features"].to(device=self.device, dtype=self.dtype),
                "is_longer": is_longer}

    def encode_audio(self, waveforms: list[np.ndarray], train_crop: bool = False, generator=None, *,
                     batch_size: int | None = None, progress: bool | None = None) -> torch.Tensor:
        waves = [self._check_waveform(i, w) for i, w in enumerate(waveforms)]
        if not waves:
            return torch.empty(0, self.embed_dim, device=self.device)
        size = batch_size or self.audio_batch_size
        out = []
        with torch.no_grad():
            for start in _batches(len(waves), size, "audio embeddings", progress):
                clips = [fit_to_clip(w, self.clip_samples, train_crop, generator) for w in waves[start : start + size]]
                pooled = self.clap.audio_model(**self.audio_features(clips)).pooler_output
                out.append(self.clap.audio_projection(pooled).float())
        return torch.cat(out)

    def logit_scale(self) -> float:
        # CLAP learns two temperatures: logit_scale_a multiplies audio->text logits (a row per clip,
        # a column per text), which is zero-shot classification; logit_scale_t is for text->audio
        # retrieval. Classification and prompt tuning therefore use logit_scale_a.
        return float(self.clap.logit_scale_a.detach().float().exp())


def _check_model_type(location: ModelLocation) -> None:
    config_path = location.folder / "config.json"
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"backbone {location.spec!r}: cannot read {config_path} ({e})") from None
    if model_type != "clap":
        raise UserError(f"backbone {location.spec!r}: {config_path} has model_type {model_type!r}; "
                        f"backbone.kind 'clap' needs a ClapModel checkpoint (model_type 'clap')")


def load_clap(spec: str, cfg, *, download: bool | None = None) -> ClapBackbone:
    """The loader of kind 'clap' (cfg: a BackboneConfig): transformers' ClapModel with its processor, strictly
    loaded."""
    from transformers import ClapProcessor

    from stages.backbones.factory import resolve_device

    location = locate_model(spec, download=download)
    _check_model_type(location)
    fingerprint = fingerprint_location(location, "clap", dtype=cfg.dtype)
    pooling = "first" if cfg.text_pooling == "auto" else cfg.text_pooling  # CLAP's own: <s> (token 0)
    device = resolve_device(cfg.device)
    model = load_clap_strict(location.folder, getattr(torch, cfg.dtype))
    try:
        processor = ClapProcessor.from_pretrained(location.folder)
    except (OSError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"backbone {spec!r}: cannot load its tokenizer / feature extractor from "
                        f"{location.folder} ({first})") from None
    backbone = ClapBackbone(model, processor.tokenizer, processor.feature_extractor, id=location.id,
                            fingerprint=fingerprint, text_pooling=pooling,
                            text_batch_size=cfg.text_batch_size, audio_batch_size=cfg.audio_batch_size)
    return backbone.to(device)
