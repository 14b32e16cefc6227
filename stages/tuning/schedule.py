"""Per-epoch learning rate: constant, or Dassl's cosine with a constant warm-up (CoOp/CoCoOp/KgCoOp's recipe).

Dassl (KaiyangZhou/Dassl.pytorch, dassl/optim/lr_scheduler.py) wraps `CosineAnnealingLR(T_max=MAX_EPOCH)` in
a constant warm-up and, with its default WARMUP_RECOUNT = True, starts the cosine's count at 0 after the
warm-up. So epoch e >= W runs at 0.5 * lr * (1 + cos(pi * (e - W) / epochs)): the decay spans all `epochs`
(not epochs - W) and the last epoch does not reach 0.

A pure function of the epoch, so resuming needs no scheduler object: the checkpoint records the epoch.
"""
from __future__ import annotations

import math


def lr_at(epoch: int, base_lr: float, epochs: int, schedule: str = "constant", warmup_epochs: int = 0,
          warmup_lr: float = 1e-5) -> float:
    """The learning rate of 0-based `epoch` out of `epochs`."""
    if epoch < warmup_epochs:
        return warmup_lr
    if schedule == "constant":
        return base_lr
    if schedule != "cosine":
        raise ValueError(f"unknown schedule {schedule!r}")
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / epochs))


def group_lr(lr: float, lr_mult: float, epoch: int, warmup_epochs: int) -> float:
    """The lr of an optimizer group that runs at `lr_mult` times the schedule's `lr` (DePT's head and transforms).

    During a constant warm-up every group runs at the warm-up lr itself: Dassl's ConstantWarmupScheduler
    returns WARMUP_CONS_LR for every group, whatever its base lr (Koorye/DePT trains through it)."""
    return lr if epoch < warmup_epochs else lr * lr_mult
