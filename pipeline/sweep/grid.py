"""A sweep's grid -> cells: one `tune` run each, with a stable folder name and a recorded identity.

A cell's name is made from its parameters (`demo-base2new-coop-sept-16shot-seed1`, then `-fold3` for a
fold, `-recipe=NAME` when the recipe axis is given, plus `-key=value` for config-key axes), so a rerun of
the sweep finds the same folders. Its identity is everything that decides what the run computes; it is
written beside the run, and a finished run whose identity differs from the cell's (the sweep file was
edited) is refused rather than silently taken as done. What the cell's run is given, its resolved config and
request, is what `sept-pipeline tune` makes of the cell's flags (`cell_inputs`; pipeline/protocols/tune_inputs.py).
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
from pipeline.config_loader import Config, load_config, non_identity_keys
from pipeline.protocols.runner import TuneRequest
from pipeline.protocols.table import CROSS
from pipeline.protocols.tune_inputs import TuneFlags, tune_inputs
from pipeline.sweep.spec import SweepSpec, override_text
from stages.tuning.methods import uses_neighbors

IDENTITY_FILE = "sweep_cell.json"
_SAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


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
        cfg, req = cell_inputs(spec, cell)
        try:
            check_method_fits(cfg.method, req.protocol, cfg.sept.enabled and cfg.sept.lam > 0)
        except UserError as e:
            raise UserError(f"sweep file {spec.source}: cell {cell.name}: {e}") from None


def run_dir(spec: SweepSpec, cell: Cell) -> Path:
    return spec.runs_dir / cell.name


def overrides(spec: SweepSpec, cell: Cell) -> dict[str, Any]:
    """The cell's --set keys: [set], then its dataset's [per_dataset] table, then its config-key axes."""
    return {**spec.fixed, **spec.per_dataset.get(cell.dataset, {}), **dict(cell.extra)}


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
        "set": _results_keys(overrides(spec, cell)),
    }


def _results_keys(values: dict[str, Any]) -> dict[str, Any]:
    """The [set] and config-axis keys that change what a run computes, sorted (execution keys left out)."""
    execution = non_identity_keys()
    return {k: v for k, v in sorted(values.items()) if k not in execution}


def tune_flags(spec: SweepSpec, cell: Cell) -> TuneFlags:
    """The `tune` flags of this cell (without --resume: the cell process decides)."""
    return TuneFlags(dataset=cell.dataset, data_root=spec.data_root, protocol=cell.protocol,
                     out=run_dir(spec, cell), method=cell.method, sept=cell.sept, backbone=spec.backbone or None,
                     seed=cell.seed, shots=cell.shots, fold=cell.fold or None,
                     targets=list(spec.targets) if cell.protocol == CROSS and spec.targets else None,
                     cache_dir=spec.cache_dir, progress=False)


def cell_inputs(spec: SweepSpec, cell: Cell) -> tuple[Config, TuneRequest]:
    """The resolved config and request of the cell's run: the sweep's config file, its [set] and config-key axes
    (as --set), the cell's recipe, then its flags, exactly as `sept-pipeline tune` resolves them."""
    cfg = load_config(spec.config, [override_text(k, v) for k, v in overrides(spec, cell).items()],
                      recipe=cell.recipe or None, method=cell.method)  # the method picks a recipe's [for_method]
    return tune_inputs(cfg, tune_flags(spec, cell))


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
        if isinstance(saved, dict) and isinstance(saved.get("set"), dict):
            # Written before a key was marked execution-only: compare what changes results, as now.
            saved = {**saved, "set": _results_keys(saved["set"])}
        current = identity(spec, cell)
        if saved is not None and saved != current:
            keys = sorted(k for k in current.keys() | saved.keys() if current.get(k) != saved.get(k))
            clashes.append(f"{cell.name} ({', '.join(keys)})")
    if clashes:
        shown = "; ".join(clashes[:3]) + (f" and {len(clashes) - 3} more" if len(clashes) > 3 else "")
        raise UserError(f"runs_dir {spec.runs_dir}: {len(clashes)} runs were made with other settings than the "
                        f"sweep file {spec.source} now gives: {shown}; use another runs_dir, or delete those runs")
