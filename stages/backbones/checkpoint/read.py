"""Reading third-party checkpoints (Pengi's and MS-CLAP's .pth pickles) safely and strictly.

Safety: a .pth file is a pickle, and unpickling can run arbitrary code. We read one only with
`torch.load(weights_only=True)`, whose restricted unpickler builds tensors and plain containers and
refuses anything else before calling it. The tensors are then written once to a safetensors file in
the cache, named by the source file's sha256, so later runs read that copy and never open the pickle.

Strictness: the original module names differ from ours, so every adapter converts keys through an
explicit table (`KeyRule`s). `convert_state_dict` checks that each source tensor is consumed exactly
once (mapped, or dropped with a stated reason), that every tensor our model needs was produced, and
that shapes agree; any failure is one UserError naming the file and the first offending key.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from cache.atomic import atomic_path
from cache.errors import UserError
from cache.fingerprint import cache_root
from stages.backbones.fingerprint import source_sha256

CONVERTED_DIR = "converted-checkpoints"
# Containers the original training scripts wrap a state dict in (Pengi: {'model': ...}).
WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"checkpoint {path}: holds {type(obj).__name__}, not a state dict of tensors")
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"checkpoint {path}: key {key!r} holds {type(value).__name__}, not a tensor")
        # DataParallel training saves every name under 'module.'; the names below it are the model's.
        state[key[len("module."):] if key.startswith("module.") else key] = value
    return state


def load_pickle_weights_only(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a .pth file, read with torch's restricted (weights-only) unpickler."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses any global it does not allow-list before building it: nothing ran.
        raise UserError(f"checkpoint {path}: refused, its pickle asks to build objects other than tensors "
                        f"(would run code; only weights-only checkpoints are read): {_first_line(e)}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise UserError(f"checkpoint {path}: cannot read it as a torch checkpoint (truncated or not a .pth "
                        f"file?): {_first_line(e)}") from None
    return _unwrap(obj, path)


def read_checkpoint(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a .pth/.pt/.safetensors checkpoint; pickles go through the safetensors cache once."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, save_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path}: no such file")
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError) as e:
            raise UserError(f"checkpoint {path}: cannot read safetensors ({_first_line(e)})") from None
    converted = cache_root(cache_dir) / CONVERTED_DIR / f"{source_sha256(path, cache_dir)}.safetensors"
    if converted.is_file():
        try:
            return load_file(converted)
        except (SafetensorError, OSError):
            pass  # a damaged cache copy is rebuilt from the source below
    state = load_pickle_weights_only(path)
    # safetensors refuses shared or non-contiguous storage: give each tensor its own contiguous copy.
    with atomic_path(converted) as tmp:
        save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(tmp),
                  metadata={"source": path.name})
    return state


# ---- strict key conversion ----------------------------------------------------------------------
DROP = None  # a KeyRule target meaning: consumed on purpose, not part of our model
# Integer buffers a checkpoint may or may not hold (it depends on the torch / transformers version that
# saved it, and some files hold float tensors only); the model recomputes them or never reads them in eval.
OPTIONAL_BUFFERS = ("num_batches_tracked", "relative_position_index", "position_ids")


@dataclass(frozen=True)
class KeyRule:
    """One line of a conversion table: source keys matching `pattern` become `targets`.

    pattern: a regex over the source key (fullmatch); its groups fill '{1}', '{2}' in the targets.
    targets: our key names; several when one source tensor is split (e.g. a fused qkv weight), with
        `split` giving the chunks along dim 0; DROP (None) for a tensor we consume without using,
        with `reason` saying why (a classifier head, a decoder the task does not need).
    """

    pattern: str
    targets: tuple | None
    split: int = 1
    reason: str = ""


def _apply(rule: KeyRule, match: re.Match, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    names = [t.format(None, *match.groups()) for t in rule.targets]
    parts = tensor.chunk(rule.split, dim=0) if rule.split > 1 else (tensor,)
    if len(parts) != len(names):
        raise ValueError(f"rule {rule.pattern}: {len(parts)} parts for {len(names)} targets")
    return list(zip(names, parts))


def convert_state_dict(source: dict[str, torch.Tensor], rules: list[KeyRule],
                       expected: dict[str, tuple], path: Path, kind: str) -> dict[str, torch.Tensor]:
    """Map `source` (their names) to our names through `rules`, strictly.

    expected: our key -> shape, what our model loads (OPTIONAL_BUFFERS are never required). Errors (UserError, one line, naming
    `path` and the key): a source key no rule matches (unexpected), a target produced twice, a
    target we need that nothing produced (missing), a shape that differs from ours.
    """
    optional = KeyRule(r".+\.(" + "|".join(OPTIONAL_BUFFERS) + ")", DROP, reason="optional integer buffer")
    expected = {k: v for k, v in expected.items() if not k.endswith(OPTIONAL_BUFFERS)}
    compiled = [(re.compile(r.pattern), r) for r in (optional, *rules)]
    out: dict[str, torch.Tensor] = {}
    unexpected = []
    for key in sorted(source):
        for regex, rule in compiled:
            match = regex.fullmatch(key)
            if match:
                break
        else:
            unexpected.append(key)
            continue
        if rule.targets is DROP:
            continue
        for name, tensor in _apply(rule, match, source[key]):
            if name in out:
                raise UserError(f"checkpoint {path}: key {key!r} maps to {name!r}, which another key already "
                                f"filled (the {kind} conversion table is ambiguous)")
            out[name] = tensor
    if unexpected:
        raise UserError(f"checkpoint {path}: unexpected key {unexpected[0]!r} ({len(unexpected)} in all) for a "
                        f"{kind} checkpoint; is it a checkpoint of another backbone kind?")
    missing = sorted(set(expected) - set(out))
    if missing:
        raise UserError(f"checkpoint {path}: missing key for {missing[0]!r} ({len(missing)} in all) of a {kind} "
                        f"checkpoint; is it truncated, or of another backbone kind?")
    extra = sorted(set(out) - set(expected))
    if extra:
        raise UserError(f"checkpoint {path}: produces {extra[0]!r}, which the {kind} model does not have")
    for name, shape in expected.items():
        if tuple(out[name].shape) != tuple(shape):
            raise UserError(f"checkpoint {path}: {name!r} has shape {tuple(out[name].shape)}, the {kind} "
                            f"model expects {tuple(shape)} (a checkpoint of another size or kind?)")
    return out
