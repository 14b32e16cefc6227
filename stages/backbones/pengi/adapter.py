"""The Pengi adapter (microsoft/Pengi, the backbone of PALM's audio prompt-learning benchmark).

Only Pengi's two encoders and their projections are used; its GPT-2 caption decoder is not needed
for classification (its tensors are consumed and dropped by the conversion table).

Text: CLIP's text transformer (openai/clip-vit-base-patch16's config: 12 layers, width 512, causal
    attention), pooled at the end-of-text token (pooling 'eos': the first <|endoftext|> of each row,
    the highest id in CLIP's vocabulary, so the same token PALM's argmax picks), then CLIP's
    text_projection (512 -> 512, no bias), then Pengi's Projection (512 -> 1024). 40 text tokens.
Audio: 44.1 kHz mono, 7 s clips (shorter: repeated then cut, as Pengi does; longer: centre crop at
    evaluation, random crop in training), log-mel (n_fft 1024, hop 320, 64 mels, 50-8000 Hz), HTS-AT,
    the pooled latent (768), then Pengi's Projection (768 -> 1024).
Similarity: cosine times a fixed 100 (PALM's scale; Pengi's checkpoint has no learned temperature).

A checkpoint is the original .pth (read weights-only, converted once to safetensors in the cache), a
folder holding one *.pth and, optionally, a CLIP tokenizer in tokenizer/ (else openai/clip-vit-base-patch16's
from the local Hugging Face cache or the hub), or the short id 'pengi:base' (base.pth downloaded once from
Zenodo into the cache, stages/backbones/checkpoint/files.py; tokenizer openai/clip-vit-base-patch16's).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from cache.errors import UserError
from stages.backbones.checkpoint.base import CheckpointBackbone, ProjectionHead
from stages.backbones.checkpoint.files import checkpoint_file, is_short_id
from stages.backbones.fingerprint import checkpoint_fingerprint
from stages.backbones.checkpoint.read import DROP, KeyRule, convert_state_dict, read_checkpoint
from stages.backbones.nets.htsat import (FULL, TINY, LogMel, SpecAugment, clap_audio_config, htsat_arch_from_state,
                                         htsat_rules, htsat_source_layout, slaney_mel_filters)
from stages.backbones.text_pooling import gather_positions, pooling_positions

KIND = "pengi"
SAMPLE_RATE = 44_100
CLIP_SECONDS = 7
N_FFT, HOP, MEL_BINS, FMIN, FMAX = 1024, 320, 64, 50, 8000
TEXT_TOKENS = 40  # configs/base.yml enc_text_len
LOGIT_SCALE = 100.0  # PALM's fixed scale
D_PROJ = 1024
# What acts only with train-mode towers (train.tower_mode = "train", PALM's model.train()): Pengi's Projection
# dropout (models/pengi.py, p = 0.5) on both sides, HTS-AT's drop-path (drop_path_rate = 0.1, its default) and
# SpecAugment (time 64 x 2, mel 8 x 2 stripes), as asif-hanif/palm's pengi/models/htsat.py.
PROJECTION_DROPOUT, DROP_PATH_RATE = 0.5, 0.1
TOKENIZER_HUB_ID = "openai/clip-vit-base-patch16"
TEXT_PREFIX, AUDIO_PREFIX = "caption_encoder", "audio_encoder"
# Sizes of the text side (CLIP ViT-B/16's text tower) and of the tiny stand-in.
TEXT_FULL = {"vocab": 49408, "width": 512, "layers": 12, "positions": 77}
TEXT_TINY = {"vocab": 600, "width": 64, "layers": 12, "positions": 77}  # same keys as full
CLIP_HEAD_DIM = 64  # CLIP's text towers use 64-wide heads: heads = width / 64


PengiProjection = ProjectionHead  # Pengi's name for the shared head (models/pengi.py Projection)


# ---- key layout and conversion --------------------------------------------------------------------
def source_layout(size: str) -> dict[str, tuple]:
    """Names and shapes of Pengi's base.pth encoders (+ a stand-in for the decoder), from its module tree.

    Derived from microsoft/Pengi models/pengi.py (PENGI -> AudioEncoder(base=HTSATWrapper.htsat,
    projection), TextEncoder(base=CLIPTextModel.text_model, clip_text_projection, projection)) with the
    transformers CLIP text module names of 2023 (position_ids still a saved buffer).
    """
    text = TEXT_FULL if size == "full" else TEXT_TINY
    arch = FULL if size == "full" else TINY
    w, t = text["width"], f"{TEXT_PREFIX}.base"
    out = {f"{t}.embeddings.token_embedding.weight": (text["vocab"], w),
           f"{t}.embeddings.position_embedding.weight": (text["positions"], w),
           f"{t}.embeddings.position_ids": (1, text["positions"])}
    for i in range(text["layers"]):
        layer = f"{t}.encoder.layers.{i}"
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out[f"{layer}.self_attn.{proj}.weight"], out[f"{layer}.self_attn.{proj}.bias"] = (w, w), (w,)
        for norm in ("layer_norm1", "layer_norm2"):
            out[f"{layer}.{norm}.weight"] = out[f"{layer}.{norm}.bias"] = (w,)
        out[f"{layer}.mlp.fc1.weight"], out[f"{layer}.mlp.fc1.bias"] = (4 * w, w), (4 * w,)
        out[f"{layer}.mlp.fc2.weight"], out[f"{layer}.mlp.fc2.bias"] = (w, 4 * w), (w,)
    out[f"{t}.final_layer_norm.weight"] = out[f"{t}.final_layer_norm.bias"] = (w,)
    out[f"{TEXT_PREFIX}.clip_text_projection.weight"] = (w, w)
    d_proj = D_PROJ if size == "full" else 32
    audio_width = arch["embed_dim"] * 2 ** (len(arch["depths"]) - 1)
    for prefix, d_in in ((TEXT_PREFIX, w), (AUDIO_PREFIX, audio_width)):
        out[f"{prefix}.projection.linear1.weight"] = (d_proj, d_in)
        out[f"{prefix}.projection.linear2.weight"] = (d_proj, d_proj)
        out[f"{prefix}.projection.layer_norm.weight"] = out[f"{prefix}.projection.layer_norm.bias"] = (d_proj,)
    out.update(htsat_source_layout(f"{AUDIO_PREFIX}.base.htsat", arch, MEL_BINS, N_FFT))
    # The GPT-2 caption decoder: the adapter drops every caption_decoder.* tensor; two stand-ins keep
    # random checkpoints honest about that part existing (the full decoder is ~1.2 GB of GPT-2 + mapper).
    gpt_width = 768 if size == "full" else 16
    out["caption_decoder.gpt.transformer.wte.weight"] = (50257 if size == "full" else 50, gpt_width)
    out["caption_decoder.gpt.transformer.wpe.weight"] = (1024 if size == "full" else 8, gpt_width)
    return out


def conversion_rules() -> list[KeyRule]:
    t = TEXT_PREFIX.replace(".", r"\.") + r"\.base"
    return [
        KeyRule(t + r"\.(embeddings|encoder|final_layer_norm)\.(.+)", ("text_model.{1}.{2}",)),
        KeyRule(TEXT_PREFIX + r"\.clip_text_projection\.weight", ("clip_text_projection.weight",)),
        KeyRule(TEXT_PREFIX + r"\.projection\.(.+)", ("text_projection.{1}",)),
        KeyRule(AUDIO_PREFIX + r"\.projection\.(.+)", ("audio_projection.{1}",)),
        KeyRule(r"caption_decoder\..+", DROP, reason="the GPT-2 caption decoder; classification needs the encoders only"),
        *htsat_rules(f"{AUDIO_PREFIX}.base.htsat", "audio_model", "logmel.mel_filters"),
    ]


def _recomputed(key: str) -> bool:
    return key.endswith(("relative_position_index", "position_ids"))


# ---- the adapter ----------------------------------------------------------------------------------
class PengiBackbone(CheckpointBackbone):
    """Pengi's frozen encoders behind AudioTextBackbone; build with `load_pengi` or `from_state`."""

    def __init__(self, text_sizes: dict, arch: dict, d_proj: int, tokenizer, *, id: str, fingerprint: str,
                 text_batch_size: int = 64, audio_batch_size: int = 16):
        super().__init__()
        from transformers import ClapAudioModel, CLIPTextConfig, CLIPTextModel

        width = text_sizes["width"]
        text_config = CLIPTextConfig(vocab_size=text_sizes["vocab"], hidden_size=width,
                                     intermediate_size=4 * width, num_hidden_layers=text_sizes["layers"],
                                     num_attention_heads=max(1, width // CLIP_HEAD_DIM),
                                     max_position_embeddings=text_sizes["positions"], hidden_act="quick_gelu",
                                     projection_dim=width, pad_token_id=tokenizer.pad_token_id,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
        self.text_model = CLIPTextModel(text_config)
        self.clip_text_projection = nn.Linear(width, width, bias=False)
        self.text_projection = PengiProjection(width, d_proj, dropout=PROJECTION_DROPOUT)
        self.logmel = LogMel(N_FFT, HOP, slaney_mel_filters(SAMPLE_RATE, N_FFT, MEL_BINS, FMIN, FMAX))
        audio_config = clap_audio_config(arch, MEL_BINS, drop_path_rate=DROP_PATH_RATE)
        self.audio_model = ClapAudioModel(audio_config)
        self.audio_projection = PengiProjection(audio_config.hidden_size, d_proj, dropout=PROJECTION_DROPOUT)
        # HTS-AT's SpecAugment after bn0 (acts with train-mode towers only, as in PALM's copy of Pengi)
        self.spec_augment = SpecAugment()
        self.audio_model.audio_encoder.batch_norm.register_forward_hook(self.spec_augment.after_batch_norm)

        self.setup_common(tokenizer, id=id, fingerprint=fingerprint, sample_rate=SAMPLE_RATE,
                          clip_seconds=CLIP_SECONDS, embed_dim=d_proj, text_width=width, max_text_len=TEXT_TOKENS,
                          text_pooling="eos", text_batch_size=text_batch_size, audio_batch_size=audio_batch_size)
        self.eos_token_id = tokenizer.eos_token_id

    # ---- text -------------------------------------------------------------------------------
    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_model.embeddings.token_embedding(input_ids.to(self.device))

    def encode_text_from_embeddings(self, embeds, input_ids, attention_mask) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        self.check_embeds(embeds, input_ids)
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        model = self.text_model
        # What CLIPTextModel.forward does, from embeddings instead of ids: positions 0..L-1,
        # causal attention plus the padding mask, final LayerNorm.
        hidden = model.embeddings(inputs_embeds=embeds.to(device=device, dtype=self.dtype))
        mask = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=attention_mask,
                                  past_key_values=None)
        hidden = model.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        hidden = model.final_layer_norm(hidden)
        positions = pooling_positions(input_ids, attention_mask, "eos", self.eos_token_id)
        pooled = self.clip_text_projection(gather_positions(hidden, positions))
        return self.text_projection(pooled).float()

    # ---- audio ------------------------------------------------------------------------------
    def audio_latent(self, mel: torch.Tensor) -> torch.Tensor:
        return self.audio_model(input_features=mel).pooler_output  # HTS-AT's pooled latent (768)

    def logit_scale(self) -> float:
        return LOGIT_SCALE


def _sizes_from_state(state: dict[str, torch.Tensor]) -> tuple[dict, dict, int]:
    """Text sizes, HTS-AT architecture and projection width read off the checkpoint's shapes."""
    t = f"{TEXT_PREFIX}.base"
    vocab, width = state[f"{t}.embeddings.token_embedding.weight"].shape
    layers = len({k.split(".")[4] for k in state if k.startswith(f"{t}.encoder.layers.")})
    text = {"vocab": int(vocab), "width": int(width), "layers": layers,
            "positions": int(state[f"{t}.embeddings.position_embedding.weight"].shape[0])}
    arch = htsat_arch_from_state(state, f"{AUDIO_PREFIX}.base.htsat")
    d_proj = int(state[f"{TEXT_PREFIX}.projection.linear1.weight"].shape[0])
    return text, arch, d_proj


def from_state(state: dict[str, torch.Tensor], tokenizer, *, path: Path, id: str, fingerprint: str,
               text_batch_size: int = 64, audio_batch_size: int = 16) -> PengiBackbone:
    """Build the adapter sized by the checkpoint and load it strictly through the conversion table."""
    try:
        text, arch, d_proj = _sizes_from_state(state)
    except (KeyError, IndexError) as e:
        raise UserError(f"checkpoint {path}: missing key {e.args[0]!r} of a Pengi checkpoint "
                        f"(truncated, or another backbone kind?)") from None
    backbone = PengiBackbone(text, arch, d_proj, tokenizer, id=id, fingerprint=fingerprint,
                             text_batch_size=text_batch_size, audio_batch_size=audio_batch_size)
    expected = {k: tuple(v.shape) for k, v in backbone.state_dict().items() if not _recomputed(k)}
    converted = convert_state_dict(state, conversion_rules(), expected, path, KIND)
    backbone.load_state_dict(converted, strict=False)  # strictness was checked by convert_state_dict
    backbone.freeze()
    return backbone


# ---- locating a checkpoint and its tokenizer ----------------------------------------------------------
def load_tokenizer(spec: str | os.PathLike):
    """A folder's tokenizer/ when it has one, else openai/clip-vit-base-patch16's (always so for 'pengi:base',
    as Pengi itself loads it: from the local Hugging Face cache, or the hub unless HF_HUB_OFFLINE)."""
    from transformers import AutoTokenizer

    if is_short_id(spec):
        local, source = None, TOKENIZER_HUB_ID
    else:
        folder = Path(spec) if Path(spec).is_dir() else Path(spec).parent
        local = folder / "tokenizer"
        source = str(local) if local.is_dir() else TOKENIZER_HUB_ID
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        where = f"no CLIP tokenizer in {local} and " if local else "its tokenizer "
        raise UserError(f"backbone {str(spec)!r}: {where}{TOKENIZER_HUB_ID!r} "
                        f"cannot be loaded ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None


def load_pengi(spec: str, cfg, download: bool | None = None) -> PengiBackbone:
    """Registry loader: spec is a Pengi .pth file, a folder holding one or 'pengi:base' (see the module doc)."""
    from stages.backbones.factory import resolve_device

    file = checkpoint_file(spec, download)
    state = read_checkpoint(file)
    backbone = from_state(state, load_tokenizer(spec), path=file,
                          id=spec if is_short_id(spec) else str(Path(spec).resolve()),
                          fingerprint=checkpoint_fingerprint(spec, KIND, dtype=cfg.dtype),
                          text_batch_size=cfg.text_batch_size, audio_batch_size=cfg.audio_batch_size)
    return backbone.to(resolve_device(cfg.device)).hold_weights_in(getattr(torch, cfg.dtype))
