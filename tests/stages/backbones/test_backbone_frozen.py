"""Frozen towers: no gradients, and eval mode whatever .train() is called on."""
import numpy as np
import torch
from torch import nn


class _Tuner(nn.Module):
    """A stand-in for a prompt learner: holds the backbone as a child, as CoOp modules do."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.ctx = nn.Parameter(torch.zeros(4, backbone.text_width))


def test_no_parameter_requires_grad(tiny_backbone):
    params = list(tiny_backbone.parameters())
    assert params and not any(p.requires_grad for p in params)


def test_towers_stay_in_eval_after_train_on_a_parent(tiny_backbone):
    tuner = _Tuner(tiny_backbone)
    bn = tiny_backbone.clap.audio_model.audio_encoder.batch_norm
    stats_before = bn.running_mean.clone()
    text_before = tiny_backbone.encode_text(["a sound of a dog."])
    clip = np.random.default_rng(0).standard_normal(tiny_backbone.clip_samples).astype(np.float32)
    audio_before = tiny_backbone.encode_audio([clip])
    try:
        tuner.train()
        assert tuner.training and tiny_backbone.training  # the requested mode is recorded ...
        towers = [m for m in tiny_backbone.modules() if m is not tiny_backbone]
        assert towers and not any(m.training for m in towers)  # ... but every tower stays in eval
        # Dropout off: repeated forwards agree exactly; BatchNorm statistics untouched.
        assert torch.equal(tiny_backbone.encode_text(["a sound of a dog."]), text_before)
        assert torch.equal(tiny_backbone.encode_audio([clip]), audio_before)
        assert torch.equal(bn.running_mean, stats_before)
        tiny_backbone.train(True)
        assert not any(m.training for m in towers)
    finally:
        tuner.eval()
    assert not tiny_backbone.training


def test_the_model_does_have_dropout_that_train_mode_would_enable(tiny_backbone):
    """Guards the test above: the tiny text tower has active dropout, so eval mode matters."""
    dropouts = [m for m in tiny_backbone.clap.text_model.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    assert dropouts


def test_a_loaded_backbone_starts_in_eval_mode(tiny_clap_dir):
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone

    backbone = load_backbone(tiny_clap_dir, BackboneConfig(device="cpu"))
    assert not backbone.training and not any(m.training for m in backbone.modules())
