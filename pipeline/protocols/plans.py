"""What each protocol trains on and what it evaluates (docs/method.md, Protocols), as plain data. Each protocol
of the table (pipeline/protocols/table.py) names its builder here; `make_plan` picks it.

- base2new (`base2new_plan`): sorted class names, base = first ceil(C * base_fraction) (or data.split_rule
  "shuffle:<seed>", ZEBRA's: stages/data/splits.py); few-shot train on base; evaluate base classes on base
  test clips and new classes on new test clips. With eval_split "val" the same protocol runs inside the
  base classes' training items (`validation_plan`, pipeline/protocols/validation.py): the split on which
  hyperparameters are chosen; it never reads a new class or a test item.
- fewshot (`fewshot_plan`): all classes, few-shot train, test on all classes (PALM's protocol).
- cross (`cross_plan`): train on the source dataset's classes (all of them, few-shot); evaluate every target
            dataset with that dataset's own class names on all its clips (a folded target: the union of
            its folds' test files), and the source's own test set, reported apart as source_acc: it is not
            part of the cross-dataset mean. Default targets are the datasets of the source's `suite` (the
            dataset configs' key: the 11 audio datasets are "palm11", the text proxy's two datasets
            "text-proxy"); a dataset of no suite (demo) is never a default target, and a source of no
            suite needs --targets.
            A target that shares clips with the source (declared in either dataset's config: `overlaps`)
            is left out by default and listed in `targets_excluded`; named in --targets it is evaluated
            with a warning and reported apart (role "overlap"), never in the mean. Independently of any
            declaration, a target whose test clips have the same content (sha256) as clips of the source's
            train split is refused: that would test on training data. Class names that a target shares
            with the source (a common word, e.g. ESC-50's 'dog' and UrbanSound8K's 'dog bark') are kept,
            as CoCoOp's protocol keeps them, and listed (`class_overlaps`).
No torch here: a plan is dataset bookkeeping only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cache.errors import UserError


@dataclass
class EvalSet:
    name: str                 # "base", "new", "all", "source", or a target dataset's name
    dataset: str
    classnames: list[str]
    clips: list               # Clips labelled into `classnames`
    role: str = ""            # cross: "target" (in the mean) or "overlap" (shares clips with the source); else ""
    folds: list[str] = field(default_factory=list)  # cross targets: the folds whose test files `clips` unites


@dataclass
class Plan:
    protocol: str
    dataset: str
    train_classes: list[str]
    train_clips: list         # all training clips of the train classes, labelled into train_classes
    evals: list[EvalSet]
    split: dict = field(default_factory=dict)         # base/new lists for base2new
    targets_missing: list[str] = field(default_factory=list)
    targets_excluded: dict[str, str] = field(default_factory=dict)  # cross: overlapping target -> why left out
    class_overlaps: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # cross: target -> shared names
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlanInputs:
    """What a plan builder may use besides the dataset (each protocol uses its part)."""
    data_root: Path
    base_fraction: float = 0.5
    targets: Sequence[str] | None = None
    source_spec: object = None
    val_fraction: float = 0.3
    split_rule: str = "sorted"  # data.split_rule: how base2new splits the classes (stages/data/splits.py)


def make_plan(protocol: str, ds, data_root: Path, base_fraction: float,
              targets: Sequence[str] | None = None, source_spec=None, eval_split: str = "test",
              val_fraction: float = 0.3, split_rule: str = "sorted") -> Plan:
    """`source_spec`: the DatasetSpec of `ds` (needed for its declared overlaps when the dataset was given
    as a .toml path outside the config folders; by default looked up by name). `eval_split` "val": the
    protocol's validation view (hyperparameter selection), see pipeline/protocols/validation.py. `split_rule`:
    data.split_rule (stages/data/splits.py base_new_split)."""
    from pipeline.protocols.table import protocol_info, with_validation

    info = protocol_info(protocol)
    inputs = PlanInputs(Path(data_root), base_fraction, targets, source_spec, val_fraction, split_rule)
    if eval_split == "val":
        builder = info.validation_builder()
        if builder is None:
            raise UserError(f"data.eval_split 'val': defined for --protocol {' or '.join(with_validation())} only "
                            f"(got {protocol!r}); choose {protocol} settings on such a validation run, or use "
                            f"eval_split 'test'")
    else:
        builder = info.plan_builder()
    plan = builder(ds, inputs)
    plan.protocol = info.name
    _check_train_clips(plan)
    for ev in plan.evals:
        if not ev.clips:
            raise UserError(f"dataset {ev.dataset}: no test clips of the {ev.name} classes "
                            f"({', '.join(ev.classnames[:5])}{'...' if len(ev.classnames) > 5 else ''}); "
                            f"the {protocol} protocol needs at least one")
    return plan


def base2new_plan(ds, inputs: PlanInputs) -> Plan:
    from stages.data.splits import base_new_split, restrict_clips

    base_fraction, split_rule = inputs.base_fraction, inputs.split_rule
    base, new = base_new_split(ds.classnames, base_fraction, split_rule)
    if not new:
        raise UserError(f"data.base_fraction {base_fraction}: leaves no new classes in {ds.name} "
                        f"({len(ds.classnames)} classes); base2new needs both (use a value below 1)")
    if not base:
        raise UserError(f"data.base_fraction {base_fraction}: leaves no base classes in {ds.name}")
    return Plan("", ds.name, base, restrict_clips(ds.train, ds.classnames, base),
                [EvalSet("base", ds.name, base, restrict_clips(ds.test, ds.classnames, base)),
                 EvalSet("new", ds.name, new, restrict_clips(ds.test, ds.classnames, new))],
                split={"base": base, "new": new, "base_fraction": base_fraction, "split_rule": split_rule})


def fewshot_plan(ds, inputs: PlanInputs) -> Plan:
    return Plan("", ds.name, list(ds.classnames), list(ds.train),
                [EvalSet("all", ds.name, list(ds.classnames), list(ds.test))])


def cross_plan(ds, inputs: PlanInputs) -> Plan:
    plan = Plan("", ds.name, list(ds.classnames), list(ds.train),
                [EvalSet("source", ds.name, list(ds.classnames), list(ds.test))])
    plan.evals += _cross_targets(plan, inputs.data_root, inputs.targets, inputs.source_spec)
    return plan


def validation_plan(ds, inputs: PlanInputs) -> Plan:
    """base2new inside the base classes' training items: no new class, no test item is read."""
    from pipeline.protocols.validation import HOLDOUT_RULE, split_validation_items
    from stages.data.splits import base_new_split, restrict_clips

    base_fraction, val_fraction, split_rule = inputs.base_fraction, inputs.val_fraction, inputs.split_rule
    base, _new = base_new_split(ds.classnames, base_fraction, split_rule)
    val_base, val_new = base_new_split(base, base_fraction, split_rule)
    if not val_base or not val_new:
        raise UserError(f"data.eval_split 'val': the {len(base)} base classes of {ds.name} cannot be split again "
                        f"into validation-base and validation-new classes with base_fraction {base_fraction}")
    kept, held = split_validation_items(restrict_clips(ds.train, ds.classnames, val_base), val_base, val_fraction)
    return Plan("", ds.name, val_base, kept,
                [EvalSet("base", ds.name, val_base, held),
                 EvalSet("new", ds.name, val_new, restrict_clips(ds.train, ds.classnames, val_new))],
                split={"base": val_base, "new": val_new, "base_fraction": base_fraction, "split_rule": split_rule,
                       "eval_split": "val",
                       "val_fraction": val_fraction, "rule": HOLDOUT_RULE})


def _check_train_clips(plan: Plan) -> None:
    have = {c.label for c in plan.train_clips}
    empty = [name for i, name in enumerate(plan.train_classes) if i not in have]
    if empty:
        shown = ", ".join(repr(c) for c in empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise UserError(f"dataset {plan.dataset}: {len(empty)} training classes have no training clip: {shown} "
                        f"(every class trained on needs at least one clip in the train split)")


def default_targets(source) -> list[str]:
    """The datasets of the source's suite, the source left out; a source of no suite has none."""
    from stages.data.datasets import list_datasets
    from stages.data.specs import dataset_spec

    if not source.suite:
        return []
    return [n for n in list_datasets() if n != source.name and dataset_spec(n).suite == source.suite]


def _cross_targets(plan: Plan, data_root: Path, targets: Sequence[str] | None, source_spec=None) -> list[EvalSet]:
    """Evaluation sets of the targets. Named targets must load; by default every other dataset of the
    source's suite found under the data root is a target and the absent ones are listed, not fatal.
    Overlapping targets are excluded (default) or kept apart (named); `plan` receives the missing/excluded
    lists, the shared class names and warnings."""
    from stages.data.specs import dataset_spec, datasets_overlap

    source = source_spec or dataset_spec(plan.dataset)
    explicit = targets is not None and len(targets) > 0
    if not explicit and not source.suite:
        raise UserError(f"--protocol cross: dataset {source.name} belongs to no suite (its config {source.path} has "
                        f"no `suite` key), so it has no default targets; name them with --targets NAME,...")
    names = list(targets) if explicit else default_targets(source)
    train_hashes = None  # computed on the first target that loads
    evals = []
    for name in names:
        spec = dataset_spec(name)
        if spec.name == source.name:
            raise UserError(f"--targets {name}: is the source dataset; cross-dataset targets must be other datasets")
        overlap = datasets_overlap(source, spec)
        if overlap and not explicit:
            plan.targets_excluded[spec.name] = overlap
            continue
        try:
            target = load_target(spec, data_root, name)
        except UserError:
            if explicit:
                raise
            plan.targets_missing.append(spec.name)
            continue
        if train_hashes is None:
            train_hashes = _content_hashes(plan.train_clips)
        _refuse_shared_clips(source.name, train_hashes, target)
        if overlap:
            plan.warnings.append(f"--targets {target.name}: shares clips with the source ({overlap}); evaluated but "
                                 f"reported apart, not in the cross-dataset mean")
        if target.missing_folds:
            plan.warnings.append(f"cross-dataset target {target.name}: scored on the test files of folds "
                                 f"{', '.join(target.folds)} only; {', '.join(target.missing_folds)} could not be "
                                 f"read ({target.missing_why})")
        plan.class_overlaps[target.name] = class_name_overlaps(plan.train_classes, target.classnames)
        evals.append(EvalSet(target.name, target.name, list(target.classnames), list(target.test),
                             role="overlap" if overlap else "target", folds=list(target.folds)))
    if not evals:
        excluded = f"; left out as overlapping the source: {', '.join(plan.targets_excluded)}" \
            if plan.targets_excluded else ""
        raise UserError(f"--protocol cross: no target dataset found under {data_root} (looked for: "
                        f"{', '.join(n for n in names if n not in plan.targets_excluded) or 'none'}{excluded}); "
                        f"give --targets NAME,... of datasets present there")
    return evals


@dataclass
class TargetClips:
    """A cross-dataset target: every clip it is scored on (a folded dataset: the union of its folds' test files)."""
    name: str
    classnames: list[str]
    test: list
    folds: list[str]               # folds united ([] for a dataset without folds)
    missing_folds: list[str] = field(default_factory=list)
    missing_why: str = ""


def load_target(spec, data_root: Path, ref: str = "") -> TargetClips:
    """All clips of a target (`ref`: how it was named, a dataset name or a .toml path; default its name). A folded dataset's folds partition its clips, so the union of every fold's test
    split is the whole dataset; a dataset without folds is scored on its test split. A fold that cannot be
    read is left out and named (a dataset that loads no fold at all raises that fold's error)."""
    from stages.data.datasets import load_dataset

    ref = str(ref or spec.name)
    if not spec.folds:
        ds = load_dataset(ref, data_root)
        return TargetClips(ds.name, list(ds.classnames), list(ds.test), [])
    clips, seen, folds, missing, first_error = [], set(), [], [], None
    for fold in spec.folds:
        try:
            ds = load_dataset(ref, data_root, fold=fold)
        except UserError as e:
            missing.append(fold)
            first_error = first_error or e
            continue
        folds.append(fold)
        for clip in ds.test:
            if clip.path not in seen:
                seen.add(clip.path)
                clips.append(clip)
    if not folds:
        raise first_error
    return TargetClips(spec.name, list(spec.classes), clips, folds, missing, str(first_error) if missing else "")


_SUFFIXES = ("ing", "ter", "es", "s", "e")


def _stem(word: str) -> str:
    """A crude stem, enough to see that 'coughing', 'cough', 'laughter' and 'laughing' name the same sound."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _stems(name: str) -> set[str]:
    from stages.data.specs import normalize_label

    return {_stem(w) for w in normalize_label(name).split() if len(w) >= 3}


def class_name_overlaps(source: Sequence[str], target: Sequence[str]) -> list[tuple[str, str]]:
    """(source class, target class) pairs whose names share a word after a crude stemming: ESC-50's 'dog' and
    UrbanSound8K's 'dog bark', 'coughing' and VocalSound's 'Cough'. Reported, never excluded (CoCoOp's
    protocol keeps such classes)."""
    target_stems = [(t, _stems(t)) for t in target]
    return [(s, t) for s in source for t, stems in target_stems if _stems(s) & stems]


def _content_hashes(clips) -> dict[str, Path]:
    """sha256 of each clip's bytes -> its path: a copy of a clip under another name is the same clip.
    Through the (path, size, mtime) memo the weight fingerprints use: a rerun does not read the audio again."""
    from stages.backbones.fingerprint import file_sha256_memoised

    paths = [c.path for c in clips]
    hashes = file_sha256_memoised(paths)
    return {hashes[p]: p for p in paths}


def _refuse_shared_clips(source: str, train_hashes: dict[str, Path], target: TargetClips) -> None:
    test_hashes = _content_hashes(target.test)
    shared = [(path, train_hashes[h]) for h, path in test_hashes.items() if h in train_hashes]
    if shared:
        (test_path, train_path), n = shared[0], len(shared)
        raise UserError(f"cross-dataset target {target.name}: {n} of its {len(target.test)} test clips have the same "
                        f"content as training clips of the source {source} (e.g. {test_path} = {train_path}); "
                        f"a target must not test on what the source trains on (use another fold or another target)")

