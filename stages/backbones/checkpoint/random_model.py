"""Random checkpoints in the exact key layout of a checkpoint kind (Pengi, MS-CLAP 2022 and 2023).

The real weights cannot be fetched here, so tests and timings use seeded random tensors with the
names and shapes of the real file (each kind's `source_layout`, committed as fixtures), saved as the
original is (a torch .pth holding {'model': state_dict}) beside a tokenizer built locally in the style of
the kind's text tower (CLIP, GPT-2 or BERT). They load through exactly the path a user's file takes.
What is kind-specific (the layout, the checkpoint's file name, the tokenizer) comes from the kind's record
(stages/backbones/registry.py `CheckpointKind`); the kinds' own random_model.py build their state dicts from
the helpers here.

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
from stages.backbones.registry import CheckpointKind, function, get_kind, known_kinds

SIZES = ("tiny", "full")
MARKER_FILE = "sept_random_checkpoint.json"


def tensor_for(key: str, shape: tuple, generator):
    """One random tensor of a checkpoint, by what its key is (see the module doc)."""
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


def layout_state(layout: dict[str, tuple], generator) -> dict:
    """{key: tensor_for(key, shape)} over a key layout, drawing from `generator` in the layout's order."""
    return {key: tensor_for(key, shape, generator) for key, shape in layout.items()}


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


def random_kinds() -> tuple[str, ...]:
    """The checkpoint kinds that make random checkpoints."""
    return tuple(k for k in known_kinds() if isinstance(get_kind(k), CheckpointKind) and get_kind(k).makes_random)


def _record(kind: str) -> CheckpointKind:
    if kind not in random_kinds():
        raise UserError(f"backbones make-random --kind {kind!r}: not a checkpoint kind with a random maker "
                        f"({', '.join(random_kinds())})")
    return get_kind(kind)


def random_state(kind: str, size: str, seed: int) -> dict:
    """The kind's random state dict (its record's random_state) with torchlibrosa's real DFT kernels."""
    import torch

    record = _record(kind)
    if size not in SIZES:
        raise UserError(f"backbones make-random --size {size!r}: not one of {', '.join(SIZES)}")
    return _with_real_stft_kernels(function(record.random_state)(size, torch.Generator().manual_seed(seed)))


def make_random_checkpoint(kind: str, size: str, seed: int, out) -> Path:
    """Write folder `out` (must not exist): <checkpoint>.pth + tokenizer/. Returns its path."""
    import torch

    out = Path(out)
    if out.exists():
        raise UserError(f"--out {out}: already exists; choose a new folder")
    record = _record(kind)
    state = random_state(kind, size, seed)
    with atomic_dir(out) as tmp:
        torch.save({"model": state}, tmp / record.checkpoint_name)
        function(record.tokenizer)().save_pretrained(tmp / "tokenizer")
        (tmp / MARKER_FILE).write_text(json.dumps(
            {"kind": kind, "size": size, "seed": seed, "tensors": len(state),
             "parameters": int(sum(t.numel() for t in state.values()))}))
    return out
