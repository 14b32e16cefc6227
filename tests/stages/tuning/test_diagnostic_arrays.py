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


def test_the_arrays_leave_out_a_phrase_too_long_for_the_prompt_and_use_the_resolved_generation(tiny_backbone,
                                                                                              tmp_path):
    """A stored phrase whose prompt exceeds the text tower cannot go through the learned prompt (training leaves it
    out too): the arrays hold every other phrase, and their frozen and prompted rows match the tower's own
    output. The generation is the one `sept.generation = "auto"` resolves to (stages/tuning/neighbor_source.py)."""
    import torch

    from cache.store import NeighborStore
    from pipeline.config_loader import load_config
    from stages.tuning.config import MethodConfig
    from stages.tuning.diagnostic_arrays import diagnostic_arrays
    from stages.tuning.learners import build_learner
    from stages.tuning.neighbor_source import resolve_generation
    from stages.tuning.prompt_tokens import token_rows
    from tuning_kit import CLASSES, NEIGHBORS, TEMPLATES, fill_store

    classes = CLASSES[:3]
    long = "a " + " ".join(["very"] * 40) + " long dog bark"
    neighbors = {c: list(NEIGHBORS[c]) for c in classes}
    neighbors["dog bark"].append(long)
    gkey = fill_store(tmp_path, tiny_backbone, TEMPLATES, neighbors=neighbors, classes=classes)
    texts = classes + [p for c in classes for p in NEIGHBORS[c]]
    n_ctx = int(tiny_backbone.max_text_len) - max(len(r) for r in token_rows(tiny_backbone, [f"X {t}." for t in texts]))
    learner = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=n_ctx), TEMPLATES, 0)
    learner.set_classnames(classes)
    store = NeighborStore.in_cache(tmp_path)
    cfg = load_config().replace("text", templates=TEMPLATES)
    resolved = resolve_generation(cfg, store, classes, tiny_backbone.fingerprint, "synth", tiny_backbone.id, tmp_path)
    assert resolved.key == gkey and resolved.how == "auto"

    arrays = diagnostic_arrays(learner, store, resolved.key, classes, TEMPLATES, tiny_backbone.fingerprint)
    assert arrays["neighbors"].tolist() == [p for c in classes for p in NEIGHBORS[c]]  # all but the long one
    assert arrays["classes"].tolist() == classes and arrays["omitted"].tolist() == []
    with torch.no_grad():
        ids, mask = learner.tokenize_phrases(arrays["neighbors"].tolist())
        expected = torch.nn.functional.normalize(learner.embed_phrases(ids, mask).double(), dim=-1).numpy()
    np.testing.assert_allclose(arrays["prompt_neighbors"], expected, atol=1e-6)
