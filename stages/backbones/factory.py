"""open_clip-style entry points: `load_backbone(id_or_path, cfg)` and `make_random_clap(...)`.

Importing this module is cheap (no torch): the CLI imports it lazily anyway, and stage one may
import it on a warm path that only needs the fingerprint.
"""
from __future__ import annotations

import json
import os

from cache.errors import UserError
from stages.backbones.config import BackboneConfig
from stages.backbones.fingerprint import fingerprint_location
from stages.backbones.locate import ModelLocation, locate_model
from stages.backbones.random_clap import make_random_clap  # noqa: F401 - part of this module's API

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


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


def _check_model_type(location: ModelLocation, kind: str) -> None:
    config_path = location.folder / "config.json"
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"backbone {location.spec!r}: cannot read {config_path} ({e})") from None
    if kind == "clap" and model_type != "clap":
        raise UserError(f"backbone {location.spec!r}: {config_path} has model_type {model_type!r}; "
                        f"backbone.kind 'clap' needs a ClapModel checkpoint (model_type 'clap')")


def resolve_kind(spec: str, kind: str) -> str:
    """'auto' -> the kind the spec names (registry), else 'clap'; an explicit kind must agree with it."""
    from stages.backbones.registry import get_kind, kind_for_spec

    detected = kind_for_spec(spec)
    if kind == "auto":
        return detected or "clap"
    get_kind(kind)
    if detected is not None and detected != kind:
        raise UserError(f"backbone {spec!r}: config key backbone.kind is {kind!r}, but it is a {detected!r} "
                        f"checkpoint; set backbone.kind to {detected!r} or 'auto'")
    return kind


def load_backbone(id_or_path: str | os.PathLike | None = None, cfg: BackboneConfig | None = None,
                  *, download: bool | None = None):
    """Load a frozen backbone from a hub id, a local folder or a checkpoint file.

    id_or_path: overrides cfg.id when given. cfg: kind, device, dtype, pooling and batch sizes
    (BackboneConfig defaults when None). download: see stages.backbones.locate.locate_model
    (None = fetch a hub id missing from the cache unless HF_HUB_OFFLINE is set); CLAP only.
    """
    cfg = cfg or BackboneConfig()
    spec = str(id_or_path) if id_or_path is not None else cfg.id
    kind = resolve_kind(spec, cfg.kind)
    if kind != "clap":
        from stages.backbones.registry import get_kind, resolve

        return resolve(get_kind(kind).loader)(spec, cfg)
    return load_clap(spec, cfg, download=download)


def load_clap(spec: str, cfg: BackboneConfig, *, download: bool | None = None):
    """The CLAP kind's loader (transformers ClapModel from a hub id or a local folder)."""
    location = locate_model(spec, download=download)
    _check_model_type(location, "clap")
    fingerprint = fingerprint_location(location, "clap")

    import torch
    from transformers import ClapProcessor

    from stages.backbones.clap import ClapBackbone, load_clap_strict

    device = resolve_device(cfg.device)
    model = load_clap_strict(location.folder, getattr(torch, DTYPES[cfg.dtype]))
    try:
        processor = ClapProcessor.from_pretrained(location.folder)
    except (OSError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"backbone {spec!r}: cannot load its tokenizer / feature extractor from "
                        f"{location.folder} ({first})") from None
    backbone = ClapBackbone(model, processor.tokenizer, processor.feature_extractor, id=location.id,
                            fingerprint=fingerprint, text_pooling=cfg.text_pooling,
                            text_batch_size=cfg.text_batch_size, audio_batch_size=cfg.audio_batch_size)
    return backbone.to(device)
