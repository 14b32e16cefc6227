"""Published numbers for `report --compare`, each with the conditions it was measured under, as data.

A published row is printed only beside our runs whose manifests (pipeline/protocols/record.py) meet every
condition recorded for it; where no run here does, the report says which recipe would. docs/method.md
("Published numbers and their conditions") keeps the same numbers and conditions in one table, and
tests/pipeline/test_report_compare.py checks that the two agree.

Sources:
- SEPT (Jang, Lee, Ko, Kim, ACL 2026 Findings, arXiv 2601.20867): base-to-new averages over PALM's 11 audio
  datasets, taken from a summary of the paper and not checked against its tables. SEPT's code is not
  published; its conditions are those of its first author's public code on the same benchmark
  (jhyukjang/SubT: sorted split, one hand-crafted template per dataset, SGD lr 0.0125 for 50 epochs, the
  lowest-training-loss epoch, towers in train mode with BatchNorm in eval mode, PALM's loader), which the
  recipe `sept-lab` reproduces, on Pengi (PALM's backbone; as far as we know SEPT's).
- PALM (Hanif et al., EMNLP 2024): few-shot accuracy averaged over its 11 audio datasets with Pengi, 16 shots,
  trained as asif-hanif/palm trains (towers in train mode, random 7 s crops at train and test, channels
  concatenated, float32): the recipe `palm-original`. Quoted from our issue tracker, not checked against the
  paper's tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.protocols.table import BASE2NEW, FEWSHOT

NUM_DATASETS = 11


@dataclass(frozen=True)
class Published:
    protocol: str
    method: str
    sept: bool
    numbers: dict[str, float]        # headline key of the protocol table -> published value (%)
    source: str
    conditions: dict[str, Any]       # manifest key -> the value a run must have to sit beside this number
    recipe: str                      # the recipe (configs/recipes/) that runs under these conditions
    datasets: int = NUM_DATASETS
    backbone: str = "pengi:base"

    def unmet(self, manifest: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Condition key -> (required, the run's value) for each condition the manifest does not meet."""
        return {k: (v, manifest.get(k)) for k, v in self.conditions.items() if manifest.get(k) != v}

    def command(self) -> str:
        """The flags that make a run of these conditions."""
        return f"--recipe {self.recipe} --backbone {self.backbone}"


SEPT_SOURCE = ("SEPT paper (arXiv 2601.20867), average over 11 audio datasets, as quoted in docs/method.md from a "
               "summary, not checked against the paper's tables")
SEPT_CONDITIONS = {"recipe.name": "sept-lab", "backbone.id": "pengi:base", "data.shots": 16,
                   "data.split_rule": "sorted", "data.base_fraction": 0.5, "train.select": "lowest_train_loss",
                   "text.dataset_template": True, "train.tower_mode": "train_bn_eval", "data.channels": "concat",
                   "train.eval_crop": "random", "data.eval_split": "test"}
PALM_SOURCE = ("PALM paper (Hanif et al., EMNLP 2024), few-shot accuracy averaged over its 11 audio datasets "
               "with the Pengi backbone; unchecked: quoted from our issue tracker, not checked against the "
               "paper's tables")
PALM_CONDITIONS = {"recipe.name": "palm-original", "backbone.id": "pengi:base", "data.shots": 16,
                   "train.tower_mode": "train", "data.channels": "concat", "train.eval_crop": "random",
                   "precision.autocast": "off", "backbone.dtype": "float32", "data.eval_split": "test"}


def _sept(method: str, sept: bool, base: float, new: float, hm: float) -> Published:
    return Published(BASE2NEW, method, sept, {"base_acc": base, "new_acc": new, "hm": hm}, SEPT_SOURCE,
                     SEPT_CONDITIONS, "sept-lab")


def _palm(method: str, acc: float) -> Published:
    return Published(FEWSHOT, method, False, {"acc": acc}, PALM_SOURCE, PALM_CONDITIONS, "palm-original")


PUBLISHED: tuple[Published, ...] = (
    _sept("coop", False, 65.00, 34.09, 42.83),
    _sept("coop", True, 64.36, 42.98, 49.70),
    _sept("cocoop", False, 69.13, 36.83, 46.26),
    _sept("cocoop", True, 68.63, 42.59, 50.65),
    _sept("kgcoop", False, 37.99, 37.42, 36.39),
    _sept("kgcoop", True, 58.92, 45.28, 49.79),
    _palm("zeroshot", 39.7),
    _palm("coop", 71.1),
    _palm("cocoop", 73.5),
    _palm("palm", 76.6),
)


def published_for(protocol: str) -> list[Published]:
    return [p for p in PUBLISHED if p.protocol == protocol]
