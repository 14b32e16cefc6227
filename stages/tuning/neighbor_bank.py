"""Neighbors ready for training: prompt token ids tokenized once, frozen margins, and per-step draws.

Built once at set-up (stages/tuning/neighbor_source.py reads the store); kept on the CPU and moved to
the device one step's draw at a time. Its sampling uses its own generator, so drawing neighbors never
perturbs the training generator (shuffles, crops): lambda = 0 leaves a run exactly the baseline.
Pure torch: the training core must import with torch alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class NeighborDraw:
    """One step's neighbors: K per class, flattened for the tower, with the margins of exactly these."""

    ids: torch.Tensor        # [P, L] prompt ids of the valid drawn neighbors (P <= C*K), class-major
    mask: torch.Tensor       # [P, L]
    valid: torch.Tensor      # [C, K] bool; row j, column k is class j's k-th draw
    margins: torch.Tensor    # [C, C, K] m[i, j, n_jk]

    def to(self, device) -> "NeighborDraw":
        nb = torch.device(device).type == "cuda"
        return NeighborDraw(*(t.to(device, non_blocking=nb) for t in (self.ids, self.mask, self.valid, self.margins)))


class NeighborBank:
    """ids/mask [C, N, L] (padded over classes with fewer than N neighbors), counts [C], margins [C, C, N]."""

    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor, margins: torch.Tensor,
                 per_step: int | str, pad_id: int):
        c, n, _ = ids.shape
        if margins.shape != (c, c, n) or counts.shape != (c,):
            raise ValueError(f"neighbor bank shapes disagree: ids {tuple(ids.shape)}, counts {tuple(counts.shape)}, "
                             f"margins {tuple(margins.shape)}")
        if int(counts.max()) < 1:  # a class may have none (cleaning left it empty); all of them may not
            raise ValueError("no class has a neighbor")
        self.ids, self.mask, self.counts, self.margins = ids, mask, counts.long(), margins.float()
        self.per_step = None if per_step == "all" else int(per_step)  # None: every stored neighbor, every step
        self.pad_id = int(pad_id)

    @property
    def num_classes(self) -> int:
        return self.ids.shape[0]

    @property
    def draws_per_class(self) -> int:
        """K: neighbors_per_step, or all N when every class has fewer (or neighbors_per_step is "all")."""
        n_max = int(self.counts.max())
        return n_max if self.per_step is None else min(self.per_step, n_max)

    def sample(self, generator: torch.Generator) -> NeighborDraw:
        """This step's neighbors; with "all", every stored one in stored order (the generator is not used)."""
        c, k = self.num_classes, self.draws_per_class
        picks = torch.zeros(c, k, dtype=torch.long)
        valid = torch.zeros(c, k, dtype=torch.bool)
        for j in range(c):
            n_j = int(self.counts[j])
            chosen = torch.arange(n_j) if self.per_step is None else torch.randperm(n_j, generator=generator)[:k]
            picks[j, : len(chosen)] = chosen
            valid[j, : len(chosen)] = True
        rows = torch.arange(c)[:, None].expand(c, k)
        ids = self.ids[rows[valid], picks[valid]]
        mask = self.mask[rows[valid], picks[valid]]
        length = int(mask.sum(1).max())  # trim the padding no drawn neighbor needs
        margins = torch.gather(self.margins, 2, picks[None].expand(c, c, k))
        return NeighborDraw(ids=ids[:, :length].contiguous(), mask=mask[:, :length].contiguous(), valid=valid,
                            margins=margins)


def scatter_draws(p: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """[P, D] embeddings of the valid draws -> [C, K, D] with zeros where a class had no k-th draw."""
    c, k = valid.shape
    out = p.new_zeros(c * k, p.shape[-1])
    idx = valid.reshape(-1).nonzero(as_tuple=True)[0]
    return out.index_copy(0, idx, p).view(c, k, -1)
