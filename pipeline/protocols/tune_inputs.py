"""What one `tune` run is given, the resolved config and the request, made from `tune`'s flags in one place.

`sept-pipeline tune` and the sweep both call `tune_inputs`, so a sweep cell runs exactly what `tune` runs for
the same flags: a flag that is given wins over --config/--set, through its section's own validation. A sweep
cell receives the pair as two files, written before it starts (`write_inputs`, `read_inputs`): the resolved
`config.toml` (the same file a run keeps) and `request.json`.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cache.atomic import atomic_write_json, atomic_write_text
from cache.errors import UserError
from pipeline.config_loader import Config, load_config, to_toml
from pipeline.protocols.runner import TuneRequest

CONFIG_FILE = "config.toml"
REQUEST_FILE = "request.json"


@dataclass(frozen=True)
class TuneFlags:
    """The flags of `sept-pipeline tune`; None (or an empty backbone) = not given: the config's value stands."""

    dataset: str
    data_root: Path
    protocol: str
    out: Path
    method: str | None = None
    sept: bool | None = None
    backbone: str | None = None
    seed: int | None = None
    shots: int | None = None
    fold: str | None = None
    targets: Sequence[str] | None = None
    cache_dir: Path | None = None
    resume: bool = False
    force: bool = False
    progress: bool = True


# The flags that set a config key, in the order they are applied: flag -> (section, key).
_CONFIG_FLAGS = {"method": ("method", "name"), "sept": ("sept", "enabled"), "backbone": ("backbone", "id"),
                 "seed": ("data", "seed"), "shots": ("data", "shots"), "fold": ("data", "fold")}


def tune_inputs(cfg: Config, flags: TuneFlags) -> tuple[Config, TuneRequest]:
    """(the config the run uses, its request): `cfg` as loaded from --config/--set, then the given flags."""
    for flag, (section, key) in _CONFIG_FLAGS.items():
        value = getattr(flags, flag)
        if value is not None and (value or flag != "backbone"):
            cfg = cfg.replace(section, **{key: value})
    req = TuneRequest(dataset=flags.dataset, data_root=Path(flags.data_root), protocol=flags.protocol,
                      out=Path(flags.out), targets=None if flags.targets is None else list(flags.targets),
                      cache_dir=None if flags.cache_dir is None else Path(flags.cache_dir), resume=flags.resume,
                      force=flags.force, progress=flags.progress)
    return cfg, req


def write_inputs(folder: str | Path, cfg: Config, req: TuneRequest) -> Path:
    """Write `config.toml` and `request.json` into `folder` (each atomically); the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / CONFIG_FILE, to_toml(cfg))
    atomic_write_json(folder / REQUEST_FILE, {f.name: _plain(getattr(req, f.name))
                                              for f in dataclasses.fields(TuneRequest)})
    return folder


def read_inputs(folder: str | Path) -> tuple[Config, TuneRequest]:
    """What `write_inputs` wrote: the same config (the file sets every key) and the same request."""
    folder = Path(folder)
    cfg = load_config(folder / CONFIG_FILE)
    path = folder / REQUEST_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"tune request {path}: not readable as JSON ({e})") from None
    hints = typing.get_type_hints(TuneRequest)
    if not isinstance(data, dict) or not set(data) <= set(hints):
        raise UserError(f"tune request {path}: expected an object with keys among {', '.join(hints)}")
    values = {k: Path(v) if v is not None and _is_path(hints[k]) else v for k, v in data.items()}
    try:
        return cfg, TuneRequest(**values)
    except TypeError as e:
        raise UserError(f"tune request {path}: {e}") from None


def _plain(value):
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_path(hint) -> bool:
    return hint is Path or Path in typing.get_args(hint)
