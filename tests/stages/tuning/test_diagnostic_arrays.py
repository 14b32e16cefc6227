"""The diagnostic's leak count (science review F9): stored neighbors of trained classes that equal, or nearly
equal, a class name the run evaluates without training on it. Hand-made unit vectors with known cosines."""
from __future__ import annotations

import numpy as np

from stages.tuning.diagnostic_arrays import near_evaluated_names


def test_near_evaluated_names_by_text_and_by_cosine():
    c = np.cos(np.pi / 8)  # 0.9239: below a 0.97 threshold
    arrays = {
        "classes": np.array(["car horn", "dog bark", "siren"]),
        "owner": np.array([0, 0, 1, 2]),
        "neighbors": np.array(["Siren", "honk", "woof", "wail"]),
        # unit rows: "Siren" (same text as the evaluated name), "honk" at cosine 0.98 from "siren"'s vector,
        # "woof" at cos(pi/8) from it, "wail" belongs to an untrained class
        "template_neighbors": np.array([[0.0, 1.0], [np.sqrt(1 - 0.98 ** 2), 0.98], [np.sin(np.pi / 8), c],
                                        [0.0, 1.0]]),
    }
    names = ["siren", "rain"]
    vectors = np.array([[0.0, 1.0], [1.0, 0.0]])
    out = near_evaluated_names(arrays, ["car horn", "dog bark"], names, vectors, threshold=0.97)
    assert out["neighbors_of_trained_classes"] == 3 and out["evaluated_names"] == 2 and out["threshold"] == 0.97
    assert out["pairs"] == [["car horn", "Siren", "siren", 1.0], ["car horn", "honk", "siren", 0.98]]
    # a lower threshold takes "woof" in; the untrained class's "wail" never counts
    loose = near_evaluated_names(arrays, ["car horn", "dog bark"], names, vectors, threshold=0.9)
    assert [p[1] for p in loose["pairs"]] == ["Siren", "honk", "woof"]
    assert near_evaluated_names(arrays, ["car horn"], [], None, 0.97)["pairs"] == []
