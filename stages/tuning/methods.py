"""The method table: every prompt-tuning method by name, and what it can do. Torch-free.

The single source of the CLI's method choices, config validation, report labels and order, and of
which protocols a method can run. A learner class is named here as "module:Class" and imported only
when one is built (stages/tuning/learners/__init__.py), so the CLI, sweeps and reports read this table
without torch. Adding a method = its learner module, its test, and one line in METHODS below.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import Sequence

from cache.errors import UserError


@dataclass(frozen=True)
class Method:
    name: str                 # the value of method.name / --method
    label: str                # how reports print it
    learner: str              # "module:Class" of its PromptLearner
    source: str               # where the method comes from (paper and code), for docs and reports
    trains: bool = True       # False: nothing to train (zero-shot); SEPT does not apply
    sept: bool = True         # SEPT can embed neighbors through its learned prompt
    sept_note: str = ""       # why not, when `sept` is False
    unseen: bool = True       # can score class names it never trained on
    unseen_note: str = ""     # why not, when `unseen` is False
    unseen_key: str = ""      # a [method] key that, set to "zeroshot", scores unseen classes zero-shot instead


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("zeroshot", "Zero-shot", "stages.tuning.learners.zeroshot:ZeroShotLearner",
           "template-averaged frozen text embeddings", trains=False, sept=False,
           sept_note="zero-shot trains nothing"),
    Method("coop", "CoOp", "stages.tuning.learners.coop:CoOpLearner",
           "Zhou et al., IJCV 2022 (KaiyangZhou/CoOp)"),
    Method("cocoop", "CoCoOp", "stages.tuning.learners.cocoop:CoCoOpLearner",
           "Zhou et al., CVPR 2022 (KaiyangZhou/CoOp)"),
    Method("kgcoop", "KgCoOp", "stages.tuning.learners.kgcoop:KgCoOpLearner",
           "Yao et al., CVPR 2023 (htyao89/KgCoOp)"),
    Method("dept", "DePT", "stages.tuning.learners.dept:DePTLearner", "Zhang et al., CVPR 2024 (Koorye/DePT)"),
    Method("cocoop-dept", "CoCoOp+DePT", "stages.tuning.learners.dept:CoCoOpDePTLearner",
           "Zhang et al., CVPR 2024 (Koorye/DePT, elp_cocoop.py) on CoCoOp"),
    Method("kgcoop-dept", "KgCoOp+DePT", "stages.tuning.learners.dept:KgCoOpDePTLearner",
           "Zhang et al., CVPR 2024 (Koorye/DePT, elp_kgcoop.py) on KgCoOp"),
    Method("zebra", "ZEBRA", "stages.tuning.learners.zebra:ZebraLearner",
           "Hanif et al., INTERSPEECH 2026 (asif-hanif/zebra, methods/coop.py with --use_zebra) on CoOp"),
    Method("cocoop-zebra", "CoCoOp+ZEBRA", "stages.tuning.learners.zebra:CoCoOpZebraLearner",
           "Hanif et al., INTERSPEECH 2026 (asif-hanif/zebra, methods/cocoop.py with --use_zebra) on CoCoOp"),
    Method("palm", "PALM", "stages.tuning.learners.palm:PALMLearner", "Hanif et al., EMNLP 2024 (asif-hanif/palm)",
           sept=False, sept_note="it has no shared prompt through which neighbor phrases could be embedded",
           unseen=False, unseen_note="has no prompt for classes it never trained on (one vector per training class)",
           unseen_key="palm_unseen"),
)}


def method_names() -> tuple[str, ...]:
    """Every method, in the order reports list them."""
    return tuple(METHODS)


def method_info(name: str) -> Method:
    m = METHODS.get(name)
    if m is None:
        raise UserError(f"config key method.name: {name!r} is not one of {', '.join(METHODS)}")
    return m


def method_label(name: str) -> str:
    """The printed name of a method; an unknown name (a run from another version) prints as itself."""
    m = METHODS.get(name)
    return m.label if m else name


def trains(name: str) -> bool:
    """Whether a method learns anything (unknown names are assumed to: only zero-shot does not)."""
    m = METHODS.get(name)
    return m.trains if m else True


def uses_neighbors(name: str) -> bool:
    """Whether SEPT can run with this method (so a sweep needs its neighbors in the store)."""
    m = METHODS.get(name)
    return bool(m and m.trains and m.sept)


def scores_unseen(method_cfg) -> bool:
    """Whether this configured method can score classes it never trained on (natively or by its fallback)."""
    m = method_info(method_cfg.name)
    return m.unseen or bool(m.unseen_key and getattr(method_cfg, m.unseen_key, "") == "zeroshot")


def check_run(method_cfg, protocol: str, sept_on: bool, *, unseen: bool, instead: Sequence[str] = ()) -> None:
    """Refuse, in one line and before anything loads, a protocol or SEPT the method cannot do. `unseen`: the
    protocol scores classes the learner never trained on (the protocol table says which do; `instead` names
    those that do not)."""
    m = method_info(method_cfg.name)
    if sept_on and m.trains and not m.sept:
        raise UserError(f"--sept: {m.label} cannot use SEPT ({m.sept_note}); run it with --no-sept")
    if unseen and not scores_unseen(method_cfg):
        way = f", or set method.{m.unseen_key}=\"zeroshot\" to score them zero-shot" if m.unseen_key else ""
        alternatives = f"; run it with --protocol {' or '.join(instead)}" if instead else ""
        raise UserError(f"--protocol {protocol}: {m.label} {m.unseen_note}{alternatives}{way}")
