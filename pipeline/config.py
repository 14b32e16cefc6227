"""TOML -> frozen, typed dataclasses, with `--set section.key=value` overrides.

One root `Config` holds one frozen dataclass per TOML section. Loading order: the defaults declared
on the dataclasses, then `configs/default.toml`, then the user's `--config FILE`, then each `--set`.
Any unknown key, wrong type or missing file is a one-line UserError naming the file and key.
"""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cache.errors import UserError
from stages.backbones.config import BackboneConfig, TextConfig
from stages.data.config import DataConfig
from stages.neighbors.config import NeighborsConfig
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = REPO_ROOT / "configs"
DEFAULT_CONFIG = CONFIGS_DIR / "default.toml"


@dataclass(frozen=True)
class Config:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    text: TextConfig = field(default_factory=TextConfig)
    data: DataConfig = field(default_factory=DataConfig)
    neighbors: NeighborsConfig = field(default_factory=NeighborsConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sept: SeptConfig = field(default_factory=SeptConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, section: str, **changes: Any) -> "Config":
        """A copy with some keys of one section changed (validated again)."""
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path}: not found (expected a TOML file)")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"config file {path}: not valid TOML ({e})") from None


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check `value` against a field type; allow int -> float, nothing else implicit."""
    origin = typing.get_origin(typ)
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif typ is list or origin is list:
        if isinstance(value, list):
            return list(value)
    elif typ is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    else:  # pragma: no cover - only the types above are used by config sections
        return value
    name = getattr(typ, "__name__", str(typ))
    raise UserError(f"{where}: expected {name}, got {type(value).__name__} {value!r}")


# Keys that moved: a config that still sets one gets told where it went.
_MOVED = {("neighbors", "boundary_filter"): "sept.boundary_filter (the class boundary is now applied at tune time, "
                                            "against the training classes only)"}


def _merge(base: dict, update: dict, source: str) -> dict:
    """Merge a parsed TOML dict into `base` (section -> key -> value), checking every key."""
    out = {k: dict(v) for k, v in base.items()}
    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    for section, values in update.items():
        if section not in sections:
            raise UserError(f"{source}: unknown section [{section}] (known: {', '.join(sections)})")
        if not isinstance(values, dict):
            raise UserError(f"{source}: [{section}] must be a table of keys")
        types = _field_types(hints[section])
        for key, value in values.items():
            if (section, key) in _MOVED:
                raise UserError(f"{source}: key {section}.{key} moved to {_MOVED[section, key]}")
            if key not in types:
                raise UserError(f"{source}: unknown key {section}.{key} (known: {', '.join(types)})")
            out.setdefault(section, {})[key] = _coerce(value, types[key], f"{source}: key {section}.{key}")
    return out


def parse_override(text: str) -> dict:
    """`section.key=value` -> {section: {key: value}}; the value is read as TOML, else as a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UserError(f"--set {text!r}: expected section.key=value (e.g. train.epochs=5)")
    lhs, rhs = text.split("=", 1)
    section, key = lhs.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {rhs.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = rhs.strip()
    return {section: {key: value}}


def build(layers: dict) -> Config:
    hints = typing.get_type_hints(Config)
    sections = {}
    for f in dataclasses.fields(Config):
        sections[f.name] = hints[f.name](**layers.get(f.name, {}))
    return Config(**sections)


def load_config(
    config_file: str | Path | None = None,
    overrides: Iterable[str] = (),
    defaults_file: str | Path | None = DEFAULT_CONFIG,
) -> Config:
    layers: dict = {}
    if defaults_file is not None and Path(defaults_file).is_file():
        layers = _merge(layers, read_toml(defaults_file), str(defaults_file))
    if config_file is not None:
        layers = _merge(layers, read_toml(config_file), str(config_file))
    for text in overrides:
        layers = _merge(layers, parse_override(text), f"--set {text}")
    try:
        return build(layers)
    except TypeError as e:  # a missing required field: none today, kept precise anyway
        raise UserError(f"config: {e}") from None


def describe(cfg_cls=Config) -> list[tuple[str, str, Any, str]]:
    """(section, key, default, help) for every key: used by `sept-pipeline config show --help-keys`."""
    rows = []
    hints = typing.get_type_hints(cfg_cls)
    for sec in dataclasses.fields(cfg_cls):
        for f in dataclasses.fields(hints[sec.name]):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((sec.name, f.name, default, f.metadata.get("help", "")))
    return rows


def to_toml(cfg: Config) -> str:
    import tomli_w

    return tomli_w.dumps(cfg.to_dict())
