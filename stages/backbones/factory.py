"""open_clip-style entry points: `load_backbone(id_or_path, cfg)` and `make_random_clap(...)`.

`load_backbone` resolves the backbone kind through the registry (stages/backbones/registry.py) and calls
that kind's loader (each kind's package names its own). Importing this module is cheap (no torch):
the CLI imports it lazily anyway, and stage one may import it on a warm path that only needs the
fingerprint.
"""
from __future__ import annotations

import os

from cache.errors import UserError
from stages.backbones.clap.random_model import make_random_clap  # noqa: F401 - part of this module's API
from stages.backbones.config import BackboneConfig
from stages.backbones.fingerprint import fingerprint_dtype
from stages.backbones.registry import get_kind, loader_of, resolve_kind


def resolve_device(spec: str):
    """'auto' -> cuda when visible, else cpu; an explicit CUDA device that is absent is a UserError."""
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"config key backbone.device: {spec!r} but no CUDA device is visible; use 'cpu' or 'auto'")
        index = torch.device(spec).index
        if index is not None and index >= torch.cuda.device_count():
            raise UserError(f"config key backbone.device: {spec!r} but only {torch.cuda.device_count()} "
                            f"CUDA device(s) are visible")
    return torch.device(spec)


def load_backbone(id_or_path: str | os.PathLike | None = None, cfg: BackboneConfig | None = None,
                  *, download: bool | None = None):
    """Load a frozen backbone from a hub id, a packaged id or a local folder.

    id_or_path: overrides cfg.id when given. cfg: kind, device, dtype, pooling and batch sizes
    (BackboneConfig defaults when None). download: see stages.backbones.locate.locate_model
    (None = fetch a hub id missing from the cache unless HF_HUB_OFFLINE is set).
    """
    cfg = cfg or BackboneConfig()
    spec = str(id_or_path) if id_or_path is not None else cfg.id
    kind = get_kind(resolve_kind(spec, cfg.kind))
    extra = {} if download is None else {"download": download}
    backbone = loader_of(kind)(spec, cfg, **extra)
    if cfg.text_pooling not in ("auto", backbone.text_pooling):
        # The checkpoint kinds pool as their originals do; a different explicit choice is not silently dropped.
        raise UserError(f"config key backbone.text_pooling: {cfg.text_pooling!r}; backbone kind {kind.name!r} pools "
                        f"with {backbone.text_pooling!r} (set 'auto' or {backbone.text_pooling!r})")
    held = str(backbone.dtype).removeprefix("torch.")
    if held != cfg.dtype or fingerprint_dtype(backbone.fingerprint) != cfg.dtype:
        # A loader that ignored backbone.dtype would key bf16 features as float32 ones (or the reverse).
        raise RuntimeError(f"the loader of backbone kind {kind.name!r} gave {held} weights with fingerprint "
                           f"{backbone.fingerprint} for backbone.dtype = {cfg.dtype!r}")
    return backbone
