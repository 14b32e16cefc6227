"""MS-CLAP 2022 / 2023 adapters on tiny random checkpoints in the real key layouts.

The msclap package cannot be the reference here (it needs torchaudio, transformers < 5, numpy < 2), so
each check compares with an independent computation: the text towers' own forward on token ids plus
msclap's pooling rule and a float64 projection, and a float64 functional CNN14 written out below.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stages.backbones.msclap import adapter as msclap
from stages.backbones.checkpoint.read import read_checkpoint
from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone
from stages.backbones.checkpoint.random_model import make_random_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
TEXTS = ["a sound of a dog.", "rain", "an audio recording of a hi-hat, live"]


_MODELS: dict = {}


def _tiny(version: str, tmp_path_factory):
    """A tiny random checkpoint of one year, built once per module."""
    if version not in _MODELS:
        folder = make_random_checkpoint(f"msclap-{version}", "tiny", 0,
                                        tmp_path_factory.mktemp("m") / f"tiny-{version}")
        state = read_checkpoint(next(folder.glob("*.pth")))
        _MODELS[version] = (version, folder, state, load_backbone(folder, BackboneConfig(device="cpu")))
    return _MODELS[version]


@pytest.fixture(scope="module", params=["2022", "2023"])
def model(request, tmp_path_factory):
    return _tiny(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def model_2022(tmp_path_factory):
    return _tiny("2022", tmp_path_factory)


@pytest.mark.parametrize("version", ["2022", "2023"])
def test_full_layout_is_the_committed_fixture_and_tiny_has_the_same_keys(version):
    committed = {k: tuple(v) for k, v in json.loads((FIXTURES / f"msclap_{version}_layout.json").read_text())["keys"].items()}
    assert msclap.source_layout(version, "full") == committed
    assert msclap.source_layout(version, "tiny").keys() == committed.keys()


def _projection64(x, prefix, state):
    w1, w2 = state[f"{prefix}.linear1.weight"].double(), state[f"{prefix}.linear2.weight"].double()
    e1 = x @ w1.T
    s = e1 + F.gelu(e1) @ w2.T
    s = (s - s.mean(-1, keepdim=True)) / torch.sqrt(s.var(-1, unbiased=False, keepdim=True) + 1e-5)
    return s * state[f"{prefix}.layer_norm.weight"].double() + state[f"{prefix}.layer_norm.bias"].double()


def test_kind_fingerprint_scale_and_format(model):
    from stages.backbones.registry import kind_for_spec

    version, folder, state, backbone = model
    assert kind_for_spec(str(folder)) == f"msclap-{version}"
    assert backbone.fingerprint.startswith(f"msclap-{version}:tiny-{version}@")
    assert backbone.logit_scale() == pytest.approx(float(state["logit_scale"].exp()))
    assert backbone.clip_seconds == (5.0 if version == "2022" else 7.0)
    assert backbone.text_pooling == ("first" if version == "2022" else "last")


def test_text_equals_the_towers_own_forward_with_msclaps_pooling(model):
    version, _, state, backbone = model
    tok = backbone.tokenize(TEXTS)
    ids = tok["input_ids"]
    with torch.no_grad():
        hidden = backbone.text_model(input_ids=ids, attention_mask=tok["attention_mask"]).last_hidden_state.double()
    if version == "2023":
        assert (ids[:, 0] != 0).all() and int(ids[0, (ids[0] != 0).sum() - 1]) == backbone.tokenizer.eos_token_id
        pooled = hidden[torch.arange(len(TEXTS)), (ids != 0).sum(-1) - 1]  # msclap: count of non-'!' ids - 1
    else:
        pooled = hidden[:, 0]  # [CLS]
    ref = _projection64(pooled, "caption_encoder.projection", state)
    torch.testing.assert_close(backbone.encode_text(TEXTS).double(), ref, atol=1e-5, rtol=0)


def test_coop_from_template_reproduces_the_frozen_sentence(model):
    from stages.tuning.config import MethodConfig
    from stages.tuning.learners import build_learner

    _, _, _, backbone = model
    names = ["dog", "rain", "vacuum cleaner"]
    learner = build_learner(backbone, MethodConfig(name="coop", ctx_init="a sound of a"), ["a sound of a {}."], seed=0)
    learner.set_classnames(names)
    with torch.no_grad():
        z = learner.class_embeddings()
    ref = F.normalize(backbone.encode_text([f"a sound of a {c}." for c in names]), dim=-1)
    torch.testing.assert_close(z, ref, atol=1e-5, rtol=0)


def _cnn14_float64(mel, state, p="audio_encoder.base"):
    """msclap's Cnn14 in eval, written out with functional ops in float64."""
    def bn(x, name):
        return F.batch_norm(x, state[f"{name}.running_mean"].double(), state[f"{name}.running_var"].double(),
                            state[f"{name}.weight"].double(), state[f"{name}.bias"].double(), False, 0.0, 1e-5)

    x = bn(mel.transpose(1, 3), f"{p}.bn0").transpose(1, 3)
    for i in range(1, 7):
        b = f"{p}.conv_block{i}"
        x = F.relu(bn(F.conv2d(x, state[f"{b}.conv1.weight"].double(), padding=1), f"{b}.bn1"))
        x = F.relu(bn(F.conv2d(x, state[f"{b}.conv2.weight"].double(), padding=1), f"{b}.bn2"))
        x = F.avg_pool2d(x, 2) if i < 6 else x
    x = x.mean(dim=3)
    x = x.max(dim=2).values + x.mean(dim=2)
    return F.relu(x @ state[f"{p}.fc1.weight"].double().T + state[f"{p}.fc1.bias"].double())


def test_cnn14_audio_embedding_equals_float64_reference(model_2022):
    """CNN14 is MS-CLAP 2022's audio network (2023's HTS-AT is checked through Pengi's tests)."""
    _, _, state, backbone = model_2022
    clip = np.random.default_rng(0).standard_normal(30_000).astype(np.float32) * 0.1
    ours = backbone.encode_audio([clip]).double()
    wave = torch.from_numpy(backbone.fit_clip(clip))[None]
    mel = backbone.logmel(wave).double()
    ref = _projection64(_cnn14_float64(mel, state), "audio_encoder.projection", state)
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=0)


def test_an_explicit_kind_that_disagrees_with_the_checkpoint_exits_2(model, capsys):
    from pipeline.cli import main

    version, folder, _, _ = model
    other = "pengi"
    with pytest.raises(SystemExit) as info:
        main(["backbones", "info", str(folder), "--set", f"backbone.kind={other}", "--set", "backbone.device=cpu"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1
    assert f"is a 'msclap-{version}' backbone" in err and str(folder) in err
