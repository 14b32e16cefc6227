"""Find every finished run under a folder and turn its metrics.json into flat records.

A run directory is any folder holding `metrics.json` (written last by `tune`/`evaluate`, so its presence
means the run finished). A file that cannot be read, is not a JSON object, or lacks what its protocol needs
is skipped and named with the reason: one broken run never hides the others.

Folds: a run records the official fold it tested (`fold`) and the dataset's declared folds (`folds`); runs
that differ only in fold and seed are one cell, averaged over folds within a seed, then over seeds (tables.py).
Cross-dataset runs give one record per target; targets that share data with the source (`overlapping_targets`)
are flagged and kept out of the target mean, and the targets left out as overlapping are kept per source.

Runs that differ in anything besides the seed (and fold) must not be averaged together. Where the runs' resolved
configs (config.json beside metrics.json) differ in a key that changes the experiment (say sept.lam), that
key becomes part of the run's `variant` label, so a lambda sweep gives one table row per lambda.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config_loader import non_identity_keys
from stages.tuning.methods import trains

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
PROTOCOLS = ("base2new", "cross", "fewshot")

# Config keys that name the cell: each has its own column (seed, shots, fold, method, sept), so a run is never
# labelled a variant by them.
_NAMES_THE_CELL = {"data.seed", "data.shots", "data.fold", "method.name", "sept.enabled"}
# Neither are the keys that only change how a run executes (marked identity=False on their config fields).
_NOT_A_VARIANT = _NAMES_THE_CELL | non_identity_keys()


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str

    def line(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass
class Collected:
    """Records of finished runs: `runs` (one per run) and `cross` (one per run and target dataset)."""

    root: Path
    runs: list[dict] = field(default_factory=list)
    cross: list[dict] = field(default_factory=list)
    excluded: dict[str, dict[str, str]] = field(default_factory=dict)  # cross source -> {left-out target: why}
    skipped: list[Skipped] = field(default_factory=list)


class MetricsError(Exception):
    """A metrics file that cannot be used; the message says why."""


def find_metrics_files(root: Path) -> list[Path]:
    """Every metrics.json under `root`, sorted; hidden folders (temp dirs of atomic writes) are ignored."""
    found = []
    for path in sorted(root.rglob(METRICS_FILE)):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts[:-1]):
            continue
        found.append(path)
    return found


def _number(metrics: dict, key: str, required: bool = True) -> float | None:
    value = metrics.get(key)
    if value is None:
        if required:
            raise MetricsError(f"missing key {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MetricsError(f"key {key!r} is {value!r}, expected a finite number")
    return float(value)


def _integer(metrics: dict, config: dict, key: str, config_key: str, default: int | None = None) -> int:
    value = metrics.get(key)
    if value is None:
        value = config.get(config_key, default)
    if value is None:
        raise MetricsError(f"missing key {key!r} (and no {config_key} in {CONFIG_FILE})")
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetricsError(f"key {key!r} is {value!r}, expected an integer")
    return value


def _sept_enabled(metrics: dict, config: dict) -> bool:
    """SEPT on or off: `sept` as a table with `enabled`, or a boolean; else the resolved config."""
    value = metrics.get("sept", metrics.get("sept_enabled"))
    if isinstance(value, dict):
        value = value.get("enabled")
    if value is None:
        value = config.get("sept.enabled", False)
    if not isinstance(value, bool):
        raise MetricsError(f"key 'sept' is {value!r}, expected true/false or a table with 'enabled'")
    return value


def _protocol(metrics: dict) -> str:
    """The protocol a run followed; runs of `evaluate` (no protocol key) score all classes, like fewshot."""
    protocol = metrics.get("protocol")
    if protocol is None:
        if "base_acc" in metrics:
            return "base2new"
        if "targets" in metrics:
            return "cross"
        return "fewshot"
    if protocol not in PROTOCOLS:
        raise MetricsError(f"key 'protocol' is {protocol!r}, expected one of {', '.join(PROTOCOLS)}")
    return protocol


def _accuracies(metrics: dict, key: str) -> dict[str, float]:
    """Per-dataset accuracy of a cross-dataset run's `key` table: dataset -> {acc: ...} or a number."""
    table = metrics.get(key) or {}
    if not isinstance(table, dict):
        raise MetricsError(f"key {key!r} is {table!r}, expected a table (dataset -> {{acc: ...}})")
    out = {}
    for name, value in table.items():
        holder = value if isinstance(value, dict) else {"acc": value}
        try:
            out[str(name)] = _number(holder, "acc")
        except MetricsError as e:
            raise MetricsError(f"{key}.{name}: {e}") from None
    return out


def _target_accuracies(metrics: dict) -> dict[str, tuple[float, bool]]:
    """target -> (accuracy, overlaps the source). Overlapping targets come from `overlapping_targets`."""
    targets = _accuracies(metrics, "targets")
    overlapping = _accuracies(metrics, "overlapping_targets")
    if not targets and not overlapping:
        raise MetricsError("a cross-dataset run needs a non-empty 'targets' table (dataset -> {acc: ...})")
    return {**{k: (v, False) for k, v in targets.items()}, **{k: (v, True) for k, v in overlapping.items()}}


def _fold(metrics: dict, config: dict) -> tuple[str, int | None]:
    """(fold tested, number of folds the dataset declares or None when the run does not say)."""
    fold = metrics.get("fold", config.get("data.fold", ""))
    if fold is None:
        fold = ""
    if not isinstance(fold, str):
        raise MetricsError(f"key 'fold' is {fold!r}, expected a fold name such as 'fold1' (or '')")
    declared = metrics.get("folds")
    return fold, len(declared) if isinstance(declared, list) else None


def flatten_config(config: dict) -> dict[str, Any]:
    """{"section": {"key": v}} -> {"section.key": v}; lists become JSON text so they compare and print."""
    flat = {}
    for section, values in config.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            flat[f"{section}.{key}"] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return flat


def read_json_object(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise MetricsError("not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise MetricsError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except OSError as e:
        raise MetricsError(f"unreadable ({e.strerror})") from None
    if not isinstance(obj, dict):
        raise MetricsError(f"expected a JSON object, found {type(obj).__name__}")
    return obj


def read_run(metrics_path: Path, root: Path) -> tuple[dict, list[dict], dict]:
    """(run record, cross records, flattened config) of one metrics file; raises MetricsError with the reason."""
    metrics = read_json_object(metrics_path)
    config_path = metrics_path.parent / CONFIG_FILE
    config = flatten_config(read_json_object(config_path)) if config_path.is_file() else {}
    for key in ("dataset", "method"):
        if not isinstance(metrics.get(key), str) or not metrics[key]:
            raise MetricsError(f"missing key {key!r} (expected a non-empty string)")
    protocol = _protocol(metrics)
    run_name = str(metrics_path.parent.relative_to(root)) or "."
    fold, folds_declared = _fold(metrics, config)
    record = {
        "run": run_name,
        "protocol": protocol,
        "dataset": metrics["dataset"],
        "method": metrics["method"],
        "sept": _sept_enabled(metrics, config),
        "seed": _integer(metrics, config, "seed", "data.seed"),
        # evaluate's zero-shot runs train on nothing: 0 shots.
        "shots": _integer(metrics, config, "shots", "data.shots", 0 if not trains(metrics["method"]) else None),
        "fold": fold, "folds_declared": folds_declared,
        "base_acc": None, "new_acc": None, "hm": None, "acc": None, "macro_f1": None,
        "_notes": _method_notes(metrics),
    }
    cross_rows: list[dict] = []
    if protocol == "base2new":
        record["base_acc"] = _number(metrics, "base_acc")
        record["new_acc"] = _number(metrics, "new_acc")
        record["hm"] = _number(metrics, "hm")
    elif protocol == "fewshot":
        record["acc"] = _number(metrics, "acc")
        record["macro_f1"] = _number(metrics, "macro_f1", required=False)
    else:
        # The source dataset's own test accuracy, where the run measured it (`tune` writes source_acc).
        record["acc"] = _number(metrics, "acc" if "acc" in metrics else "source_acc", required=False)
        for target, (acc, overlap) in _target_accuracies(metrics).items():
            cross_rows.append({"run": run_name, "target": target, "acc": acc, "overlap": overlap})
        excluded = metrics.get("targets_excluded") or {}
        if isinstance(excluded, dict):  # popped by collect_runs: targets left out as sharing data with the source
            record["targets_excluded"] = {str(k): str(v) for k, v in excluded.items()}
    return record, cross_rows, config


def _variant_labels(configs: list[dict], records: list[dict]) -> list[str]:
    """Per run, `key=value` of the config keys that tell apart runs which would otherwise be averaged.

    A key counts when two runs of one cell (protocol, dataset, method, SEPT, shots) disagree on it; every
    run of that protocol is then labelled with it, so the cross-dataset average rows group consistently.
    Keys that only differ between datasets (a fold name) are not variants.
    """
    def relevant(cfg: dict, sept: bool) -> dict:
        # With SEPT off, its settings and the neighbor generation do not touch the run.
        return {k: v for k, v in cfg.items()
                if k not in _NOT_A_VARIANT and (sept or not k.startswith(("sept.", "neighbors.")))}

    views = [relevant(c, r["sept"]) for c, r in zip(configs, records)]
    cells: dict[tuple, list[dict]] = {}
    for view, r in zip(views, records):
        cells.setdefault((r["protocol"], r["dataset"], r["method"], r["sept"], r["shots"]), []).append(view)
    varying: dict[str, set[str]] = {}
    for (protocol, *_), members in cells.items():
        for key in {k for m in members for k in m}:
            if len({json.dumps(m.get(key), default=str) for m in members}) > 1:
                varying.setdefault(protocol, set()).add(key)
    return [", ".join(f"{k}={v[k]}" for k in sorted(varying.get(r["protocol"], ())) if k in v)
            for v, r in zip(views, records)]


def collect_runs(root: str | Path) -> Collected:
    """Read every metrics.json under `root`; unusable files land in `.skipped` with their reason."""
    root = Path(root)
    out = Collected(root=root)
    configs = []
    for path in find_metrics_files(root):
        try:
            record, cross_rows, config = read_run(path, root)
        except MetricsError as e:
            out.skipped.append(Skipped(path, str(e)))
            continue
        out.runs.append(record)
        out.cross.extend(cross_rows)
        excluded = record.pop("targets_excluded", None)
        if excluded:
            out.excluded.setdefault(record["dataset"], {}).update(excluded)
        configs.append(config)
    for record, label in zip(out.runs, _variant_labels(configs, out.runs)):
        notes = record.pop("_notes")
        record["variant"] = ", ".join(x for x in (label, notes) if x)
    return out


def _method_notes(metrics: dict) -> str:
    """The learner's own notes (metrics.json `method_notes`), e.g. 'unseen=zeroshot': always part of the label."""
    notes = metrics.get("method_notes")
    if not isinstance(notes, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(notes.items()))
