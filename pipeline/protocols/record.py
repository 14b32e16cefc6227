"""The run record: what one `tune` or `evaluate` run wrote, typed. `metrics.json` is its JSON.

    record = RunRecord.read(run_dir / "metrics.json")      # RecordError (one line, names the file) if unusable
    record.protocol, record.manifest["train.tower_mode"], record.result.hm, record.headline()

Writers (`tune`, `evaluate`: pipeline/protocols/runner.py) build one; readers (`report`, `inspect`, the sweep)
read one. No reader looks at which keys a file happens to hold: `protocol` names the result type
(pipeline/protocols/table.py), and the result's fields are read by that type.

Layout of metrics.json (schema_version 1): the common fields below, then the result's fields at the top
level (base2new: base_acc, new_acc, hm, base, new, base_classes, new_classes; fewshot: acc, macro_f1,
per_class_acc, num_clips; cross: mean_acc, source_acc, source, targets, overlapping_targets, ...), so that
`jq .hm metrics.json` works. Numbers that follow from others (hm, base_acc, mean_acc, ...) are written for
readers of the file and checked against their parts when it is read.

The manifest is the protocol the run followed, built from the resolved config by the declared list
MANIFEST_KEYS (one line per key): runs are compared and averaged only within one manifest (pipeline/report).
Every key is read from the config (a key the config lacks is a programming error, not a default).

Files of the shape written before the record (no schema_version) are refused with one line naming the file:
they lack the manifest, the times and the split rule, and a record rebuilt from them would have to invent
those, which is exactly what a report must not average over. Rerun such a run (`tune --force`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from cache.errors import UserError

SCHEMA_VERSION = 1


class RecordError(UserError):
    """A metrics.json that is not a usable run record; the message names the file and why."""


def utc_now() -> str:
    """UTC time as ISO-8601 with milliseconds and a Z: '2026-12-07T18:03:11.204Z'."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- the manifest ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ManifestKey:
    key: str                  # "section.key" of the resolved config, or of a fact the run supplies
    from_run: bool = False    # supplied by the run, not read from the config


# The protocol of a run. Adding a key = one line here (and, for a run fact, one value in the facts of
# TuneRun.record, pipeline/protocols/runner.py).
MANIFEST_KEYS: tuple[ManifestKey, ...] = (
    ManifestKey("data.split_rule"),                    # base/new: sorted names, or a seeded shuffle (ZEBRA)
    ManifestKey("data.base_fraction"),
    ManifestKey("data.eval_split"),                    # "val": a hyperparameter-selection run
    ManifestKey("data.val_fraction"),
    ManifestKey("data.fold"),
    ManifestKey("data.folds", from_run=True),          # the dataset's official folds
    ManifestKey("data.seed"),
    ManifestKey("data.shots"),
    ManifestKey("data.channels"),                      # multi-channel audio: mean, or concat (PALM)
    ManifestKey("recipe.name"),
    ManifestKey("train.select"),                       # which epoch's prompt is scored
    ManifestKey("train.tower_mode"),                   # frozen towers in eval mode, or train mode (PALM, SubT)
    ManifestKey("train.amp"),
    ManifestKey("precision.autocast", from_run=True),  # what train.amp resolved to on the run's device
    ManifestKey("backbone.id"),
    ManifestKey("backbone.dtype"),
    ManifestKey("text.templates"),
    ManifestKey("text.dataset_template"),              # the dataset config's own template instead
    ManifestKey("train.random_crop"),
    ManifestKey("train.eval_crop"),                    # test windows: the centre, or seeded random ones (PALM)
    ManifestKey("sept.enabled"),
    ManifestKey("sept.boundary_filter"),
    ManifestKey("sept.same_text_cos"),                 # when the encoder counts as separating texts (the filter's gate)
    ManifestKey("sept.generation"),                    # as asked: "auto", a key or a name
    ManifestKey("sept.generation_used", from_run=True),  # the store generation the run read ('' without SEPT)
)
# Keys that differ from run to run of one experiment: never part of what groups runs.
PER_RUN_KEYS = ("data.seed", "data.fold", "data.folds")


def build_manifest(cfg, facts: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a run: MANIFEST_KEYS read from the resolved config `cfg`, run facts from `facts`."""
    out = {}
    for mk in MANIFEST_KEYS:
        if mk.from_run:
            if mk.key not in facts:
                raise KeyError(f"manifest key {mk.key}: the run supplied no value")
            value = facts[mk.key]
        else:
            section, _, name = mk.key.partition(".")
            holder = getattr(cfg, section, None)
            if holder is None or not hasattr(holder, name):
                raise KeyError(f"manifest key {mk.key}: not in the config")
            value = getattr(holder, name)
        out[mk.key] = list(value) if isinstance(value, tuple) else value
    return out


# ---- results ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scores:
    """Classification scores of one evaluation set (stages/evaluation/metrics.py), accuracies in %."""
    acc: float
    macro_f1: float
    per_class_acc: dict[str, float]
    num_clips: int


def _hm(base: float, new: float) -> float:
    from stages.evaluation.metrics import harmonic_mean

    return harmonic_mean(base, new)


@dataclass(frozen=True)
class Base2NewResult:
    base: Scores
    new: Scores
    base_classes: list[str]
    new_classes: list[str]
    DERIVED: ClassVar[tuple[str, ...]] = ("base_acc", "new_acc", "hm")

    @classmethod
    def from_evaluations(cls, plan, scores: dict[str, Scores]) -> "Base2NewResult":
        return cls(base=scores["base"], new=scores["new"], base_classes=list(plan.split["base"]),
                   new_classes=list(plan.split["new"]))

    @property
    def base_acc(self) -> float:
        return self.base.acc

    @property
    def new_acc(self) -> float:
        return self.new.acc

    @property
    def hm(self) -> float:
        return _hm(self.base.acc, self.new.acc)

    def summary_lines(self, title: str) -> list[str]:
        return [f"{title}: base {self.base_acc:.2f}  new {self.new_acc:.2f}  HM {self.hm:.2f}"]


@dataclass(frozen=True)
class FewshotResult(Scores):
    """The scores of every class on the test split (fewshot's one evaluation)."""
    DERIVED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_evaluations(cls, plan, scores: dict[str, Scores]) -> "FewshotResult":
        return cls(**dataclasses.asdict(scores["all"]))

    def summary_lines(self, title: str) -> list[str]:
        return [f"{title}: acc {self.acc:.2f}  macro-F1 {self.macro_f1:.2f}"]


@dataclass(frozen=True)
class CrossResult:
    source: Scores                              # the source's own test set: reported beside, never averaged in
    targets: dict[str, Scores]                  # in the mean
    overlapping_targets: dict[str, Scores]      # named targets sharing clips with the source: apart
    targets_excluded: dict[str, str]            # left out as sharing clips with the source -> why
    targets_missing: list[str]                  # default targets not found under the data root
    target_folds: dict[str, list[str]]          # folds whose test files a target was scored on ([] = no folds)
    class_overlaps: dict[str, list[list[str]]]  # target -> [source class, target class] pairs sharing a word
    DERIVED: ClassVar[tuple[str, ...]] = ("mean_acc", "source_acc")

    @classmethod
    def from_evaluations(cls, plan, scores: dict[str, Scores]) -> "CrossResult":
        roles = {ev.name: ev.role for ev in plan.evals}
        return cls(source=scores["source"],
                   targets={k: v for k, v in scores.items() if roles[k] == "target"},
                   overlapping_targets={k: v for k, v in scores.items() if roles[k] == "overlap"},
                   targets_excluded=dict(plan.targets_excluded), targets_missing=list(plan.targets_missing),
                   target_folds={ev.name: list(ev.folds) for ev in plan.evals if ev.role},
                   class_overlaps={k: [list(p) for p in v] for k, v in plan.class_overlaps.items()})

    @property
    def mean_acc(self) -> float | None:
        """Mean over the targets in the mean (None when every target overlaps the source)."""
        return sum(s.acc for s in self.targets.values()) / len(self.targets) if self.targets else None

    @property
    def source_acc(self) -> float:
        return self.source.acc

    def summary_lines(self, title: str) -> list[str]:
        mean = "none (no target outside the source's overlaps)" if self.mean_acc is None else f"{self.mean_acc:.2f}"
        lines = [f"{title}: mean target acc {mean} (source {self.source_acc:.2f})"]
        for name, r in self.targets.items():
            folds = self.target_folds.get(name) or []
            scored = f"  (all {len(folds)} folds' test files)" if len(folds) > 1 else ""
            lines.append(f"  {name:<20} acc {r.acc:.2f}  macro-F1 {r.macro_f1:.2f}{scored}")
        lines += [f"  {name:<20} acc {r.acc:.2f}  macro-F1 {r.macro_f1:.2f}  (overlaps the source: not in the mean)"
                  for name, r in self.overlapping_targets.items()]
        if self.targets_excluded:
            lines.append(f"  left out, sharing clips with the source: {', '.join(self.targets_excluded)} "
                         f"(name one in --targets to evaluate it apart)")
        if self.targets_missing:
            lines.append(f"  not found under --data-root (skipped): {', '.join(self.targets_missing)}")
        for name, pairs in self.class_overlaps.items():
            if pairs:
                lines.append(f"  class names shared with {name}: " + ", ".join(f"{a} ~ {b}" for a, b in pairs))
        return lines


# ---- the record ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRecord:
    schema_version: int
    protocol: str                  # a name of the protocol table; says which result type `result` is
    dataset: str
    method: str
    seed: int
    shots: int
    fold: str                      # the official fold tested ('' = the dataset's only split)
    folds: list[str]               # the dataset's official folds
    eval_split: str                # "test", or "val": a hyperparameter-selection run, never a reported result
    started_at: str                # UTC, ISO-8601: when the run first started (a resumed run keeps it)
    finished_at: str               # UTC, ISO-8601: when this record was written
    manifest: dict[str, Any]       # MANIFEST_KEYS -> value
    recipe: dict[str, Any]         # name, source, file_sha256 of the recipe file
    sept: dict[str, Any]           # the [sept] config as written (dataclasses.asdict), plus `active`
    method_config: dict[str, Any]  # the [method] config as written, plus `n_ctx_used`
    backbone: str
    device: str
    num_train_clips: int
    train_classes: list[str]
    train: dict[str, Any]          # the trainer's summary ({} for a method that trains nothing)
    fingerprints: dict[str, Any]
    neighbor_selection: dict | None
    method_notes: dict[str, Any]
    warnings: list[str]
    diagnostic: dict[str, Any]     # {"file": "diagnostic.npz", ...} or {"skipped": why}
    seconds: float
    torch_version: str
    result: Base2NewResult | FewshotResult | CrossResult

    def __post_init__(self):
        from pipeline.protocols.table import protocol_info

        expected = protocol_info(self.protocol, "run record: protocol").result_type()
        if not isinstance(self.result, expected):
            raise TypeError(f"a {self.protocol} record holds a {expected.__name__}, not {type(self.result).__name__}")

    # -- reading --
    def headline(self) -> dict[str, float | None]:
        """The protocol's headline numbers (protocol table), by name."""
        from pipeline.protocols.table import PROTOCOLS

        return {key: getattr(self.result, key) for key in PROTOCOLS[self.protocol].headline}

    @property
    def sept_active(self) -> bool:
        return bool(self.sept.get("active"))

    def summary_lines(self) -> list[str]:
        tag = f"{self.method}{'+SEPT' if self.sept_active else ''} (seed {self.seed}, {self.shots} shots)"
        split = " [validation]" if self.eval_split == "val" else ""
        return self.result.summary_lines(f"{self.dataset} {self.protocol}{split} {tag}")

    # -- JSON --
    def to_dict(self) -> dict:
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "result"}
        result = _plain(self.result)
        result.update({k: getattr(self.result, k) for k in self.result.DERIVED})
        clash = set(out) & set(result)
        if clash:  # pragma: no cover - a result type whose field shadows a common one
            raise TypeError(f"result fields {sorted(clash)} clash with the record's")
        return {**out, **result}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "RunRecord":
        """Read a record from its JSON object; RecordError naming `where` (the file) and the problem."""
        from pipeline.protocols.table import PROTOCOLS

        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected a JSON object, found {type(data).__name__}")
        version = data.get("schema_version")
        if version is None:
            raise RecordError(f"{where}: predates the run record (no schema_version): it was written by an older "
                              f"sept-pipeline and lacks the manifest; rerun that run (`tune --force`)")
        if isinstance(version, bool) or not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
            raise RecordError(f"{where}: schema_version {version!r} is not one this sept-pipeline reads "
                              f"(1..{SCHEMA_VERSION}); a newer version wrote it")
        protocol = data.get("protocol")
        if protocol not in PROTOCOLS:
            raise RecordError(f"{where}: key 'protocol' is {protocol!r}, expected one of {', '.join(PROTOCOLS)}")
        result_type = PROTOCOLS[protocol].result_type()
        common = {f.name for f in dataclasses.fields(cls)} - {"result"}
        try:
            result = _read(result_type, data, "")
            for key in result_type.DERIVED:
                _check_derived(data, key, getattr(result, key))
            values = _read_fields(cls, {k: v for k, v in data.items() if k in common}, "", skip={"result"})
            record = cls(**values, result=result)
        except (_FieldError, TypeError, UserError) as e:
            raise RecordError(f"{where}: {e}") from None
        _check_manifest(record, where)
        return record

    @classmethod
    def from_json(cls, text: str, where: str) -> "RunRecord":
        try:
            data = json.loads(text)
        except ValueError as e:
            raise RecordError(f"{where}: not valid JSON ({e})") from None
        return cls.from_dict(data, where)

    @classmethod
    def read(cls, path: str | Path) -> "RunRecord":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise RecordError(f"{path}: not UTF-8 text") from None
        except OSError as e:
            raise RecordError(f"{path}: unreadable ({e.strerror})") from None
        return cls.from_json(text, str(path))


def _check_manifest(record: RunRecord, where: str) -> None:
    """The common fields say what the manifest says (a hand-edited file that disagrees is refused)."""
    m = record.manifest
    missing = [mk.key for mk in MANIFEST_KEYS if mk.key not in m]
    if missing:
        raise RecordError(f"{where}: the manifest lacks {', '.join(missing)}")
    for key, value in (("data.seed", record.seed), ("data.shots", record.shots), ("data.fold", record.fold),
                       ("data.eval_split", record.eval_split), ("data.folds", record.folds)):
        if m[key] != value:
            raise RecordError(f"{where}: manifest {key} = {m[key]!r} disagrees with the record's {value!r}")


class _FieldError(Exception):
    pass


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_derived(data: dict, key: str, value: float | None) -> None:
    written = data.get(key, value)
    same = (written is None and value is None) or (
        isinstance(written, (int, float)) and value is not None and math.isclose(written, value, abs_tol=1e-9))
    if not same:
        raise _FieldError(f"key {key!r} is {written!r}, but its parts give {value!r}")


def _read_fields(cls, data: dict, prefix: str, skip: set[str] = frozenset()) -> dict:
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        where = f"{prefix}{f.name}"
        if f.name not in data:
            raise _FieldError(f"missing key {where!r}")
        out[f.name] = _value(hints[f.name], data[f.name], where)
    return out


def _read(cls, data: dict, prefix: str):
    return cls(**_read_fields(cls, data, prefix))


def _value(typ: Any, value: Any, where: str) -> Any:
    """`value` checked against the annotation `typ` (the few shapes a record uses)."""
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(typ)
        if value is None and type(None) in args:
            return None
        errors = []
        for member in (a for a in args if a is not type(None)):
            try:
                return _value(member, value, where)
            except _FieldError as e:
                errors.append(str(e))
        raise _FieldError(errors[0])
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise _FieldError(f"key {where!r} is {value!r}, expected a table")
        return _read(typ, value, f"{where}.")
    if origin is dict or typ is dict:
        if not isinstance(value, dict):
            raise _FieldError(f"key {where!r} is {value!r}, expected a table")
        args = typing.get_args(typ)
        inner = args[1] if args else Any
        return {str(k): _value(inner, v, f"{where}.{k}") for k, v in value.items()}
    if origin is list or typ is list:
        if not isinstance(value, list):
            raise _FieldError(f"key {where!r} is {value!r}, expected a list")
        args = typing.get_args(typ)
        inner = args[0] if args else Any
        return [_value(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if typ is Any:
        return value
    if typ in (bool, int, float, str):  # the config loader's own check of a scalar (int -> float only)
        from pipeline.config_loader import typed_value

        try:
            out = typed_value(value, typ, f"key {where!r}")
        except UserError as e:
            raise _FieldError(str(e)) from None
        if typ is float and not math.isfinite(out):
            raise _FieldError(f"key {where!r}: expected a finite number, got {value!r}")
        return out
    raise _FieldError(f"key {where!r}: cannot read a value of type {typ}")  # pragma: no cover - no such field
