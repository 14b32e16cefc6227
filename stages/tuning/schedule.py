"""Per-epoch learning rate: constant warm-up, then cosine decay (CoOp's Dassl recipe), or constant.

A pure function of the epoch, so resuming needs no scheduler object: the checkpoint records the epoch.
"""
from __future__ import annotations

import math


def lr_at(epoch: int, base_lr: float, epochs: int, schedule: str = "cosine", warmup_epochs: int = 0,
          warmup_lr: float = 1e-5) -> float:
    """The learning rate of 0-based `epoch` out of `epochs`."""
    if epoch < warmup_epochs:
        return warmup_lr
    if schedule == "constant":
        return base_lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    span = max(epochs - warmup_epochs, 1)
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / span))
