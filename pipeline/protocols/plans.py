"""What each protocol trains on and what it evaluates (DESIGN.md section 3), as plain data.

- base2new: sorted class names, base = first ceil(C * base_fraction); few-shot train on base; evaluate
  base classes on base test clips and new classes on new test clips.
- fewshot:  all classes, few-shot train, test on all classes (PALM's protocol).
- cross:    train on the source dataset's classes (all of them, few-shot); evaluate every target
            dataset's test set with that dataset's own class names (and the source's own test set,
            reported apart as source_acc: it is not part of the cross-dataset mean).
No torch here: a plan is dataset bookkeeping only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from cache.errors import UserError

PROTOCOLS = ("base2new", "cross", "fewshot")


@dataclass
class EvalSet:
    name: str                 # "base", "new", "all", "source", or a target dataset's name
    dataset: str
    classnames: list[str]
    clips: list               # Clips labelled into `classnames`
    role: str = ""            # "target" for cross-dataset targets; "" otherwise


@dataclass
class Plan:
    protocol: str
    dataset: str
    train_classes: list[str]
    train_clips: list         # all training clips of the train classes, labelled into train_classes
    evals: list[EvalSet]
    split: dict = field(default_factory=dict)         # base/new lists for base2new
    targets_missing: list[str] = field(default_factory=list)


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol {protocol!r}: unknown (known: {', '.join(PROTOCOLS)})")


def make_plan(protocol: str, ds, data_root: Path, base_fraction: float,
              targets: Sequence[str] | None = None) -> Plan:
    from stages.data.splits import base_new_split, restrict_clips

    check_protocol(protocol)
    if protocol == "base2new":
        base, new = base_new_split(ds.classnames, base_fraction)
        if not new:
            raise UserError(f"data.base_fraction {base_fraction}: leaves no new classes in {ds.name} "
                            f"({len(ds.classnames)} classes); base2new needs both (use a value below 1)")
        if not base:
            raise UserError(f"data.base_fraction {base_fraction}: leaves no base classes in {ds.name}")
        plan = Plan(protocol, ds.name, base, restrict_clips(ds.train, ds.classnames, base),
                    [EvalSet("base", ds.name, base, restrict_clips(ds.test, ds.classnames, base)),
                     EvalSet("new", ds.name, new, restrict_clips(ds.test, ds.classnames, new))],
                    split={"base": base, "new": new, "base_fraction": base_fraction})
    elif protocol == "fewshot":
        plan = Plan(protocol, ds.name, list(ds.classnames), list(ds.train),
                    [EvalSet("all", ds.name, list(ds.classnames), list(ds.test))])
    else:
        plan = Plan(protocol, ds.name, list(ds.classnames), list(ds.train),
                    [EvalSet("source", ds.name, list(ds.classnames), list(ds.test))])
        target_sets, plan.targets_missing = _cross_targets(ds.name, data_root, targets)
        plan.evals += target_sets
    _check_train_clips(plan)
    for ev in plan.evals:
        if not ev.clips:
            raise UserError(f"dataset {ev.dataset}: no test clips of the {ev.name} classes "
                            f"({', '.join(ev.classnames[:5])}{'...' if len(ev.classnames) > 5 else ''}); "
                            f"the {protocol} protocol needs at least one")
    return plan


def _check_train_clips(plan: Plan) -> None:
    have = {c.label for c in plan.train_clips}
    empty = [name for i, name in enumerate(plan.train_classes) if i not in have]
    if empty:
        shown = ", ".join(repr(c) for c in empty[:5]) + (f" and {len(empty) - 5} more" if len(empty) > 5 else "")
        raise UserError(f"dataset {plan.dataset}: {len(empty)} training classes have no training clip: {shown} "
                        f"(every class trained on needs at least one clip in the train split)")


def _cross_targets(source: str, data_root: Path, targets: Sequence[str] | None
                   ) -> tuple[list[EvalSet], list[str]]:
    """Evaluation sets of the targets. Named targets must load; by default every other known dataset
    found under the data root is a target and the absent ones are listed, not fatal."""
    from stages.data.datasets import list_datasets, load_dataset
    from stages.data.specs import dataset_spec

    explicit = targets is not None and len(targets) > 0
    names = list(targets) if explicit else [n for n in list_datasets() if n != source]
    evals, missing = [], []
    for name in names:
        if dataset_spec(name).name == source:
            raise UserError(f"--targets {name}: is the source dataset; cross-dataset targets must be other datasets")
        try:
            ds = load_dataset(name, data_root)
        except UserError:
            if explicit:
                raise
            missing.append(name)
            continue
        evals.append(EvalSet(ds.name, ds.name, list(ds.classnames), list(ds.test), role="target"))
    if not evals:
        raise UserError(f"--protocol cross: no target dataset found under {data_root} (looked for: "
                        f"{', '.join(names) or 'none'}); give --targets NAME,... of datasets present there")
    return evals, missing
