"""A sweep's grid -> cells: one `tune` run each, with a stable folder name and a recorded identity.

A cell's name is made from its parameters (`demo-base2new-coop-sept-16shot-seed1`, then `-fold3` for a
fold, `-recipe=NAME` when the recipe axis is given, plus `-key=value` for config-key axes), so a rerun of
the sweep finds the same folders. Its identity is everything that decides what the run computes; it is
written beside the run, and a finished run whose identity differs from the cell's (the sweep file was
edited) is refused rather than silently taken as done.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cache.errors import UserError
from cache.fingerprint import sha256_file, sha256_json, short
from pipeline.protocols.table import CROSS
from pipeline.sweep.spec import SweepSpec, override_text
from stages.tuning.methods import uses_neighbors

IDENTITY_FILE = "sweep_cell.json"
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]+")
# Keys that only change how a run executes (device, batch sizes for memory), never what it computes.
_EXECUTION_KEYS = {"backbone.device", "backbone.text_batch_size", "backbone.audio_batch_size",
                   "train.eval_batch_size", "method.cocoop_chunk"}


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    sept: bool
    seed: int
    shots: int
    protocol: str
    extra: tuple[tuple[str, Any], ...] = ()        # config-key axes of this cell
    name: str = field(default="", compare=False)
    fold: str = ""                                 # official fold tested ('' = the dataset's default split)
    recipe: str = ""                               # "" = no --recipe (the config file's, else the default)


def cell_name(dataset: str, protocol: str, method: str, sept: bool, shots: int, seed: int,
              extra: tuple[tuple[str, Any], ...], fold: str = "", recipe: str = "") -> str:
    parts = [dataset, protocol, method, "sept" if sept else "nosept", f"{shots}shot", f"seed{seed}"]
    if fold:
        parts.append(fold)
    if recipe:
        parts.append(f"recipe={recipe}")
    for key, value in extra:
        text = f"{key}={value if not isinstance(value, (list, dict)) else json.dumps(value)}"
        safe = _SAFE.sub("_", text)
        parts.append(safe if safe == text and len(safe) <= 40 else f"{safe[:24]}~{short(sha256_json(text), 8)}")
    return "-".join(parts)


def dataset_folds(dataset: str, folds: list[str]) -> list[str]:
    """The fold axis of one dataset: "all" becomes its official folds (or its one split, ''), in order, once each."""
    from pipeline.protocols.folds import folds_to_run

    return list(dict.fromkeys(f for value in folds for f in folds_to_run(dataset, value)))


def expand(spec: SweepSpec) -> list[Cell]:
    """Every combination of the axes, in file order; zero-shot's SEPT twin is dropped (it trains nothing)."""
    names = list(spec.config_axes)
    axes = {k: v for k, v in spec.axes.items() if k != "fold"}
    cells = []
    for dataset, method, sept, seed, shots, protocol, recipe in itertools.product(*axes.values()):
        if sept and not uses_neighbors(method):  # zero-shot trains nothing; some methods have no prompt for SEPT
            continue
        for fold in dataset_folds(dataset, spec.axes.get("fold", [""])):
            for combo in itertools.product(*spec.config_axes.values()) if names else [()]:
                extra = tuple(zip(names, combo))
                cells.append(Cell(dataset, method, sept, seed, shots, protocol, extra, fold=fold, recipe=recipe,
                                  name=cell_name(dataset, protocol, method, sept, shots, seed, extra, fold,
                                                 recipe)))
    if not cells:
        raise UserError(f"sweep file {spec.source}: [grid] gives no runs (zero-shot trains nothing, so its "
                        f"SEPT variant is dropped; add sept = [false] or a trained method)")
    return cells


def check_methods_fit(spec: SweepSpec, cells: list[Cell]) -> None:
    """Refuse, before any run starts, a cell whose method cannot run its protocol (the method table says)."""
    from pipeline.protocols.table import check_method_fits
    from stages.tuning.methods import method_info

    for cell in cells:
        m = method_info(cell.method)
        if m.unseen and (m.sept or not cell.sept):
            continue  # nothing this method could refuse
        cfg = resolved_config(spec, cell).replace("method", name=cell.method)  # tune gets it as --method
        try:
            check_method_fits(cfg.method, cell.protocol, cell.sept and cfg.sept.lam > 0)
        except UserError as e:
            raise UserError(f"sweep file {spec.source}: cell {cell.name}: {e}") from None


def run_dir(spec: SweepSpec, cell: Cell) -> Path:
    return spec.runs_dir / cell.name


def overrides(spec: SweepSpec, cell: Cell) -> dict[str, Any]:
    return {**spec.fixed, **dict(cell.extra)}


def identity(spec: SweepSpec, cell: Cell) -> dict:
    """What decides the run's results: recorded beside it and compared on every rerun of the sweep."""
    fold = {"fold": cell.fold} if cell.fold else {}  # absent for the default split: older runs stay valid
    return {
        "dataset": cell.dataset, "method": cell.method, "sept": cell.sept, "seed": cell.seed,
        "shots": cell.shots, "protocol": cell.protocol, **fold,
        **({"recipe": cell.recipe} if cell.recipe else {}),  # absent when unused: older sweeps stay valid
        "targets": list(spec.targets) if cell.protocol == CROSS else [],
        "backbone": spec.backbone,
        "config_file": sha256_file(spec.config) if spec.config else None,
        "set": {k: v for k, v in sorted(overrides(spec, cell).items()) if k not in _EXECUTION_KEYS},
    }


def tune_args(spec: SweepSpec, cell: Cell) -> list[str]:
    """Arguments of `sept-pipeline tune` for this cell (without --resume: the cell process decides)."""
    args = ["tune", "--dataset", cell.dataset, "--data-root", str(spec.data_root), "--method", cell.method,
            "--sept" if cell.sept else "--no-sept", "--protocol", cell.protocol, "--seed", str(cell.seed),
            "--shots", str(cell.shots), "--out", str(run_dir(spec, cell)), "--json"]
    if cell.fold:
        args += ["--fold", cell.fold]
    if spec.backbone:
        args += ["--backbone", spec.backbone]
    if spec.cache_dir:
        args += ["--cache-dir", str(spec.cache_dir)]
    if spec.config:
        args += ["--config", str(spec.config)]
    if cell.protocol == CROSS and spec.targets:
        args += ["--targets", ",".join(spec.targets)]
    if cell.recipe:
        args += ["--recipe", cell.recipe]
    for key, value in overrides(spec, cell).items():
        args += ["--set", override_text(key, value)]
    return args


def recorded_identity(path: Path) -> dict | None:
    """The identity written beside a run by an earlier sweep, or None (no file, or unreadable)."""
    try:
        return json.loads((path / IDENTITY_FILE).read_text())
    except (OSError, ValueError):
        return None


def check_not_stale(spec: SweepSpec, cells: list[Cell]) -> None:
    """Refuse a runs folder whose runs were made by another version of this sweep (one line, first few)."""
    clashes = []
    for cell in cells:
        saved = recorded_identity(run_dir(spec, cell))
        if saved is not None and saved != identity(spec, cell):
            current = identity(spec, cell)
            keys = sorted(k for k in current.keys() | saved.keys() if current.get(k) != saved.get(k))
            clashes.append(f"{cell.name} ({', '.join(keys)})")
    if clashes:
        shown = "; ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise UserError(f"runs_dir {spec.runs_dir}: {len(clashes)} runs were made with other settings than the "
                        f"sweep file {spec.source} now gives: {shown}; use another runs_dir, or delete those runs")


def resolved_config(spec: SweepSpec, cell: Cell):
    """The Config the cell's `tune` will resolve (config file, then --set keys, then the sweep's backbone)."""
    from pipeline.config_loader import load_config

    cfg = load_config(spec.config, [override_text(k, v) for k, v in overrides(spec, cell).items()],
                      recipe=cell.recipe or None)
    return cfg.replace("backbone", id=spec.backbone) if spec.backbone else cfg
