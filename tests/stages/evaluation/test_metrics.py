import math

import pytest

from stages.evaluation.metrics import classification_metrics, harmonic_mean


def test_metrics_hand_worked_case():
    # 3 classes; true a a b b c, predicted a b b b a.
    # acc = 3/5. per-class acc: a 1/2, b 2/2, c 0/1.
    # F1: a: tp1, support2, predicted2 -> 2/4 = .5; b: tp2, s2, p3 -> 4/5 = .8; c: tp0 -> 0. macro = 1.3/3.
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert m["acc"] == pytest.approx(60.0)
    assert m["per_class_acc"] == pytest.approx({"a": 50.0, "b": 100.0, "c": 0.0})
    assert m["macro_f1"] == pytest.approx(100 * 1.3 / 3)
    assert m["num_clips"] == 5


def test_class_absent_from_truth_and_prediction_is_left_out_of_f1():
    m = classification_metrics([0, 0], [0, 0], ["a", "b"])
    assert m["macro_f1"] == pytest.approx(100.0)
    assert "b" not in m["per_class_acc"]


def test_empty_and_mismatched_inputs_raise():
    with pytest.raises(ValueError):
        classification_metrics([], [], ["a"])
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], ["a", "b"])


def test_harmonic_mean():
    assert harmonic_mean(60.0, 40.0) == pytest.approx(48.0)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert math.isclose(harmonic_mean(64.36, 42.98), 2 * 64.36 * 42.98 / (64.36 + 42.98))
