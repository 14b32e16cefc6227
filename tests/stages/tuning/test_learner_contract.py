"""The learner contract, checked on every method of the method table (a matrix, the PEFT way).

A new method's learner passes this file without any edit here: what varies between methods is read
from the contract (`trainable`, `supports_sept`, `starts_at_template`) and from the method table
(`unseen`, `sept`), and the test checks that the two agree with what the learner actually does.
All on the tiny random CLAP; nothing is mocked.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from cache.errors import UserError
from pipeline.config_loader import load_config
from stages.tuning.checkpoint import load_prompt, save_prompt
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig
from stages.tuning.learners import build_learner, learner_class
from stages.tuning.methods import METHODS, method_info
from stages.tuning.neighbor_source import load_neighbor_bank
from stages.tuning.trainer import TrainData, make_optimizer, train, training_step

from tuning_kit import CLASSES, TEMPLATES

ALL = list(METHODS)
BASE, NEW = CLASSES[:3], CLASSES[3:]
TEMPLATE = "a sound of a {}."
ONE_EPOCH = TrainConfig(epochs=1, batch_size=4, lr=0.05, warmup_epochs=0)


def fresh(backbone, method, seed=1, **kw):
    learner = build_learner(backbone, MethodConfig(name=method, n_ctx=4, **kw), TEMPLATES, seed)
    learner.set_train_classes(BASE)
    return learner


def data(backbone):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(len(BASE)).repeat_interleave(4)
    return TrainData(labels=labels, features=torch.randn(len(labels), backbone.embed_dim, generator=g))


def fit(learner, tmp_path, name, sept=SeptConfig(), bank=None):
    return train(learner, data(learner.backbone), ONE_EPOCH, sept, bank, seed=1, run_dir=tmp_path / name,
                 identity={"config": {}}, backbone_fingerprint=learner.backbone.fingerprint, progress=False)


def bank_for(learner, backbone, filled_cache):
    cache, gkey = filled_cache
    cfg = load_config(None, [f"sept.generation={gkey!r}", "sept.neighbors_per_step=2"]).replace(
        "text", templates=TEMPLATES)
    return load_neighbor_bank(cfg, learner, backbone, BASE, cache, dataset="synth")[0]


def audio(backbone, n=5, seed=3):
    return torch.randn(n, backbone.embed_dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ALL)
def test_table_and_learner_agree(method):
    info, cls = method_info(method), learner_class(method)
    assert cls.name == method
    assert cls.trainable == info.trains
    assert cls.supports_sept == (info.trains and info.sept), "the table's sept flag must match the learner"
    if not info.sept:
        assert info.sept_note, "a method without SEPT says why"
    if not info.unseen:
        assert info.unseen_note, "a method that cannot score unseen classes says why"


# Methods whose learner declares that a context initialised from the template reproduces the frozen model
# (CoCoOp's meta-net bias, DePT's fused head and PALM's class vectors move it from the start, by design).
AT_TEMPLATE = [m for m in ALL if learner_class(m).starts_at_template]


def test_the_template_check_covers_the_prompt_methods():
    assert {"zeroshot", "coop", "kgcoop"} <= set(AT_TEMPLATE)


@pytest.mark.parametrize("method", AT_TEMPLATE)
def test_init_from_the_template_reproduces_the_frozen_model_where_declared(tiny_backbone, method):
    learner = build_learner(tiny_backbone, MethodConfig(name=method, ctx_init="a sound of a"), [TEMPLATE], seed=0)
    zeroshot = build_learner(tiny_backbone, MethodConfig(name="zeroshot"), [TEMPLATE], seed=0)
    learner.set_train_classes(BASE)
    zeroshot.set_classnames(BASE)
    a = audio(tiny_backbone)
    torch.testing.assert_close(learner.predict_logits(a), zeroshot.predict_logits(a), atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", ALL)
def test_a_training_step_moves_only_the_learners_parameters(tiny_backbone, method, tmp_path):
    learner = fresh(tiny_backbone, method)
    if not learner.trainable:
        assert list(learner.parameters()) == [] and learner.prompt_state() == {}
        return
    frozen = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    start = {k: v.detach().clone() for k, v in learner.named_parameters()}
    assert start, "a trainable learner has parameters"
    assert set(start) <= set(learner.prompt_state()), "every parameter is checkpointed"
    fit(learner, tmp_path, "r")
    after = tiny_backbone.state_dict()
    assert all(torch.equal(frozen[k], after[k]) for k in frozen), "a frozen weight changed"
    assert all(not m.training for m in tiny_backbone.clap.modules()), "a tower left eval mode"
    for k, v in learner.named_parameters():
        assert not torch.equal(v, start[k]), f"parameter {k} did not move"


@pytest.mark.parametrize("method", ALL)
def test_checkpoint_round_trip_scores_identically(tiny_backbone, method, tmp_path):
    learner = fresh(tiny_backbone, method)
    with torch.no_grad():  # move every parameter off its init, so a load that drops one would show
        for p in learner.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    save_prompt(tmp_path / "p.safetensors", learner.prompt_state(), method, tiny_backbone.fingerprint)
    again = fresh(tiny_backbone, method, seed=7)
    again.load_prompt_state(load_prompt(tmp_path / "p.safetensors", tiny_backbone.fingerprint, method))
    a = audio(tiny_backbone)
    assert torch.equal(again.predict_logits(a), learner.predict_logits(a))
    assert sorted(again.prompt_state()) == sorted(learner.prompt_state())


@pytest.mark.parametrize("method", ALL)
def test_unseen_classes_are_scored_or_refused_as_the_table_says(tiny_backbone, method):
    learner = fresh(tiny_backbone, method)
    if method_info(method).unseen:
        learner.set_classnames(NEW + ["vacuum cleaner"])
        logits = learner.predict_logits(audio(tiny_backbone))
        assert logits.shape == (5, 4) and torch.isfinite(logits).all()
    else:
        with pytest.raises(UserError, match="never trained on") as err:
            learner.set_classnames(NEW)
        assert "\n" not in str(err.value)
    learner.set_classnames(BASE)  # the training classes always score
    assert learner.predict_logits(audio(tiny_backbone)).shape == (5, 3)


@pytest.mark.parametrize("method", ALL)
def test_sept_phrases_go_through_the_prompt_where_supported(tiny_backbone, method):
    learner = fresh(tiny_backbone, method)
    if not learner.supports_sept:
        with pytest.raises(NotImplementedError):
            learner.tokenize_phrases(["barking dog"])
        return
    ids, mask = learner.tokenize_phrases(["barking dog", "woof"])
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert (ids[mask == 0] == learner.phrase_pad_id).all()
    p = learner.embed_phrases(ids, mask)
    torch.testing.assert_close(p.norm(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
    out = learner.forward_train(audio(tiny_backbone, 4), ids, mask)
    assert out.z.shape == (3, tiny_backbone.embed_dim)
    torch.testing.assert_close(out.p, p, atol=1e-5, rtol=0)  # same prompt in training as for diagnostics
    p.sum().backward()
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in learner.parameters()), \
        "L_se's gradient must reach the prompt through the phrases"


@pytest.mark.parametrize("method", [m for m in ALL if METHODS[m].trains and METHODS[m].sept])
def test_lambda_zero_is_the_baseline_bit_for_bit_and_sept_changes_it(tiny_backbone, method, filled_cache, tmp_path):
    base = fresh(tiny_backbone, method)
    fit(base, tmp_path, "base")
    zero = fresh(tiny_backbone, method)
    fit(zero, tmp_path, "zero", SeptConfig(enabled=True, lam=0.0), bank_for(zero, tiny_backbone, filled_cache))
    sept = fresh(tiny_backbone, method)
    fit(sept, tmp_path, "sept", SeptConfig(enabled=True, lam=1.0), bank_for(sept, tiny_backbone, filled_cache))
    for k, v in base.prompt_state().items():
        assert torch.equal(v, zero.prompt_state()[k]), k
    assert any(not torch.equal(v, sept.prompt_state()[k]) for k, v in base.named_parameters())


@pytest.mark.parametrize("method", [m for m in ALL if METHODS[m].trains])
def test_forward_train_stops_before_the_loss_which_the_trainer_runs_in_float32(tiny_backbone, method):
    """forward_train returns embeddings only (unit audio and class embeddings); everything the method adds on
    top (a head, a regulariser) lives in method_loss, which the trainer runs in float32 outside autocast: the
    step's loss under bf16 autocast equals the learner's own method_loss on those embeddings in float64."""
    learner = fresh(tiny_backbone, method)
    x, labels = audio(tiny_backbone, 4), torch.tensor([0, 1, 2, 1])
    seen = {}
    real = learner.forward_train

    def recording(*args, **kwargs):  # the real forward; its output is scored in float64 before the step
        out = real(*args, **kwargs)
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        with torch.autocast("cpu", enabled=False), torch.no_grad():
            detached = type(out)(**{f.name: None if getattr(out, f.name) is None
                                    else getattr(out, f.name).detach().double() for f in dataclasses.fields(out)})
            seen["reference"] = float(learner.method_loss(detached, labels)[0])
        seen["out"] = out
        return out

    learner.forward_train = recording
    loss, _ = training_step(learner, x, labels, None, SeptConfig(), make_optimizer(learner, ONE_EPOCH),
                            torch.amp.GradScaler("cuda", enabled=False), torch.bfloat16)
    assert seen["autocast"], "the forward did not run under autocast: the check would prove nothing"
    out, d = seen["out"], tiny_backbone.embed_dim
    assert out.audio.shape == (4, d) and out.text.shape in {(3, d), (4, 3, d)}
    torch.testing.assert_close(out.audio.float().norm(dim=-1), torch.ones(4), atol=1e-2, rtol=0)
    torch.testing.assert_close(out.text.float().norm(dim=-1), torch.ones(out.text.shape[:-1]), atol=1e-2, rtol=0)
    assert loss == pytest.approx(seen["reference"], abs=1e-5, rel=0)
