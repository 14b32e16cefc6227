"""Published averages for `report --compare`: SEPT's base-to-new figures and PALM's few-shot figures.

Source: SEPT (Jang, Lee, Ko, Kim, ACL 2026 Findings, arXiv 2601.20867), averages over PALM's 11 audio
datasets, taken from a summary of the paper and not checked against its tables. Reports always label
them as published numbers, never mix them into our rows.
"""
from __future__ import annotations

SOURCE = ("SEPT paper (arXiv 2601.20867), average over 11 audio datasets, "
          "as quoted in docs/method.md from a summary, not checked against the paper's tables")
NUM_DATASETS = 11

# (method, sept) -> (base, new, HM)
BASE2NEW_AVERAGE: dict[tuple[str, bool], tuple[float, float, float]] = {
    ("coop", False): (65.00, 34.09, 42.83),
    ("coop", True): (64.36, 42.98, 49.70),
    ("cocoop", False): (69.13, 36.83, 46.26),
    ("cocoop", True): (68.63, 42.59, 50.65),
    ("kgcoop", False): (37.99, 37.42, 36.39),
    ("kgcoop", True): (58.92, 45.28, 49.79),
}


# PALM's few-shot protocol (all classes, 16 shots), accuracy in %, average over its 11 audio datasets.
FEWSHOT_SOURCE = ("PALM paper (Hanif et al., EMNLP 2024), few-shot accuracy averaged over its 11 audio datasets "
                  "with the Pengi backbone; unchecked: quoted from our issue tracker, not checked against the "
                  "paper's tables")
FEWSHOT_BACKBONE = "Pengi"
# method (without SEPT) -> accuracy
FEWSHOT_AVERAGE: dict[str, float] = {"zeroshot": 39.7, "coop": 71.1, "cocoop": 73.5, "palm": 76.6}
