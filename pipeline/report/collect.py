"""Find every finished run under a folder and turn its run record (metrics.json) into flat rows.

A run directory is any folder holding `metrics.json` (written last by `tune`/`evaluate`, so its presence
means the run finished). It is read as a run record (pipeline/protocols/record.py): the record's `protocol`
says which result it holds, nothing is guessed from which keys a file has. A file that cannot be read, is
not a record (including the files written before the record existed), or is damaged is skipped and named
with the reason: one broken run never hides the others.

Folds: a run records the official fold it tested (`fold`) and the dataset's declared folds (`folds`); runs
that differ only in fold and seed are one cell, averaged over folds within a seed, then over seeds (tables.py).
Cross-dataset runs give one row per target; targets that share data with the source (`overlapping_targets`)
are flagged and kept out of the target mean, and the targets left out as overlapping are kept per source.

Runs are averaged together only when they share one setting: their manifest (the protocol: split rule,
recipe, tower mode, precision, templates, SEPT's filters, ...) and their resolved config (config.json beside
the record), seed and fold apart. Where runs of one table differ in a key (say sept.lam), that key becomes
part of the run's `variant` label, so a lambda sweep gives one table row per lambda and runs of different
manifests never share a row. Validation runs (eval_split "val") carry eval_split in their row and are shown
in tables of their own.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config_loader import non_identity_keys
from pipeline.protocols.record import (PER_RUN_KEYS, Base2NewResult, CrossResult, FewshotResult, RecordError,
                                       RunRecord)

METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"

# Config keys that name the cell: each has its own column (seed, shots, fold, method, sept, evaluation split), so
# a run is never labelled a variant by them; nor by the keys that differ from run to run of one experiment.
_NAMES_THE_CELL = {"data.seed", "data.shots", "data.fold", "data.eval_split", "method.name", "sept.enabled",
                   *PER_RUN_KEYS}
# Neither are the keys that only change how a run executes (marked identity=False on their config fields).
_NOT_A_VARIANT = _NAMES_THE_CELL | non_identity_keys()
SEPT_ONLY = ("sept.", "neighbors.")  # settings that do not touch a run without SEPT
# Keys whose value follows from the dataset: they tell runs of one dataset apart, never two datasets.
_DATASET_KEYS = {"sept.generation_used"}


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str

    def line(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass
class Collected:
    """Rows of finished runs: `runs` (one per run) and `cross` (one per run and target dataset); `records`
    and `settings` by run name (the record, and the flat setting the run is grouped by)."""

    root: Path
    runs: list[dict] = field(default_factory=list)
    cross: list[dict] = field(default_factory=list)
    excluded: dict[str, dict[str, str]] = field(default_factory=dict)  # cross source -> {left-out target: why}
    class_overlaps: dict[str, dict[str, list[list[str]]]] = field(default_factory=dict)  # source -> target -> pairs
    skipped: list[Skipped] = field(default_factory=list)
    records: dict[str, RunRecord] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


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


def read_record(metrics_path: Path) -> RunRecord:
    """The run record of a metrics file; MetricsError with the reason (without the path: callers name it)."""
    try:
        return RunRecord.read(metrics_path)
    except RecordError as e:
        raise MetricsError(str(e).removeprefix(f"{metrics_path}: ")) from None


def setting_of(record: RunRecord, config: dict[str, Any]) -> dict[str, Any]:
    """The flat setting a run is grouped by: its resolved config (flattened) overlaid with its manifest and
    its [sept]/[method] tables as recorded; lists and tables as JSON text so they compare and print."""
    flat = dict(config)
    for key, value in {**record.manifest,
                       **{f"sept.{k}": v for k, v in record.sept.items() if k != "active"},
                       **{f"method.{k}": v for k, v in record.method_config.items() if k != "n_ctx_used"}}.items():
        flat[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return flat


def read_run(metrics_path: Path, root: Path) -> tuple[dict, list[dict], dict, RunRecord]:
    """(run row, cross rows, setting, record) of one metrics file; raises MetricsError with the reason."""
    record = read_record(metrics_path)
    config_path = metrics_path.parent / CONFIG_FILE
    config = flatten_config(read_json_object(config_path)) if config_path.is_file() else {}
    run_name = str(metrics_path.parent.relative_to(root)) or "."
    row = {
        "run": run_name, "protocol": record.protocol, "dataset": record.dataset, "method": record.method,
        "sept": bool(record.sept.get("enabled")), "seed": record.seed, "shots": record.shots,
        "eval_split": record.eval_split, "fold": record.fold, "folds_declared": len(record.folds),
        "base_acc": None, "new_acc": None, "hm": None, "acc": None, "macro_f1": None,
        "_notes": _method_notes(record.method_notes),
    }
    cross_rows: list[dict] = []
    result = record.result
    if isinstance(result, Base2NewResult):
        row.update(base_acc=result.base_acc, new_acc=result.new_acc, hm=result.hm)
    elif isinstance(result, FewshotResult):
        row.update(acc=result.acc, macro_f1=result.macro_f1)
    elif isinstance(result, CrossResult):
        row["acc"] = result.source_acc  # the source's own test accuracy: shown beside, never averaged in
        for target, scores in result.targets.items():
            cross_rows.append({"run": run_name, "target": target, "acc": scores.acc, "overlap": False})
        for target, scores in result.overlapping_targets.items():
            cross_rows.append({"run": run_name, "target": target, "acc": scores.acc, "overlap": True})
    return row, cross_rows, setting_of(record, config), record


def relevant_setting(setting: dict, sept: bool) -> dict:
    """The keys that can tell two runs apart: with SEPT off, its settings and the neighbor generation do not
    touch the run."""
    return {k: v for k, v in setting.items()
            if k not in _NOT_A_VARIANT and (sept or not k.startswith(SEPT_ONLY))}


def _dataset_specific(view: dict) -> set[str]:
    """Keys of this run whose value follows from its dataset (the dataset's own template, its generation)."""
    return _DATASET_KEYS | ({"text.templates"} if view.get("text.dataset_template") is True else set())


def _variant_labels(settings: list[dict], rows: list[dict]) -> list[str]:
    """Per run, `key=value` of the keys that tell apart runs which would otherwise be averaged together.

    A key counts when two runs of one table row (protocol, eval_split, dataset, method, SEPT, shots) disagree
    on it, or two runs of one Average row (the same without the dataset) disagree on a key that does not
    follow from the dataset; every run of that protocol is then labelled with it. So runs of different
    manifests or configs never share a row, and an average over datasets averages one setting.
    """
    views = [relevant_setting(s, r["sept"]) for s, r in zip(settings, rows)]
    cells: dict[tuple, list[dict]] = {}
    groups: dict[tuple, list[dict]] = {}
    for view, r in zip(views, rows):
        key = (r["protocol"], r["eval_split"], r["method"], r["sept"], r["shots"])
        cells.setdefault((*key, r["dataset"]), []).append(view)
        groups.setdefault(key, []).append({k: v for k, v in view.items() if k not in _dataset_specific(view)})
    varying: dict[str, set[str]] = {}
    for (protocol, *_), members in [*cells.items(), *groups.items()]:
        for key in {k for m in members for k in m}:
            if len({json.dumps(m.get(key), default=str) for m in members}) > 1:
                varying.setdefault(protocol, set()).add(key)
    return [", ".join(f"{k}={v[k]}" for k in sorted(varying.get(r["protocol"], ())) if k in v)
            for v, r in zip(views, rows)]


def collect_runs(root: str | Path) -> Collected:
    """Read every metrics.json under `root`; unusable files land in `.skipped` with their reason."""
    root = Path(root)
    out = Collected(root=root)
    settings = []
    for path in find_metrics_files(root):
        try:
            row, cross_rows, setting, record = read_run(path, root)
        except MetricsError as e:
            out.skipped.append(Skipped(path, str(e)))
            continue
        out.runs.append(row)
        out.cross.extend(cross_rows)
        out.records[row["run"]] = record
        out.settings[row["run"]] = setting
        if isinstance(record.result, CrossResult):
            out.excluded.setdefault(record.dataset, {}).update(record.result.targets_excluded)
            for target, pairs in record.result.class_overlaps.items():
                out.class_overlaps.setdefault(record.dataset, {})[target] = pairs
        settings.append(setting)
    for row, label in zip(out.runs, _variant_labels(settings, out.runs)):
        notes = row.pop("_notes")
        row["variant"] = ", ".join(x for x in (label, notes) if x)
    return out


def _method_notes(notes: dict) -> str:
    """The learner's own notes (the record's `method_notes`), e.g. 'unseen=zeroshot': always part of the label."""
    return ", ".join(f"{k}={v}" for k, v in sorted(notes.items()))
