"""Stage one's embedding filter on hand-built vectors whose geometry is known: one class at a time."""
import numpy as np

from stages.neighbors.filters import select_neighbors, template_mean


def unit(*rows):
    a = np.array(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_near_duplicates_against_kept_ones_only():
    # b is a near-copy of a; c is far from both. cos(a, b) = 0.995.
    a = [1.0, 0.0, 0.0]
    b = [0.995, float(np.sqrt(1 - 0.995**2)), 0.0]
    c = [0.6, 0.0, 0.8]
    sel = select_neighbors(unit(a, b, c), limit=10, near_duplicate_cos=0.99)
    assert sel.kept == [0, 2] and sel.dropped == [(1, "near duplicate")]
    loose = select_neighbors(unit(a, b, c), limit=10, near_duplicate_cos=0.996)
    assert loose.kept == [0, 1, 2]


def test_limit_keeps_the_first_written():
    cands = unit([1, 0, 0.1], [1, 0, 0.5], [1, 0, 1.0], [1, 0, 2.0])
    sel = select_neighbors(cands, limit=2, near_duplicate_cos=0.9999)
    assert sel.kept == [0, 1]


def test_template_mean_matches_float64_reference():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 4, 7)).astype(np.float32)
    v /= np.linalg.norm(v, axis=2, keepdims=True)
    ref = np.array([x.astype(np.float64).sum(0) / np.linalg.norm(x.astype(np.float64).sum(0)) for x in v])
    np.testing.assert_allclose(template_mean(v), ref, rtol=0, atol=1e-12)


def test_separates_texts_flags_a_collapsed_encoder():
    from stages.neighbors.filters import separates_texts

    ok, mean = separates_texts(unit([1, 0, 0], [0, 1, 0], [0, 0, 1]), 0.97)
    assert ok and mean == 0.0
    collapsed = unit([1, 0.01, 0], [1, 0, 0.01], [1, 0.01, 0.01])
    ok, mean = separates_texts(collapsed, 0.97)
    assert not ok and mean > 0.999
    assert separates_texts(unit([1, 0, 0]), 0.97)[0]  # one text: nothing to judge
