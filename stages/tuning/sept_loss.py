"""The semantic expansion loss L_se of SEPT (docs/method.md) and its frozen margins.

Distances are Euclidean between unit vectors. Margins are the template-averaged frozen distances
m[i, j, n] = mean_t d(e_t(c_i), e_t(w_j^n)), computed once at set-up from cached embeddings. The loss keeps
each prompted class embedding z_i within m[i, i, n] of its own prompted neighbors and at least m[i, j, n]
away from other classes' prompted neighbors (hinges, means over the terms present in the step).

Pure torch, no store or engine imports: the training core must import on a machine with only torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def _pairwise_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """d(a_i, b_k) for a [I, D] and b [K, D] -> [I, K], via |a|^2 + |b|^2 - 2ab (no [I, K, D] temporary).

    The clamp keeps sqrt's gradient finite when two vectors coincide (distance 0 -> subgradient 0-ish).
    """
    sq = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(0) - 2.0 * (a @ b.t())
    return sq.clamp_min(1e-12).sqrt()


@torch.no_grad()
def frozen_margins(class_emb: torch.Tensor, neighbor_emb: torch.Tensor, neighbor_valid: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """m [C, C, N] from frozen per-template embeddings (computed in float64, returned float32).

    class_emb: [C, T, D], e_t(c_i), unit per template. neighbor_emb: [C, N, T, D], e_t(w_j^n) (padded rows allowed).
    neighbor_valid: [C, N] bool, False on padding; padded margins are set to NaN so a misuse shows.
    """
    if class_emb.ndim != 3 or neighbor_emb.ndim != 4:
        raise ValueError(f"class_emb [C, T, D] and neighbor_emb [C, N, T, D] expected, got "
                         f"{tuple(class_emb.shape)} and {tuple(neighbor_emb.shape)}")
    c, t, d = class_emb.shape
    if neighbor_emb.shape[0] != c or neighbor_emb.shape[2:] != (t, d):
        raise ValueError(f"neighbor_emb {tuple(neighbor_emb.shape)} does not match class_emb {tuple(class_emb.shape)}")
    e_c = class_emb.double()
    e_w = neighbor_emb.double()
    # Per template t: |e_c|^2 + |e_w|^2 - 2 e_c.e_w, shapes [C_i, C_j, N, T]; memory C*C*N*T, never *D.
    dot = torch.einsum("itd,jntd->ijnt", e_c, e_w)
    sq = (e_c * e_c).sum(-1)[:, None, None, :] + (e_w * e_w).sum(-1)[None, :, :, :] - 2.0 * dot
    m = sq.clamp_min(0.0).sqrt().mean(dim=-1)
    if neighbor_valid is not None:
        m = m.masked_fill(~neighbor_valid.bool()[None, :, :], float("nan"))
    return m.float()


@dataclass
class SeptLossParts:
    total: torch.Tensor
    intra: torch.Tensor
    inter: torch.Tensor


def semantic_expansion_loss(
    z: torch.Tensor,
    p: torch.Tensor,
    valid: torch.Tensor,
    margins: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    hardest: int = 0,
) -> SeptLossParts:
    """L_se = alpha * L_intra + beta * L_inter for one step.

    z: [C, D] unit prompted class embeddings. p: [C, K, D] unit prompted neighbors drawn this step
    (row j holds class j's). valid: [C, K] bool (a class with fewer than K neighbors has padding).
    margins: [C, C, K] frozen margins of exactly the drawn neighbors, margins[i, j, k] = m[i, j, n_jk].
    hardest: 0 = every drawn neighbor of every other class enters L_inter; h > 0 = for each class i only the
    h drawn other-class neighbors closest to c_i by frozen distance (smallest margin).
    """
    c, k, dim = p.shape
    valid = valid.bool()
    dist = _pairwise_distance(z, p.reshape(c * k, dim)).view(c, c, k)  # dist[i, j, k] = d(z_i, p_jk)

    own = torch.eye(c, dtype=torch.bool, device=z.device)[:, :, None]
    intra_mask = own & valid[None, :, :]
    inter_mask = ~own & valid[None, :, :]
    if hardest > 0:
        inter_mask = inter_mask & _closest_by_margin(margins, inter_mask, hardest)

    # where() keeps padded/NaN margins out of both the value and the gradient.
    zero = dist.new_zeros(())
    intra_terms = torch.where(intra_mask, torch.relu(dist - margins.nan_to_num(0.0)), zero)
    inter_terms = torch.where(inter_mask, torch.relu(margins.nan_to_num(0.0) - dist), zero)
    intra = intra_terms.sum() / intra_mask.sum().clamp_min(1)
    inter = inter_terms.sum() / inter_mask.sum().clamp_min(1)
    return SeptLossParts(total=alpha * intra + beta * inter, intra=intra, inter=inter)


def _closest_by_margin(margins: torch.Tensor, candidates: torch.Tensor, h: int) -> torch.Tensor:
    """[C, C, K] mask of, per class i, the h candidates (j, k) with the smallest frozen margin m[i, j, k]."""
    c = margins.shape[0]
    flat = margins.reshape(c, -1).nan_to_num(float("inf")).masked_fill(~candidates.reshape(c, -1), float("inf"))
    h = min(h, flat.shape[1])
    idx = flat.topk(h, dim=1, largest=False).indices
    chosen = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, idx, True)
    return chosen.view_as(candidates) & candidates
