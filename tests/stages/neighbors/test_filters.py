"""Embedding filters on hand-built vectors whose geometry is known."""
import numpy as np

from stages.neighbors.filters import select_neighbors, template_mean


def unit(*rows):
    a = np.array(rows, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


CLASSES = unit([1, 0, 0], [0, 1, 0])  # class 0 along x, class 1 along y


def test_boundary_drops_candidates_closer_to_another_class():
    cands = unit([1, 0.2, 0], [0.2, 1, 0], [1, 0.9, 0.3])
    sel = select_neighbors(cands, 0, CLASSES, limit=10, near_duplicate_cos=0.999, boundary=True)
    assert sel.kept == [0, 2]
    assert sel.dropped == [(1, "closer to another class")]
    off = select_neighbors(cands, 0, CLASSES, limit=10, near_duplicate_cos=0.999, boundary=False)
    assert off.kept == [0, 1, 2]


def test_near_duplicates_against_kept_ones_only():
    # b is a near-copy of a; c is far from both. cos(a, b) = 0.995.
    a = [1.0, 0.0, 0.0]
    b = [0.995, float(np.sqrt(1 - 0.995**2)), 0.0]
    c = [0.6, 0.0, 0.8]
    sel = select_neighbors(unit(a, b, c), 0, CLASSES, limit=10, near_duplicate_cos=0.99, boundary=False)
    assert sel.kept == [0, 2] and sel.dropped == [(1, "near duplicate")]
    loose = select_neighbors(unit(a, b, c), 0, CLASSES, limit=10, near_duplicate_cos=0.996, boundary=False)
    assert loose.kept == [0, 1, 2]


def test_limit_keeps_the_first_written():
    cands = unit([1, 0, 0.1], [1, 0, 0.5], [1, 0, 1.0], [1, 0, 2.0])
    sel = select_neighbors(cands, 0, CLASSES, limit=2, near_duplicate_cos=0.9999, boundary=True)
    assert sel.kept == [0, 1]


def test_single_class_run_has_no_boundary():
    sel = select_neighbors(unit([0, 1, 0]), 0, unit([1, 0, 0]), limit=5, near_duplicate_cos=1.0, boundary=True)
    assert sel.kept == [0]


def test_template_mean_matches_float64_reference():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 4, 7)).astype(np.float32)
    v /= np.linalg.norm(v, axis=2, keepdims=True)
    ref = np.array([x.astype(np.float64).sum(0) / np.linalg.norm(x.astype(np.float64).sum(0)) for x in v])
    np.testing.assert_allclose(template_mean(v), ref, rtol=0, atol=1e-12)


def test_separates_classes_flags_a_collapsed_encoder():
    from stages.neighbors.filters import separates_classes

    ok, mean = separates_classes(unit([1, 0, 0], [0, 1, 0], [0, 0, 1]), 0.97)
    assert ok and mean == 0.0
    collapsed = unit([1, 0.01, 0], [1, 0, 0.01], [1, 0.01, 0.01])
    ok, mean = separates_classes(collapsed, 0.97)
    assert not ok and mean > 0.999
    assert separates_classes(unit([1, 0, 0]), 0.97)[0]  # one class: nothing to judge, filters stay on
