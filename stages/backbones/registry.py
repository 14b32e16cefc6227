"""The backbone kinds: one record per kind, declared and registered in the kind's own package (PEFT style).

Each kind package (stages/backbones/clap/, text_dual/, pengi/, msclap/) ends its __init__.py with one
`register(...)` call per kind it serves; stages/backbones/__init__.py imports those packages, so every
kind is registered, in that order, before anything under stages.backbones runs. This module answers every
question about kinds: config validation and the CLI's choices and help texts (`known_kinds`, `short_ids`),
which kind a spec is (`resolve_kind`), what loads it (`loader_of`), and, for single-file checkpoints, the
published file of a short id (`published_file`). Nothing else keeps a table keyed by kind.

Importable without torch: config validation reads `known_kinds()`, and the fingerprint (a warm stage-one
rerun) resolves a kind without loading any model. Loaders, detectors, tokenizers and random makers are
named as "module:function" strings and imported only when used.

Resolution of `backbone.kind` against the spec (`resolve_kind`): "auto" takes the kind the spec names
(a short id such as 'packaged:minilm-dual', else a detector that recognises a local folder or checkpoint),
falling back to 'clap' (hub ids say nothing about their kind). An explicit kind that contradicts what the
spec is, is a one-line UserError.

Adding a kind: a package stages/backbones/<name>/ with its adapter (a loader returning an
AudioTextBackbone), a random maker if it can make one offline, and an __init__.py that registers its record;
one import in stages/backbones/__init__.py. The contract test (tests/stages/backbones/test_backbone_contract.py)
then checks it with every other kind.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

from cache.errors import UserError

AUTO = "auto"
FALLBACK_KIND = "clap"  # what a hub id or an unrecognised folder is taken to be
ITEM_MODALITIES = ("audio", "text")
SIGNATURE_DETECTOR = "stages.backbones.checkpoint.detect:has_signature"  # (path, keys) -> bool; torch once a .pth is found
RANDOM_CHECKPOINT = "stages.backbones.checkpoint.random_model:make_random_checkpoint"  # (kind, size, seed, out) -> Path


def function(ref: str):
    """The function a "module.path:function" string names, imported now."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ShortId:
    """A short id naming a kind's published weights, and where they are: a hub repo file or a plain URL."""

    id: str  # e.g. 'pengi:base'
    filename: str  # the published file's name
    hub_repo: str = ""  # fetched with huggingface_hub.hf_hub_download when set
    url: str = ""  # else fetched with urllib into <cache>/checkpoints/downloads/<folder>/<filename>
    folder: str = ""
    source: str = ""  # for messages: what the file is

    def manual(self) -> str:
        """How to get the file by hand (the alternative every error names)."""
        if self.hub_repo:
            return (f"fetch it where huggingface.co is reachable (`hf download {self.hub_repo} {self.filename}`) or "
                    f"download {self.filename} from the hub repo {self.hub_repo} and pass its path")
        return f"download {self.url} by hand and pass the file's path"


@dataclass(frozen=True)
class BackboneKind:
    """A kind whose weights are a model folder (a hub snapshot, a save_pretrained folder, a packaged model)."""

    name: str  # the value of config key backbone.kind
    summary: str  # one line for `backbones info --kinds`: what it is, where its weights come from
    item_modality: str  # "audio" or "text": what one dataset item is for this kind
    loader: str  # "module.path:function"(spec: str, cfg: BackboneConfig, download=None) -> AudioTextBackbone
    short_ids: tuple = ()  # ids that name this kind without a path, e.g. ("packaged:minilm-dual",)
    detect: str = ""  # optional "module.path:function"(folder: Path) -> bool: a local folder of this kind
    random_model: str = ""  # optional "module.path:function"(size, seed, out) -> Path: a random model folder

    def __post_init__(self):
        if self.item_modality not in ITEM_MODALITIES:
            raise ValueError(f"backbone kind {self.name!r}: item_modality {self.item_modality!r} is not one of "
                             f"{', '.join(ITEM_MODALITIES)}")

    def detects(self, path: Path) -> bool:
        """Whether the local file or folder `path` holds a backbone of this kind."""
        return bool(self.detect) and bool(function(self.detect)(path))

    @property
    def makes_random(self) -> bool:
        return bool(self.random_model)

    def make_random(self, size: str, seed: int, out) -> Path:
        """Write a seeded random model of this kind to the new folder `out` ('tiny' or 'full'); return it."""
        return function(self.random_model)(size, seed, out)


@dataclass(frozen=True)
class CheckpointKind(BackboneKind):
    """A kind whose weights are one .pth file in the original's key layout (stages/backbones/checkpoint/).

    Its detector is built from `signature_keys`; its short ids are its published files; a random checkpoint
    is `random_state` saved as `checkpoint_name` beside `tokenizer`'s files, so it loads through the path a
    user's file takes. Fingerprinted by the checkpoint file's hash.
    """

    published: tuple = ()  # ShortId per published file; their ids are the kind's short ids
    signature_keys: tuple = ()  # keys this kind's checkpoint holds and no other registered kind's holds all of
    checkpoint_name: str = ""  # the file name a random checkpoint is written under
    tokenizer: str = ""  # "module.path:function"() -> a tokenizer built locally, saved beside a random checkpoint
    random_state: str = ""  # "module.path:function"(size, generator) -> {key: tensor} in the original's layout
    short_ids: tuple = field(default=(), init=False)  # from `published`

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "short_ids", tuple(p.id for p in self.published))
        if not self.signature_keys:
            raise ValueError(f"checkpoint kind {self.name!r}: no signature keys, so no checkpoint can be told apart")
        if bool(self.random_state) != bool(self.tokenizer) or (self.random_state and not self.checkpoint_name):
            raise ValueError(f"checkpoint kind {self.name!r}: a random maker needs random_state, tokenizer and "
                             f"checkpoint_name together")

    def detects(self, path: Path) -> bool:
        return bool(function(SIGNATURE_DETECTOR)(path, self.signature_keys))

    @property
    def makes_random(self) -> bool:
        return bool(self.random_state)

    def make_random(self, size: str, seed: int, out) -> Path:
        return function(RANDOM_CHECKPOINT)(self.name, size, seed, out)


KINDS: dict[str, BackboneKind] = {}  # name -> record, in registration order; add through register()


def register(kind: BackboneKind) -> BackboneKind:
    """Add a kind (its package's __init__ calls this); returns it. Its name, short ids and checkpoint signature
    must tell it apart from every registered kind (two kinds claiming one spec would be ambiguous)."""
    if kind.name == AUTO or kind.name in KINDS:
        raise ValueError(f"backbone kind {kind.name!r} is already registered (or reserved)")
    for other in KINDS.values():
        shared = set(kind.short_ids) & set(other.short_ids)
        if shared:
            raise ValueError(f"backbone kind {kind.name!r}: short id {sorted(shared)[0]!r} already names "
                             f"kind {other.name!r}")
        if isinstance(kind, CheckpointKind) and isinstance(other, CheckpointKind):
            mine, theirs = set(kind.signature_keys), set(other.signature_keys)
            if mine <= theirs or theirs <= mine:
                raise ValueError(f"checkpoint kind {kind.name!r}: its signature keys do not tell it apart from "
                                 f"kind {other.name!r} (one set holds the other)")
    KINDS[kind.name] = kind
    return kind


def known_kinds() -> tuple[str, ...]:
    """Every registered kind, in registration order (stages/backbones/__init__.py)."""
    return tuple(KINDS)


def get_kind(name: str) -> BackboneKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UserError(f"config key backbone.kind: {name!r} is not a known backbone kind "
                        f"(known: {AUTO}, {', '.join(known_kinds())})") from None


def is_checkpoint_kind(name: str) -> bool:
    return isinstance(KINDS.get(name), CheckpointKind)


def short_ids() -> tuple[str, ...]:
    """Every registered short id, in kind order (the help texts list them)."""
    return tuple(s for kind in KINDS.values() for s in kind.short_ids)


def published_file(spec) -> ShortId | None:
    """The published checkpoint a short id names ('pengi:base'), None for anything else."""
    for kind in KINDS.values():
        for entry in getattr(kind, "published", ()):
            if entry.id == str(spec):
                return entry
    return None


def kind_for_spec(spec: str) -> str | None:
    """The kind a spec names: a registered short id, else the first kind whose detector accepts the local
    path; None for anything else (a hub id, an unrecognised folder)."""
    spec = str(spec)
    for kind in KINDS.values():
        if spec in kind.short_ids:
            return kind.name
    path = Path(spec).expanduser()
    if not path.exists():
        return None
    for kind in KINDS.values():
        if kind.detects(path):
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
    return function(kind.loader)
