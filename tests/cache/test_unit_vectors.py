"""cache/unit_vectors.py: the one row-normaliser, checked by hand-worked cases and a float64 reference."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cache.unit_vectors import unit_rows

ROOT = Path(__file__).resolve().parents[2]


def test_hand_worked_rows_and_a_zero_row():
    out = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], dtype=np.float32))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])  # zero stays zero, no NaN


def test_any_axis_matches_a_float64_reference():
    x = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    ref = x.astype(np.float64)
    ref = ref / np.sqrt((ref * ref).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(unit_rows(x, axis=1), ref, rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(unit_rows(x), axis=-1), 1.0, rtol=0, atol=1e-15)


def test_no_other_module_normalises_rows_itself():
    """The five copies (store index vectors, near-duplicate filter, encoder output, neighbor quality, report
    diagnostic) became this one: a new numpy norm elsewhere is a sixth copy in the making."""
    own = ROOT / "cache" / "unit_vectors.py"
    copies = [f"{p.relative_to(ROOT)}:{i}"
              for package in ("cache", "stages", "pipeline") for p in sorted((ROOT / package).rglob("*.py"))
              if p != own
              for i, line in enumerate(p.read_text().splitlines(), 1) if re.search(r"np\.linalg\.norm\(", line)]
    assert copies == [], f"use cache.unit_vectors.unit_rows instead of np.linalg.norm in: {copies}"
