"""Quality scores: a hand-worked geometry, then the real packaged reference encoder on clear cases."""
import numpy as np
import pytest

from cache.errors import UserError
from stages.neighbors import quality

VECS = {
    # classes
    "dog": [1, 0, 0], "rain": [0, 1, 0],
    # dog's neighbors: one near dog, one nearer to rain (a miss)
    "woof": [1, 0.5, 0], "drizzle-ish": [0.2, 1, 0],
    # rain's neighbors
    "downpour": [0, 1, 0.5],
}


def lookup(texts):
    a = np.array([VECS[t] for t in texts], dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_hand_worked_scores():
    r = quality.score(["dog", "rain"], {"dog": ["woof", "drizzle-ish"], "rain": ["downpour"]}, lookup, num_neighbors=2)
    dog, rain = r["per_class"]
    assert dog["precision"] == 0.5 and rain["precision"] == 1.0
    w, d = lookup(["woof", "drizzle-ish"])
    assert dog["own_similarity"] == pytest.approx((w[0] + d[0]) / 2)
    assert dog["diversity"] == pytest.approx(1 - float(w @ d))
    assert dog["confused_with"] == ["rain"]
    assert rain["diversity"] is None  # one neighbor: no pairs
    o = r["overall"]
    assert o["precision"] == pytest.approx(0.75) and o["precision_micro"] == pytest.approx(2 / 3)
    assert o["classes_short"] == 1 and o["classes_empty"] == 0 and o["neighbors"] == 3


def test_empty_class_counts_as_empty_not_zero():
    r = quality.score(["dog", "rain"], {"dog": ["woof"]}, lookup)
    assert r["per_class"][1]["precision"] is None
    assert r["overall"]["classes_empty"] == 1 and r["overall"]["precision"] == 1.0


def test_reference_path_errors():
    with pytest.raises(UserError, match="unknown packaged encoder"):
        quality.reference_path("packaged:nope")
    with pytest.raises(UserError, match="no such folder"):
        quality.reference_path("./nowhere/model")
    assert quality.reference_path("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_real_reference_encoder_separates_clear_cases():
    encode = quality.load_reference()
    good = quality.score(["dog", "rain", "church bells"],
                         {"dog": ["barking puppy", "canine howl"], "rain": ["downpour", "raindrops falling"],
                          "church bells": ["bell tower chimes", "ringing church bell"]}, encode)
    assert good["overall"]["precision"] == 1.0
    swapped = quality.score(["dog", "rain"], {"dog": ["downpour", "raindrops falling"], "rain": ["barking puppy"]},
                            encode)
    assert swapped["overall"]["precision"] == 0.0
    assert good["overall"]["own_similarity"] > swapped["overall"]["own_similarity"] + 0.2
