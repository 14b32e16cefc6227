"""The protocol table: every evaluation protocol by name, and what it is. Torch-free, in the spirit of
stages/tuning/methods.py.

The single source of the protocol names (BASE2NEW, CROSS, FEWSHOT below), the CLI's and the sweep's choices,
the plan builder each protocol uses, the result type its run record holds, its headline numbers (what `tune`
prints, what `--fold all` averages, what `report --paired` compares), and whether it scores classes the
learner never trained on (a method without a prompt for unseen classes cannot run it). Builders and result
types are named as "module:attribute" and imported when used, so this table imports nothing.
Adding a protocol = its plan builder, its result type in record.py, and one line in PROTOCOLS.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from cache.errors import UserError

BASE2NEW, CROSS, FEWSHOT = "base2new", "cross", "fewshot"


@dataclass(frozen=True)
class Protocol:
    name: str                       # the value of --protocol
    about: str                      # one line: what it trains on and what it scores
    plan: str                       # "module:function" building its Plan (pipeline/protocols/plans.py)
    result: str                     # "module:Class" of its result in the run record (pipeline/protocols/record.py)
    headline: tuple[str, ...]       # the result's headline numbers, in print order
    unseen: bool                    # scores classes the learner never trained on
    validation_plan: str = ""       # "module:function" of its validation view (data.eval_split "val"), if any

    def plan_builder(self):
        return _resolve(self.plan)

    def result_type(self) -> type:
        return _resolve(self.result)

    def validation_builder(self):
        return _resolve(self.validation_plan) if self.validation_plan else None


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol(BASE2NEW, "train on the first half of the sorted classes (base); score base and new classes and "
                       "their harmonic mean", "pipeline.protocols.plans:base2new_plan",
             "pipeline.protocols.record:Base2NewResult", ("base_acc", "new_acc", "hm"), unseen=True,
             validation_plan="pipeline.protocols.plans:validation_plan"),
    Protocol(CROSS, "train on every class of the source; score each target dataset of its suite with the "
                    "target's own class names", "pipeline.protocols.plans:cross_plan",
             "pipeline.protocols.record:CrossResult", ("mean_acc",), unseen=True),
    Protocol(FEWSHOT, "train and score on every class (PALM's protocol)", "pipeline.protocols.plans:fewshot_plan",
             "pipeline.protocols.record:FewshotResult", ("acc", "macro_f1"), unseen=False),
)}


def protocol_names() -> tuple[str, ...]:
    return tuple(PROTOCOLS)


def protocol_info(name: str, where: str = "--protocol") -> Protocol:
    p = PROTOCOLS.get(name)
    if p is None:
        raise UserError(f"{where} {name!r}: unknown (known: {', '.join(PROTOCOLS)})")
    return p


def with_validation() -> list[str]:
    """Protocols that have a validation view (data.eval_split "val")."""
    return [p.name for p in PROTOCOLS.values() if p.validation_plan]


def seen_only() -> list[str]:
    """Protocols that score only the classes trained on (what a method without unseen-class prompts can run)."""
    return [p.name for p in PROTOCOLS.values() if not p.unseen]


def check_method_fits(method_cfg, protocol: str, sept_on: bool) -> None:
    """Refuse, in one line and before anything loads, a protocol or SEPT the configured method cannot do."""
    from stages.tuning.methods import check_run

    p = protocol_info(protocol)
    check_run(method_cfg, p.name, sept_on, unseen=p.unseen, instead=seen_only())


def _resolve(dotted: str):
    module, _, attr = dotted.partition(":")
    return getattr(importlib.import_module(module), attr)
