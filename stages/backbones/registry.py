"""The backbone registry: which adapter families exist, how to load one, how to tell them apart.

Importable without torch. Each kind names its loader and detector as "module:function" strings,
imported only when used, so listing kinds (config validation, help texts) stays cheap.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError


@dataclass(frozen=True)
class BackboneKind:
    name: str  # the value of config key backbone.kind
    summary: str  # one line: what it is, where its weights come from
    item_modality: str  # "audio" or "text": what one dataset item is for this kind
    short_ids: tuple = ()  # ids that name this kind without a path
    loader: str = ""  # "module:function"(spec, cfg) -> AudioTextBackbone
    detect: str = ""  # optional "module:function"(path) -> bool for a local path


_KINDS: dict[str, BackboneKind] = {}


def register(kind: BackboneKind) -> None:
    _KINDS[kind.name] = kind


def get_kind(name: str) -> BackboneKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UserError(f"backbone kind {name!r} is not one of {', '.join(known_kinds())}") from None


def known_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def resolve(ref: str):
    module, _, function = ref.partition(":")
    return getattr(importlib.import_module(module), function)


def kind_for_spec(spec: str) -> str | None:
    """The kind a spec names: a short id, else a detector's verdict on a local path, else None."""
    for kind in _KINDS.values():
        if spec in kind.short_ids:
            return kind.name
    path = Path(spec).expanduser()
    if path.exists():
        for kind in _KINDS.values():
            if kind.detect and resolve(kind.detect)(path):
                return kind.name
    return None


register(BackboneKind(
    name="clap", summary="transformers ClapModel (LAION CLAP: HTS-AT audio, RoBERTa text); hub id or local folder",
    item_modality="audio", loader="stages.backbones.factory:load_clap"))
register(BackboneKind(
    name="pengi", summary="Pengi's encoders (CLIP text + HTS-AT audio, PALM's backbone); base.pth from Zenodo "
                          "record 8387083, a local .pth or a folder holding one",
    item_modality="audio", short_ids=("pengi:base",), loader="stages.backbones.pengi:load_pengi",
    detect="stages.backbones.checkpoint_files:detect_pengi"))
register(BackboneKind(
    name="msclap-2023", summary="MS-CLAP 2023 (HTS-AT audio + GPT-2 text); CLAP_weights_2023.pth from the hub repo "
                                "microsoft/msclap, a local .pth or a folder holding one",
    item_modality="audio", short_ids=("msclap:2023",), loader="stages.backbones.msclap:load_msclap_2023",
    detect="stages.backbones.checkpoint_files:detect_msclap_2023"))
register(BackboneKind(
    name="msclap-2022", summary="MS-CLAP 2022 (CNN14 audio + BERT text); CLAP_weights_2022.pth from the hub repo "
                                "microsoft/msclap, a local .pth or a folder holding one",
    item_modality="audio", short_ids=("msclap:2022",), loader="stages.backbones.msclap:load_msclap_2022",
    detect="stages.backbones.checkpoint_files:detect_msclap_2022"))
