"""The MS-CLAP adapters (microsoft/CLAP, PyPI `msclap`; weights CLAP_weights_2022.pth / _2023.pth on the
hub repo microsoft/msclap, also named by the short ids 'msclap:2022' / 'msclap:2023', which fetch them into
the Hugging Face cache: stages/backbones/checkpoint/files.py; the tokenizer is then msclap's own hub one).

- 2023: HTS-AT audio (44.1 kHz, 7 s) + GPT-2 text. Each text gets ' <|endoftext|>' appended and is pooled
  at its last token (pooling 'last': the last attended position; msclap computes it as the count of
  non-'!' ids minus one, '!' being its pad token, which is the same position unless a text contains '!'),
  77 tokens. Then the projection head (768 -> 1024).
- 2022: CNN14 audio (44.1 kHz, 5 s) + BERT (bert-base-uncased) text pooled at [CLS] (pooling 'first', the
  hidden state itself: BERT's pooler layer is not used), 100 tokens. Projection heads 2048/768 -> 1024.
Both: similarity = exp(logit_scale) of the checkpoint times the cosine, as msclap's compute_similarity.

Why not the msclap package itself: msclap 1.3.4 requires torchaudio (which crashes beside our CPU
torch), transformers < 5 and numpy < 2, and its model modules import torchlibrosa (hence librosa). So the
encoders are built here over transformers' GPT2Model / BertModel, ClapAudioModel (HTS-AT) and our CNN14,
with explicit key conversion; the audio front end uses the checkpoint's own mel filterbank.
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
from stages.backbones.nets.cnn14 import FULL_CHANNELS, TINY_CHANNELS, Cnn14, cnn14_source_layout
from stages.backbones.nets.htsat import (FULL, TINY, LogMel, clap_audio_config, htsat_arch_from_state, htsat_rules,
                                    htsat_source_layout, slaney_mel_filters)
from stages.backbones.text_pooling import gather_positions, pooling_positions

T, A = "caption_encoder", "audio_encoder"
# Per version: audio front end (msclap configs/config_20xx.yml), text tower, text length, tokenizer.
VERSIONS = {
    "2022": {"sample_rate": 44_100, "seconds": 5, "n_fft": 1024, "hop": 320, "mels": 64, "fmin": 50, "fmax": 14_000,
             "text_len": 100, "tokenizer": "bert-base-uncased", "pooling": "first"},
    "2023": {"sample_rate": 44_100, "seconds": 7, "n_fft": 1024, "hop": 320, "mels": 64, "fmin": 50, "fmax": 8_000,
             "text_len": 77, "tokenizer": "gpt2", "pooling": "last"},
}
TEXT_SIZES = {  # full = the real towers; tiny = the same keys, small widths
    ("2022", "full"): {"vocab": 30522, "width": 768, "layers": 12, "positions": 512},
    ("2022", "tiny"): {"vocab": 120, "width": 64, "layers": 12, "positions": 128},
    ("2023", "full"): {"vocab": 50257, "width": 768, "layers": 12, "positions": 1024},
    ("2023", "tiny"): {"vocab": 300, "width": 64, "layers": 12, "positions": 80},
}
D_PROJ = {"full": 1024, "tiny": 32}
HEAD_DIM = 64  # GPT-2 and BERT base both use 64-wide heads: heads = width / 64


def kind_name(version: str) -> str:
    return f"msclap-{version}"


# ---- key layout and conversion --------------------------------------------------------------------
def source_layout(version: str, size: str) -> dict[str, tuple]:
    """Names and shapes of CLAP_weights_<version>.pth's 'model' state dict, from msclap's module tree.

    msclap/models/clap.py: CLAP -> audio_encoder(base = Cnn14 | HTSATWrapper.htsat, projection),
    caption_encoder(base = AutoModel(bert-base-uncased | gpt2), projection), logit_scale.
    """
    text, w, t = TEXT_SIZES[(version, size)], TEXT_SIZES[(version, size)]["width"], f"{T}.base"
    out: dict[str, tuple] = {}
    if version == "2023":
        out[f"{t}.wte.weight"], out[f"{t}.wpe.weight"] = (text["vocab"], w), (text["positions"], w)
        for i in range(text["layers"]):
            h = f"{t}.h.{i}"
            for norm in ("ln_1", "ln_2"):
                out[f"{h}.{norm}.weight"] = out[f"{h}.{norm}.bias"] = (w,)
            out[f"{h}.attn.c_attn.weight"], out[f"{h}.attn.c_attn.bias"] = (w, 3 * w), (3 * w,)
            out[f"{h}.attn.c_proj.weight"], out[f"{h}.attn.c_proj.bias"] = (w, w), (w,)
            out[f"{h}.mlp.c_fc.weight"], out[f"{h}.mlp.c_fc.bias"] = (w, 4 * w), (4 * w,)
            out[f"{h}.mlp.c_proj.weight"], out[f"{h}.mlp.c_proj.bias"] = (4 * w, w), (w,)
        out[f"{t}.ln_f.weight"] = out[f"{t}.ln_f.bias"] = (w,)
        arch = FULL if size == "full" else TINY
        audio_width = arch["embed_dim"] * 2 ** (len(arch["depths"]) - 1)
        htsat = htsat_source_layout(f"{A}.base.htsat", arch, VERSIONS[version]["mels"], VERSIONS[version]["n_fft"])
        # The hub lists CLAP_weights_2023.pth's pickle imports without LongStorage: the file holds no int64
        # tensors, so HTS-AT's integer buffers (BatchNorm counter, relative position index) are not in it.
        out.update({k: v for k, v in htsat.items() if not k.endswith(("num_batches_tracked", "relative_position_index"))})
    else:
        e = f"{t}.embeddings"
        out[f"{e}.word_embeddings.weight"] = (text["vocab"], w)
        out[f"{e}.position_embeddings.weight"] = (text["positions"], w)
        out[f"{e}.token_type_embeddings.weight"] = (2, w)
        out[f"{e}.LayerNorm.weight"] = out[f"{e}.LayerNorm.bias"] = (w,)
        out[f"{e}.position_ids"] = (1, text["positions"])
        for i in range(text["layers"]):
            layer = f"{t}.encoder.layer.{i}"
            for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
                out[f"{layer}.{name}.weight"], out[f"{layer}.{name}.bias"] = (w, w), (w,)
            for name in ("attention.output.LayerNorm", "output.LayerNorm"):
                out[f"{layer}.{name}.weight"] = out[f"{layer}.{name}.bias"] = (w,)
            out[f"{layer}.intermediate.dense.weight"], out[f"{layer}.intermediate.dense.bias"] = (4 * w, w), (4 * w,)
            out[f"{layer}.output.dense.weight"], out[f"{layer}.output.dense.bias"] = (w, 4 * w), (w,)
        out[f"{t}.pooler.dense.weight"], out[f"{t}.pooler.dense.bias"] = (w, w), (w,)
        channels = FULL_CHANNELS if size == "full" else TINY_CHANNELS
        audio_width = channels[-1]
        out.update(cnn14_source_layout(f"{A}.base", channels, VERSIONS[version]["mels"], VERSIONS[version]["n_fft"],
                                       527 if size == "full" else 10))
    d = D_PROJ[size]
    for prefix, d_in in ((T, w), (A, audio_width)):
        out[f"{prefix}.projection.linear1.weight"] = (d, d_in)
        out[f"{prefix}.projection.linear2.weight"] = (d, d)
        out[f"{prefix}.projection.layer_norm.weight"] = out[f"{prefix}.projection.layer_norm.bias"] = (d,)
    out["logit_scale"] = ()
    return out


def conversion_rules(version: str) -> list[KeyRule]:
    t = rf"{T}\.base"
    common = [
        KeyRule(rf"{T}\.projection\.(.+)", ("text_projection.{1}",)),
        KeyRule(rf"{A}\.projection\.(.+)", ("audio_projection.{1}",)),
        KeyRule(r"logit_scale", ("logit_scale_log",)),
    ]
    if version == "2023":
        return [
            # Older transformers saved GPT-2's causal-mask buffers; they are constants, recomputed.
            KeyRule(t + r"\.h\.(\d+)\.attn\.(bias|masked_bias)", DROP, reason="GPT-2's constant causal-mask buffers"),
            KeyRule(t + r"\.(wte|wpe|h|ln_f)\.(.+)", ("text_model.{1}.{2}",)),
            *htsat_rules(f"{A}.base.htsat", "audio_model", "logmel.mel_filters"),
            *common,
        ]
    a = rf"{A}\.base"
    return [
        KeyRule(t + r"\.pooler\.dense\.(weight|bias)", DROP,
                reason="BERT's pooler layer; msclap takes the [CLS] hidden state without it"),
        KeyRule(t + r"\.(embeddings|encoder)\.(.+)", ("text_model.{1}.{2}",)),
        KeyRule(a + r"\.spectrogram_extractor\.stft\.conv_(real|imag)\.weight", DROP,
                reason="fixed DFT kernels; torch.stft computes the same transform"),
        KeyRule(a + r"\.logmel_extractor\.melW", ("logmel.mel_filters",)),
        KeyRule(a + r"\.fc_audioset\.(weight|bias)", DROP, reason="the AudioSet classifier; the embedding is fc1's"),
        KeyRule(a + r"\.(bn0|conv_block\d|fc1)\.(.+)", ("audio_model.{1}.{2}",)),
        *common,
    ]


# ---- the adapter ----------------------------------------------------------------------------------
class MsClapBackbone(CheckpointBackbone):
    """MS-CLAP 2022 or 2023's frozen encoders; build with `from_state` (or the registry's loaders)."""

    def __init__(self, version: str, text_sizes: dict, audio_arch, d_proj: int, tokenizer, *, id: str,
                 fingerprint: str, text_batch_size: int = 64, audio_batch_size: int = 16):
        super().__init__()
        from transformers import BertConfig, BertModel, ClapAudioModel, GPT2Config, GPT2Model

        v = VERSIONS[version]
        self.version = version
        width = text_sizes["width"]
        heads = max(1, width // HEAD_DIM)
        if version == "2023":
            self.text_suffix = " <|endoftext|>"
            self.text_model = GPT2Model(GPT2Config(
                vocab_size=text_sizes["vocab"], n_embd=width, n_layer=text_sizes["layers"], n_head=heads,
                n_positions=text_sizes["positions"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id))
            audio_config = clap_audio_config(audio_arch, v["mels"])
            self.audio_model = ClapAudioModel(audio_config)
            audio_width = audio_config.hidden_size
        else:
            self.text_model = BertModel(BertConfig(
                vocab_size=text_sizes["vocab"], hidden_size=width, num_hidden_layers=text_sizes["layers"],
                num_attention_heads=heads, intermediate_size=4 * width,
                max_position_embeddings=text_sizes["positions"], pad_token_id=tokenizer.pad_token_id,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), add_pooling_layer=False)
            self.audio_model = Cnn14(v["mels"], audio_arch)
            audio_width = self.audio_model.width
        self.text_projection = ProjectionHead(width, d_proj)
        self.audio_projection = ProjectionHead(audio_width, d_proj)
        self.logmel = LogMel(v["n_fft"], v["hop"], slaney_mel_filters(v["sample_rate"], v["n_fft"], v["mels"],
                                                                      v["fmin"], v["fmax"]))
        self.logit_scale_log = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.setup_common(tokenizer, id=id, fingerprint=fingerprint, sample_rate=v["sample_rate"],
                          clip_seconds=v["seconds"], embed_dim=d_proj, text_width=width, max_text_len=v["text_len"],
                          text_pooling=v["pooling"], text_batch_size=text_batch_size,
                          audio_batch_size=audio_batch_size)

    def token_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        table = self.text_model.wte if self.version == "2023" else self.text_model.embeddings.word_embeddings
        return table(input_ids.to(self.device))

    def encode_text_from_embeddings(self, embeds, input_ids, attention_mask) -> torch.Tensor:
        self.check_embeds(embeds, input_ids)
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        # Positions 0..L-1 from the towers' own defaults (right padding), token types 0 for BERT.
        hidden = self.text_model(inputs_embeds=embeds.to(device=device, dtype=self.dtype),
                                 attention_mask=attention_mask).last_hidden_state
        positions = pooling_positions(input_ids, attention_mask, self.text_pooling, None)
        return self.text_projection(gather_positions(hidden, positions)).float()

    def audio_latent(self, mel: torch.Tensor) -> torch.Tensor:
        if self.version == "2023":
            return self.audio_model(input_features=mel).pooler_output
        return self.audio_model(mel)

    def logit_scale(self) -> float:
        return float(self.logit_scale_log.detach().float().exp())


def _sizes_from_state(version: str, state: dict) -> tuple[dict, object, int]:
    t = f"{T}.base"
    if version == "2023":
        vocab, width = state[f"{t}.wte.weight"].shape
        layers = len({k.split(".")[3] for k in state if k.startswith(f"{t}.h.")})
        text = {"vocab": int(vocab), "width": int(width), "layers": layers,
                "positions": int(state[f"{t}.wpe.weight"].shape[0])}
        audio = htsat_arch_from_state(state, f"{A}.base.htsat")
    else:
        vocab, width = state[f"{t}.embeddings.word_embeddings.weight"].shape
        layers = len({k.split(".")[4] for k in state if k.startswith(f"{t}.encoder.layer.")})
        text = {"vocab": int(vocab), "width": int(width), "layers": layers,
                "positions": int(state[f"{t}.embeddings.position_embeddings.weight"].shape[0])}
        audio = tuple(int(state[f"{A}.base.conv_block{i}.conv1.weight"].shape[0]) for i in range(1, 7))
    return text, audio, int(state[f"{T}.projection.linear1.weight"].shape[0])


def from_state(version: str, state: dict, tokenizer, *, path: Path, id: str, fingerprint: str,
               text_batch_size: int = 64, audio_batch_size: int = 16) -> MsClapBackbone:
    kind = kind_name(version)
    try:
        text, audio, d_proj = _sizes_from_state(version, state)
    except (KeyError, IndexError) as e:
        raise UserError(f"checkpoint {path}: missing key {e.args[0]!r} of an {kind} checkpoint "
                        f"(truncated, or another backbone kind?)") from None
    backbone = MsClapBackbone(version, text, audio, d_proj, tokenizer, id=id, fingerprint=fingerprint,
                              text_batch_size=text_batch_size, audio_batch_size=audio_batch_size)
    expected = {k: tuple(v.shape) for k, v in backbone.state_dict().items()
                if not k.endswith(("relative_position_index", "position_ids"))}
    converted = convert_state_dict(state, conversion_rules(version), expected, path, kind)
    backbone.load_state_dict(converted, strict=False)  # strictness was checked by convert_state_dict
    backbone.freeze()
    return backbone


def load_tokenizer(version: str, spec: str | os.PathLike):
    """A folder's tokenizer/ when it has one, else the hub tokenizer msclap itself loads ('gpt2' for 2023,
    'bert-base-uncased' for 2022; always so for the short ids), from the local Hugging Face cache or the hub."""
    from transformers import AutoTokenizer

    if is_short_id(spec):
        local, source = None, VERSIONS[version]["tokenizer"]
    else:
        folder = Path(spec) if Path(spec).is_dir() else Path(spec).parent
        local = folder / "tokenizer"
        source = str(local) if local.is_dir() else VERSIONS[version]["tokenizer"]
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"no tokenizer in {local} and " if local else "its tokenizer "
        raise UserError(f"backbone {str(spec)!r}: {where}{source!r} cannot be loaded ({first})") from None
    if version == "2023" and tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "!"})  # msclap's choice: GPT-2 has no pad token
    return tokenizer


def _load(version: str, spec: str, cfg, download: bool | None = None) -> MsClapBackbone:
    from stages.backbones.factory import resolve_device

    file = checkpoint_file(spec, download)  # a short id: CLAP_weights_<version>.pth in the HF cache
    state = read_checkpoint(file)
    backbone = from_state(version, state, load_tokenizer(version, spec), path=file,
                          id=spec if is_short_id(spec) else str(Path(spec).resolve()),
                          fingerprint=checkpoint_fingerprint(spec, kind_name(version), dtype=cfg.dtype),
                          text_batch_size=cfg.text_batch_size, audio_batch_size=cfg.audio_batch_size)
    return backbone.to(resolve_device(cfg.device)).hold_weights_in(getattr(torch, cfg.dtype))


def load_msclap_2022(spec: str, cfg, download: bool | None = None) -> MsClapBackbone:
    return _load("2022", spec, cfg, download)


def load_msclap_2023(spec: str, cfg, download: bool | None = None) -> MsClapBackbone:
    return _load("2023", spec, cfg, download)
