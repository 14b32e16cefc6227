"""Random checkpoints in the exact key layout of third-party backbones (Pengi, MS-CLAP 2022 and 2023).

The real weights cannot be fetched here, so tests and timings use seeded random tensors with the
names and shapes of the real file (`source_layout` in stages/backbones/pengi/adapter.py and msclap.py, committed
as fixtures),
saved as the original is (a torch .pth holding {'model': state_dict}), beside a CLIP-style tokenizer
built locally (CLIP-, GPT-2- or BERT-style by kind). They load through exactly the path a user's file takes.

Values: weights N(0, 0.02^2), LayerNorm/BatchNorm scales 1 and shifts/means 0, variances 1, the mel
filterbank and torchlibrosa's DFT kernels the real ones (the original code computes its spectrogram with
those kernels, so a reference run on this file sees the same front end as ours), integer buffers as the
original module computes them (arange positions), HTS-AT's shifted-window attention masks too (a float buffer
the original code loads from the file and uses); everything else random.
"""
from __future__ import annotations

import json
from pathlib import Path

from cache.atomic import atomic_dir
from cache.errors import UserError

KINDS = ("pengi", "msclap-2022", "msclap-2023")
SIZES = ("tiny", "full")
CHECKPOINT_NAME = {"pengi": "pengi.pth", "msclap-2022": "CLAP_weights_2022.pth",
                   "msclap-2023": "CLAP_weights_2023.pth"}


def _tensor_for(key: str, shape: tuple, generator):
    import torch

    if key.endswith("num_batches_tracked"):
        return torch.tensor(0, dtype=torch.long)
    if key.endswith("position_ids"):
        return torch.arange(shape[-1]).expand(shape).clone()
    if key.endswith("relative_position_index"):
        return swin_relative_position_index(shape)
    if key.endswith(("running_var",)) or (key.endswith(".weight") and len(shape) == 1):
        return torch.ones(shape)  # LayerNorm / BatchNorm scales
    if key.endswith("attn_mask"):
        return swin_shift_mask(shape)
    if key.endswith(("running_mean", ".bias")):
        return torch.zeros(shape)
    return torch.randn(shape, generator=generator) * 0.02


def swin_relative_position_index(shape: tuple):
    """Swin's relative-position lookup [win*win, win*win] as its WindowAttention computes and saves it: for
    tokens p, q of a win x win window, (dh + win - 1) * (2 win - 1) + (dw + win - 1), d = p - q."""
    import math

    import torch

    win = math.isqrt(shape[0])
    hw = torch.stack(torch.meshgrid(torch.arange(win), torch.arange(win), indexing="ij")).flatten(1)  # [2, win*win]
    d = hw[:, :, None] - hw[:, None, :] + (win - 1)
    return (d[0] * (2 * win - 1) + d[1]).long()


def swin_shift_mask(shape: tuple):
    """HTS-AT's shifted-window attention mask [windows, win*win, win*win] (0 within a region, -100 across), as
    its SwinTransformerBlock computes and saves it (a persistent buffer, so the real checkpoints hold it and the
    original code uses the loaded one): square map of side win*sqrt(windows), shift win // 2."""
    import math

    import torch

    windows, tokens = shape[0], shape[1]
    win = math.isqrt(tokens)
    side, shift = win * math.isqrt(windows), win // 2
    regions = torch.zeros(side, side)
    cuts = (slice(0, -win), slice(-win, -shift), slice(-shift, None))
    for i, (h, w) in enumerate((h, w) for h in cuts for w in cuts):
        regions[h, w] = i
    ids = regions.view(side // win, win, side // win, win).permute(0, 2, 1, 3).reshape(-1, win * win)
    mask = ids.unsqueeze(1) - ids.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


def stft_kernels(n_fft: int):
    """torchlibrosa's STFT conv kernels (conv_real, conv_imag), [n_fft//2+1, 1, n_fft] each: the periodic-hann
    windowed DFT rows cos(2 pi k n / N) w[n] and -sin(2 pi k n / N) w[n], as the real checkpoints hold them."""
    import torch

    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    angle = 2 * torch.pi * ((k * n) % n_fft) / n_fft  # reduced mod N: exact phases for large k*n
    return ((torch.cos(angle) * window)[:, None, :].float(), (-torch.sin(angle) * window)[:, None, :].float())


def _with_real_stft_kernels(state: dict) -> dict:
    for key in [k for k in state if k.endswith("spectrogram_extractor.stft.conv_real.weight")]:
        real, imag = stft_kernels(state[key].shape[-1])
        state[key], state[key.replace("conv_real", "conv_imag")] = real, imag
    return state


def clip_style_tokenizer(model_max_length: int = 77):
    """A character-level CLIP tokenizer (no merges): real CLIP special tokens, eot the highest id."""
    import tempfile

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                             model_max_length=model_max_length)


def gpt2_style_tokenizer():
    """A byte-level GPT-2 tokenizer without merges ('!' is id 0, <|endoftext|> the last id), msclap's pad."""
    import tempfile

    from transformers import GPT2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = GPT2Tokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"))
    tokenizer.add_special_tokens({"pad_token": "!"})
    return tokenizer


def bert_style_tokenizer():
    """An uncased WordPiece tokenizer over single characters, with BERT's special tokens."""
    import string
    import tempfile

    from transformers import BertTokenizer

    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = string.ascii_lowercase + string.digits + string.punctuation
    pieces += list(chars) + ["##" + c for c in chars]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(pieces) + "\n")
        return BertTokenizer(str(Path(tmp) / "vocab.txt"), do_lower_case=True)


def tokenizer_for(kind: str):
    return {"pengi": clip_style_tokenizer, "msclap-2022": bert_style_tokenizer,
            "msclap-2023": gpt2_style_tokenizer}[kind]()


def random_state(kind: str, size: str, seed: int) -> dict:
    import numpy as np
    import torch

    from stages.backbones.pengi import adapter as pengi
    from stages.backbones.nets.htsat import slaney_mel_filters

    if kind not in KINDS:
        raise UserError(f"backbones make-random --kind {kind!r}: not one of {', '.join(KINDS)}")
    if size not in SIZES:
        raise UserError(f"backbones make-random --size {size!r}: not one of {', '.join(SIZES)}")
    generator = torch.Generator().manual_seed(seed)
    if kind == "pengi":
        layout = pengi.source_layout(size)
        state = {key: _tensor_for(key, shape, generator) for key, shape in layout.items()}
        mel = slaney_mel_filters(pengi.SAMPLE_RATE, pengi.N_FFT, pengi.MEL_BINS, pengi.FMIN, pengi.FMAX)
        state[f"{pengi.AUDIO_PREFIX}.base.htsat.logmel_extractor.melW"] = mel
        return _with_real_stft_kernels(state)
    from stages.backbones.msclap import adapter as msclap

    version = kind.removeprefix("msclap-")
    state = {key: _tensor_for(key, shape, generator) for key, shape in msclap.source_layout(version, size).items()}
    v = msclap.VERSIONS[version]
    mel_key = "audio_encoder.base.htsat.logmel_extractor.melW" if version == "2023" else "audio_encoder.base.logmel_extractor.melW"
    state[mel_key] = slaney_mel_filters(v["sample_rate"], v["n_fft"], v["mels"], v["fmin"], v["fmax"])
    state["logit_scale"] = torch.tensor(float(np.log(1 / 0.07)))  # msclap's initial temperature
    return _with_real_stft_kernels(state)


def make_random_checkpoint(kind: str, size: str, seed: int, out) -> Path:
    """Write folder `out` (must not exist): <checkpoint>.pth + tokenizer/. Returns its path."""
    import torch

    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out}: already exists; choose a new folder")
    state = random_state(kind, size, seed)
    with atomic_dir(out) as tmp:
        torch.save({"model": state}, tmp / CHECKPOINT_NAME[kind])
        tokenizer_for(kind).save_pretrained(tmp / "tokenizer")
        (tmp / "sept_random_checkpoint.json").write_text(json.dumps(
            {"kind": kind, "size": size, "seed": seed, "tensors": len(state),
             "parameters": int(sum(t.numel() for t in state.values()))}))
    return out
