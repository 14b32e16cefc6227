"""L_se and its margins against an independent float64 reference (explicit loops over terms) and a hand-worked case."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stages.tuning.sept_loss import frozen_margins, semantic_expansion_loss


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def reference_loss(z, p, valid, margins, alpha, beta, hardest=0):
    """Term-by-term float64 loops straight from the formulas of docs/method.md; differentiable through torch ops."""
    c, k, _ = p.shape
    intra, inter = [], []
    for i in range(c):
        candidates = []
        for j in range(c):
            for n in range(k):
                if not valid[j, n]:
                    continue
                d = torch.sqrt(((z[i] - p[j, n]) ** 2).sum())
                if i == j:
                    intra.append(torch.clamp(d - margins[i, j, n], min=0.0))
                else:
                    candidates.append((float(margins[i, j, n]), d, margins[i, j, n]))
        if hardest:
            candidates = sorted(candidates, key=lambda t: t[0])[:hardest]
        inter += [torch.clamp(m - d, min=0.0) for _, d, m in candidates]
    l_intra = torch.stack(intra).mean()
    l_inter = torch.stack(inter).mean()
    return alpha * l_intra + beta * l_inter, l_intra, l_inter


def test_frozen_margins_are_template_averaged_distances():
    g = torch.Generator().manual_seed(0)
    c, n, t, d = 3, 4, 5, 6
    e_c = unit(torch.randn(c, t, d, generator=g, dtype=torch.float64))
    e_w = unit(torch.randn(c, n, t, d, generator=g, dtype=torch.float64))
    m = frozen_margins(e_c.float(), e_w.float())
    assert m.shape == (c, c, n) and m.dtype == torch.float32
    ref = np.zeros((c, c, n))
    for i in range(c):
        for j in range(c):
            for k in range(n):
                ref[i, j, k] = np.mean([np.linalg.norm(e_c[i, s].numpy() - e_w[j, k, s].numpy()) for s in range(t)])
    np.testing.assert_allclose(m.numpy(), ref, atol=1e-6)


def test_frozen_margins_mark_padding_nan():
    e_c = unit(torch.randn(2, 2, 3))
    e_w = unit(torch.randn(2, 3, 2, 3))
    valid = torch.tensor([[True, True, False], [True, True, True]])
    m = frozen_margins(e_c, e_w, valid)
    assert torch.isnan(m[:, 0, 2]).all() and not torch.isnan(m[:, 1]).any()


@pytest.mark.parametrize("hardest,low", [(0, 0.2), (2, 1.0)])
def test_loss_values_and_gradients_match_float64_reference(hardest, low):
    g = torch.Generator().manual_seed(3)
    c, k, d = 4, 3, 5
    z0 = unit(torch.randn(c, d, generator=g, dtype=torch.float64))
    p0 = unit(torch.randn(c, k, d, generator=g, dtype=torch.float64))
    # Margins spread around the actual distances so that some hinges are active and some are not.
    margins = torch.rand(c, c, k, generator=g, dtype=torch.float64) * 1.6 + low
    valid = torch.ones(c, k, dtype=torch.bool)
    valid[1, 2] = False  # a class with fewer neighbors than K
    margins[:, 1, 2] = float("nan")
    alpha, beta = 0.7, 1.3

    z = z0.clone().requires_grad_(True)
    p = p0.clone().requires_grad_(True)
    got = semantic_expansion_loss(z, p, valid, margins, alpha, beta, hardest=hardest)
    got.total.backward()

    zr = z0.clone().requires_grad_(True)
    pr = p0.clone().requires_grad_(True)
    ref_total, ref_intra, ref_inter = reference_loss(zr, pr, valid, margins, alpha, beta, hardest)
    ref_total.backward()

    assert got.intra.item() == pytest.approx(ref_intra.item(), abs=1e-12)
    assert got.inter.item() == pytest.approx(ref_inter.item(), abs=1e-12)
    assert got.total.item() == pytest.approx(ref_total.item(), abs=1e-12)
    assert 0 < ref_intra.item() and 0 < ref_inter.item()  # the case exercises both hinges
    if hardest:  # and the selection matters: the h-closest subset gives another value than all negatives
        assert got.inter.item() != pytest.approx(semantic_expansion_loss(z0, p0, valid, margins).inter.item())
    torch.testing.assert_close(z.grad, zr.grad, atol=1e-10, rtol=0)
    torch.testing.assert_close(p.grad, pr.grad, atol=1e-10, rtol=0)
    assert torch.all(p.grad[1, 2] == 0)  # padding gets no gradient


def test_hand_worked_case():
    # z_1 = (1, 0), z_2 = (0, 1); class 1's neighbor p_1 = (0.6, 0.8); class 2's neighbor p_2 = (0, 1).
    # d(z_1, p_1) = sqrt(0.16 + 0.64) = sqrt(0.8); d(z_2, p_2) = 0; d(z_1, p_2) = sqrt(2); d(z_2, p_1) = sqrt(0.36 + 0.04).
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    p = torch.tensor([[[0.6, 0.8]], [[0.0, 1.0]]], dtype=torch.float64)
    m = torch.tensor([[[0.5], [1.0]],    # m[0,0]=0.5 (intra), m[0,1]=1.0 (inter)
                      [[0.9], [0.1]]],   # m[1,0]=0.9 (inter), m[1,1]=0.1 (intra)
                     dtype=torch.float64)
    out = semantic_expansion_loss(z, p, torch.ones(2, 1, dtype=torch.bool), m, alpha=1.0, beta=2.0)
    intra = (max(0, math.sqrt(0.8) - 0.5) + max(0, 0.0 - 0.1)) / 2           # (0.394427 + 0) / 2
    inter = (max(0, 1.0 - math.sqrt(2)) + max(0, 0.9 - math.sqrt(0.4))) / 2  # (0 + 0.267544) / 2
    assert out.intra.item() == pytest.approx(intra, abs=1e-9)
    assert out.inter.item() == pytest.approx(inter, abs=1e-9)
    assert out.total.item() == pytest.approx(intra + 2.0 * inter, abs=1e-9)
