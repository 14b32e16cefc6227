"""A sweep file (TOML) -> a validated `SweepSpec`. Every problem is one UserError naming the file and key.

    [sweep]                      where runs go and what every run shares
    runs_dir  = "runs/demo"      one run directory per cell is made under it
    data_root = "data"           --data-root of every run
    backbone  = "models/tiny"    --backbone (default: backbone.id of the config)
    cache_dir = ""               --cache-dir (default: $SEPT_CACHE_DIR, else ~/.cache/sept-pipeline)
    config    = ""               --config layered under every run (a normal sept-pipeline config TOML)
    protocol  = "base2new"       base2new | cross | fewshot (or a [grid] axis)
    targets   = []               cross-dataset targets (default: the source's suite, those found)
    executor  = "local"          local | ray
    max_parallel = 0             runs at once (0 = one per device)
    devices   = "auto"           "auto" (every visible GPU, else the CPU) or a list: ["cuda:0", "cuda:1"], ["cpu"]

    [grid]                       axes; the grid is their product
    dataset = ["demo"]           required
    method  = ["coop", "kgcoop"] required
    sept    = [false, true]      default [false]
    seed    = [1, 2, 3]          default [1]
    shots   = [16]               default [16]
    fold    = ["all"]            PALM's folds: "all" = every official fold of each dataset (one cell each;
                                 a dataset without folds gets its one split), or fold names; default [""]
    recipe  = ["palm", "coop-b2n"]
                                 named training recipes (configs/recipes/; `config recipes` lists them);
                                 default: none given (the config file's [recipe] name, else palm)
    "sept.lam" = [0.5, 1.0]      any config key, quoted, as an axis (passed to tune as --set)

    [set]                        fixed config keys of every run (--set), e.g. "train.epochs" = 5
    [per_dataset.NAME]           fixed config keys of the runs of dataset NAME only, over [set] (the settings
                                 a validation sweep chose for that dataset: benchmarks/efficacy_select.py)
    [ray]  address = ""          "" = start a local Ray instance; "auto" or "ray://head:10001" = a cluster
           num_cpus_per_run = 1, num_gpus_per_run = 1 (GPUs are asked for only where the cluster has them)

Relative paths are taken from the current folder, like the paths of any other command.
"""
from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cache.errors import UserError
from pipeline.protocols.table import BASE2NEW, CROSS, PROTOCOLS

AXES = ("dataset", "method", "sept", "seed", "shots", "protocol", "fold", "recipe")
AXIS_DEFAULTS = {"sept": [False], "seed": [1], "shots": [16], "fold": [""], "recipe": [""]}  # "" = no --recipe
EXECUTORS = ("local", "ray")
_SWEEP_KEYS = {"runs_dir", "data_root", "backbone", "cache_dir", "config", "protocol", "targets", "executor",
               "max_parallel", "devices"}
_RAY_KEYS = {"address", "num_cpus_per_run", "num_gpus_per_run"}
_SECTIONS = ("sweep", "grid", "set", "per_dataset", "ray")
# Config keys that `tune` sets from a cell's own axes (--seed, --shots, --method, --sept/--no-sept).
_AXIS_KEYS = {"data.seed": "seed", "data.shots": "shots", "method.name": "method", "sept.enabled": "sept",
              "data.fold": "fold", "recipe.name": "recipe"}


@dataclass(frozen=True)
class RaySettings:
    address: str = ""
    num_cpus_per_run: float = 1.0
    num_gpus_per_run: float = 1.0


@dataclass(frozen=True)
class SweepSpec:
    source: str                              # the sweep file, for messages
    runs_dir: Path
    data_root: Path
    backbone: str                            # hub id or (absolute) folder
    cache_dir: Path | None
    config: Path | None
    targets: tuple[str, ...]
    executor: str
    max_parallel: int
    devices: tuple[str, ...] | str           # "auto" or explicit devices
    axes: dict[str, list] = field(default_factory=dict)         # AXES present, in AXES order
    config_axes: dict[str, list] = field(default_factory=dict)  # "section.key" -> values
    fixed: dict[str, Any] = field(default_factory=dict)         # "section.key" -> value
    ray: RaySettings = field(default_factory=RaySettings)
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> "section.key" -> value


def _flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"epochs": 1}} and {"train.epochs": 1} both -> {"train.epochs": 1}."""
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _fail(source: str, where: str, message: str) -> UserError:
    return UserError(f"sweep file {source}: {where}: {message}")


def _typed(source: str, where: str, value: Any, typ: type | tuple, expect: str) -> Any:
    if isinstance(value, bool) and typ is not bool:
        raise _fail(source, where, f"{value!r} is not {expect}")
    if not isinstance(value, typ):
        raise _fail(source, where, f"{value!r} is not {expect}")
    return value


def _path(value: str) -> Path:
    return Path(value).expanduser().absolute()


def _known(source: str, section: str, table: dict, known: set[str]) -> None:
    for key in table:
        if key not in known:
            raise _fail(source, f"[{section}] {key}", f"unknown key (known: {', '.join(sorted(known))})")


def read_sweep_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path}: not found (expected a TOML file such as configs/sweeps/demo.toml)")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"sweep file {path}: not valid TOML ({e})") from None


def _check_datasets(source: str, where: str, names: list) -> None:
    from stages.data.specs import dataset_spec

    for name in names:
        _typed(source, where, name, str, "a dataset name")
        try:
            dataset_spec(name)
        except UserError as e:
            raise _fail(source, where, str(e)) from None


def _check_folds(source: str, folds: list, datasets: list) -> None:
    """'' and 'all' fit every dataset; a fold name must be an official fold of every dataset of the grid."""
    from stages.data.config import ALL_FOLDS
    from stages.data.specs import dataset_spec

    for fold in folds:
        _typed(source, "[grid] fold", fold, str, "a fold name, \"all\" or \"\"")
        if fold in ("", ALL_FOLDS):
            continue
        for name in datasets:
            spec = dataset_spec(name)
            if fold not in spec.folds:
                accepted = ", ".join(spec.folds) if spec.folds else "none"
                raise _fail(source, "[grid] fold", f"{fold!r} is not an official fold of dataset {spec.name} "
                                                   f"(its folds: {accepted}; \"all\" expands per dataset)")


def _check_methods(source: str, names: list) -> None:
    from stages.tuning.config import MethodConfig

    for name in names:
        _typed(source, "[grid] method", name, str, "a method name")
        try:
            MethodConfig(name=name)
        except UserError as e:
            raise _fail(source, "[grid] method", str(e)) from None


def _axes(source: str, grid: dict, default_protocol: str) -> tuple[dict[str, list], dict[str, list]]:
    flat = _flatten(grid)
    axes, config_axes = {}, {}
    for key, values in flat.items():
        where = f"[grid] {key}"
        if key not in AXES and "." not in key:
            raise _fail(source, where, f"unknown axis (axes: {', '.join(AXES)}, or a quoted config key "
                                       f"such as \"sept.lam\")")
        if not isinstance(values, list):
            raise _fail(source, where, f"{values!r} is not a list of values (write {key} = [{values!r}])")
        if not values:
            raise _fail(source, where, "empty list: the grid would have no runs (give at least one value)")
        if len({repr(v) for v in values}) != len(values):
            raise _fail(source, where, f"{values!r} repeats a value")
        (axes if key in AXES else config_axes)[key] = list(values)
    for required in ("dataset", "method"):
        if required not in axes:
            raise _fail(source, f"[grid] {required}", "missing (a list of at least one value is required)")
    for key, default in AXIS_DEFAULTS.items():
        axes.setdefault(key, list(default))
    axes.setdefault("protocol", [default_protocol])

    _check_datasets(source, "[grid] dataset", axes["dataset"])
    _check_methods(source, axes["method"])
    for v in axes["sept"]:
        _typed(source, "[grid] sept", v, bool, "true or false")
    for key in ("seed", "shots"):
        for v in axes[key]:
            if _typed(source, f"[grid] {key}", v, int, "a whole number") < 0:
                raise _fail(source, f"[grid] {key}", f"{v} is negative")
    for v in axes["protocol"]:
        if v not in PROTOCOLS:
            raise _fail(source, "[grid] protocol", f"{v!r} is not one of {', '.join(PROTOCOLS)}")
    _check_folds(source, axes["fold"], axes["dataset"])
    if axes["recipe"] != [""]:
        from pipeline.config_loader import recipe_names

        for v in axes["recipe"]:
            if not isinstance(v, str) or v not in recipe_names():
                raise _fail(source, "[grid] recipe", f"{v!r} is not one of {', '.join(recipe_names())}")
    return {k: axes[k] for k in AXES}, config_axes


def override_text(key: str, value: Any) -> str:
    """A `--set key=value` argument whose value parses back (as TOML) to the same value."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        text = json.dumps(value)  # strings and lists: JSON quoting is valid TOML for these
    return f"{key}={text}"


def _check_config_keys(source: str, config: Path | None, fixed: dict, config_axes: dict, recipes: list) -> None:
    """Every combination of recipe and config-key values must load as a config (types, ranges, choices)."""
    from pipeline.config_loader import load_config

    names = list(config_axes)
    for recipe in recipes:
        for combo in itertools.product(*config_axes.values()) if names else [()]:
            overrides = [override_text(k, v) for k, v in {**fixed, **dict(zip(names, combo))}.items()]
            try:
                load_config(config, overrides, recipe=recipe or None)
            except UserError as e:
                raise _fail(source, "[set]/[grid] config keys", str(e)) from None


def parse_sweep(path: str | Path, overrides: dict | None = None, extra_set: dict | None = None) -> SweepSpec:
    """Read and validate a sweep file. `overrides` replace [sweep]/[ray] keys (from the command line);
    `extra_set` adds fixed config keys to [set]."""
    source = str(path)
    raw = read_sweep_file(path)
    for section in raw:
        if section not in _SECTIONS:
            raise _fail(source, f"[{section}]", f"unknown section (known: {', '.join(_SECTIONS)})")
    sweep = dict(raw.get("sweep", {}))
    ray_raw = dict(raw.get("ray", {}))
    _known(source, "sweep", sweep, _SWEEP_KEYS)
    _known(source, "ray", ray_raw, _RAY_KEYS)
    for key, value in (overrides or {}).items():
        if value is not None:
            (ray_raw if key in _RAY_KEYS else sweep)[key] = value

    for key in ("runs_dir", "data_root"):
        if not sweep.get(key):
            raise _fail(source, f"[sweep] {key}", "missing (a folder path is required)")
        _typed(source, f"[sweep] {key}", sweep[key], str, "a folder path")
    protocol = sweep.get("protocol", BASE2NEW)
    if protocol not in PROTOCOLS:
        raise _fail(source, "[sweep] protocol", f"{protocol!r} is not one of {', '.join(PROTOCOLS)}")
    executor = sweep.get("executor", "local")
    if executor not in EXECUTORS:
        raise _fail(source, "[sweep] executor", f"{executor!r} is not one of {', '.join(EXECUTORS)}")
    max_parallel = _typed(source, "[sweep] max_parallel", sweep.get("max_parallel", 0), int, "a whole number")
    if max_parallel < 0:
        raise _fail(source, "[sweep] max_parallel", f"{max_parallel} is negative (0 = one run per device)")
    devices = sweep.get("devices", "auto")
    if devices != "auto":
        if not isinstance(devices, list) or not devices or not all(isinstance(d, str) and d for d in devices):
            raise _fail(source, "[sweep] devices", f"{devices!r} is not \"auto\" or a list such as [\"cuda:0\"]")
        for d in devices:
            if not (d == "cpu" or d.isdigit() or (d.startswith("cuda:") and d[5:].isdigit())):
                raise _fail(source, "[sweep] devices", f"{d!r} is not cpu, cuda:N or N")
        devices = tuple(devices)
    targets = sweep.get("targets", [])
    if not isinstance(targets, list):
        raise _fail(source, "[sweep] targets", f"{targets!r} is not a list of dataset names")
    _check_datasets(source, "[sweep] targets", targets)

    config = None
    if sweep.get("config"):
        config = _path(_typed(source, "[sweep] config", sweep["config"], str, "a file path"))
        if not config.is_file():
            raise _fail(source, "[sweep] config", f"{config} not found (expected a sept-pipeline config TOML)")
    backbone = sweep.get("backbone") or ""
    _typed(source, "[sweep] backbone", backbone, str, "a hub id or folder")
    if backbone and Path(backbone).expanduser().exists():
        backbone = str(_path(backbone))  # runs start in other folders (Ray workers): make paths absolute
    cache_dir = sweep.get("cache_dir") or None
    if cache_dir is not None:
        cache_dir = _path(_typed(source, "[sweep] cache_dir", cache_dir, str, "a folder path"))

    axes, config_axes = _axes(source, raw.get("grid", {}), protocol)
    if CROSS not in axes["protocol"] and targets:
        raise _fail(source, "[sweep] targets", "given, but no run uses protocol = \"cross\"")
    fixed = _flatten(raw.get("set", {}))
    fixed.update(extra_set or {})
    for key in fixed:
        if "." not in key:
            raise _fail(source, f"[set] {key}", "expected a config key section.key (e.g. \"train.epochs\" = 5)")
    for key in [*fixed, *config_axes]:
        if key in _AXIS_KEYS:
            raise _fail(source, f"[set]/[grid] {key!r}", f"is set by the grid's {_AXIS_KEYS[key]} axis; "
                                                         f"use [grid] {_AXIS_KEYS[key]} = [...]")
    overlap = set(fixed) & set(config_axes)
    if overlap:
        raise _fail(source, f"[set] {sorted(overlap)[0]}", "is also a [grid] axis; keep it in one place")
    _check_config_keys(source, config, fixed, config_axes, axes["recipe"])
    per_dataset = _per_dataset(source, raw.get("per_dataset", {}), axes["dataset"], config_axes)
    for name, keys in per_dataset.items():
        _check_config_keys(source, config, {**fixed, **keys}, config_axes, axes["recipe"])

    ray = RaySettings(
        address=_typed(source, "[ray] address", ray_raw.get("address", ""), str, "an address"),
        num_cpus_per_run=float(_typed(source, "[ray] num_cpus_per_run", ray_raw.get("num_cpus_per_run", 1),
                                      (int, float), "a number")),
        num_gpus_per_run=float(_typed(source, "[ray] num_gpus_per_run", ray_raw.get("num_gpus_per_run", 1),
                                      (int, float), "a number")),
    )
    return SweepSpec(
        source=source, runs_dir=_path(sweep["runs_dir"]), data_root=_path(sweep["data_root"]), backbone=backbone,
        cache_dir=cache_dir, config=config, targets=tuple(targets), executor=executor, max_parallel=max_parallel,
        devices=devices, axes=axes, config_axes=config_axes, fixed=fixed, ray=ray, per_dataset=per_dataset,
    )


def _per_dataset(source: str, tables: Any, datasets: list, config_axes: dict) -> dict[str, dict[str, Any]]:
    """[per_dataset.NAME] tables: NAME a dataset of the grid, keys config keys that no axis sets."""
    if not isinstance(tables, dict):
        raise _fail(source, "[per_dataset]", "must hold one table per dataset: [per_dataset.NAME]")
    out = {}
    for name, table in tables.items():
        where = f"[per_dataset.{name}]"
        if name not in datasets:
            raise _fail(source, where, f"{name!r} is not a dataset of the grid ({', '.join(datasets)})")
        if not isinstance(table, dict):
            raise _fail(source, where, "must be a table of config keys")
        keys = _flatten(table)
        for key in keys:
            if "." not in key:
                raise _fail(source, f"{where} {key}", "expected a config key section.key (e.g. \"sept.lam\" = 1.0)")
            if key in _AXIS_KEYS or key in config_axes:
                raise _fail(source, f"{where} {key!r}", "is a [grid] axis; a dataset's table holds fixed keys only")
        out[name] = keys
    return out
