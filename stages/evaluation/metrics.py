"""Accuracy, macro-F1 and per-class accuracy from label arrays; the base/new harmonic mean.

Written with numpy only (no sklearn) so the numbers are easy to check by hand.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classnames: Sequence[str]) -> dict:
    """acc, macro_f1 (over classes present in y_true or y_pred), per_class_acc (classes with test clips), num_clips.

    Accuracies are percentages (0-100), as the prompt-tuning literature reports them.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-D shapes")
    c = len(classnames)
    if y_true.size == 0:
        raise ValueError("no clips to score")
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1).astype(np.float64)  # true count per class
    predicted = confusion.sum(axis=0).astype(np.float64)
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (support + predicted); classes absent from both are left out.
    present = (support + predicted) > 0
    f1 = np.zeros(c)
    f1[present] = 2 * tp[present] / (support[present] + predicted[present])
    per_class = {classnames[i]: float(100.0 * tp[i] / support[i]) for i in range(c) if support[i] > 0}
    return {
        "acc": float(100.0 * tp.sum() / y_true.size),
        "macro_f1": float(100.0 * f1[present].mean()),
        "per_class_acc": per_class,
        "num_clips": int(y_true.size),
    }


def harmonic_mean(base: float, new: float) -> float:
    """HM = 2BN / (B + N), 0 when both are 0."""
    return 0.0 if base + new == 0 else 2.0 * base * new / (base + new)
