"""Template encoding: text-major layout, unit per template, equal to the backbone's own forward."""
import numpy as np
import pytest

from stages.backbones.config import BackboneConfig
from stages.neighbors.encoding import TextEncoder, fill_templates, unit_per_template

TEMPLATES = ["a sound of a {}.", "{} can be heard."]


def test_fill_templates_is_text_major():
    assert fill_templates(["dog", "rain"], TEMPLATES) == [
        "a sound of a dog.", "dog can be heard.", "a sound of a rain.", "rain can be heard."]


def test_unit_per_template_and_zero_vectors():
    raw = np.arange(1, 13, dtype=np.float32).reshape(4, 3)
    out = unit_per_template(raw, 2, 2)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=2), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="zero vector"):
        unit_per_template(np.zeros((2, 3)), 1, 2)


def test_encoder_matches_backbone_forward(neighbors_tiny_clap):
    import torch

    from stages.backbones.factory import load_backbone

    enc = TextEncoder(str(neighbors_tiny_clap), BackboneConfig(device="cpu"), "", batch_size=3)
    texts = ["dog", "barking puppy", "rain"]
    got = enc.encode(texts, TEMPLATES)
    assert got.shape[:2] == (3, 2) and enc.texts_encoded == 3
    bb = load_backbone(str(neighbors_tiny_clap), BackboneConfig(device="cpu"))
    with torch.no_grad():
        for i, x in enumerate(texts):
            for t, tpl in enumerate(TEMPLATES):
                ref = bb.encode_text([tpl.format(x)])[0].double().numpy()
                np.testing.assert_allclose(got[i, t], ref / np.linalg.norm(ref), rtol=0, atol=2e-6)
    enc.release()
    assert enc._backbone is None
