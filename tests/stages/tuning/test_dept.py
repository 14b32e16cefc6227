"""DePT on the tiny random CLAP: w = 0 is CoOp bit for bit, fused logits and loss by hand, new classes never
touch the head, the head's learning rate, and checkpoints onto other classes."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stages.tuning.checkpoint import load_prompt, save_prompt
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig
from stages.tuning.learners import build_learner
from stages.tuning.trainer import TrainData, make_optimizer, train

from tuning_kit import CLASSES, TEMPLATES, fit_on_random_features, random_audio

BASE, NEW = CLASSES[:3], CLASSES[3:]
# Weight decay on (Dassl's 5e-4; the palm default has none) so that at w = 0 the head still moves, by decay alone.
TRAIN = TrainConfig(epochs=2, batch_size=4, lr=0.05, weight_decay=5e-4, warmup_epochs=1, warmup_lr=1e-3)


def learner(backbone, method="dept", seed=1, **kw):
    out = build_learner(backbone, MethodConfig(name=method, n_ctx=4, **kw), TEMPLATES, seed)
    out.set_train_classes(BASE)
    return out


def fit(model, tmp_path, name, train_cfg=TRAIN):
    fit_on_random_features(model, tmp_path / name, train_cfg)


def audio(backbone, n=6):
    return random_audio(backbone, n)


def test_head_weight_zero_is_coop_bit_for_bit(tiny_backbone, tmp_path):
    coop, dept = learner(tiny_backbone, "coop"), learner(tiny_backbone, dept_weight=0.0)
    assert torch.equal(coop.ctx, dept.ctx)
    fit(coop, tmp_path, "coop")
    fit(dept, tmp_path, "dept")
    assert torch.equal(coop.ctx, dept.ctx)
    assert not torch.equal(dept.head.weight, learner(tiny_backbone).head.weight), "the head trained (at w = 0 only by decay)"
    for names in (BASE, NEW):  # base: fused with w = 0; new: similarity only
        coop.set_classnames(names)
        dept.set_classnames(names)
        assert torch.equal(coop.predict_logits(audio(tiny_backbone)), dept.predict_logits(audio(tiny_backbone)))


def test_fused_logits_and_loss_equal_a_float64_hand_computation(tiny_backbone):
    """Koorye/DePT elp_coop.py: similarity on unit features; transforms and head on the RAW tower outputs."""
    model = learner(tiny_backbone)
    with torch.no_grad():  # transforms off the identity, so a skipped transform would show
        model.audio_transform.scale.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(2))
        model.audio_transform.shift.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
        model.text_transform.scale.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
    x = audio(tiny_backbone)
    assert (x.norm(dim=-1) - 1).abs().min() > 1.0, "raw audio must not be unit, or the check could not tell"
    with torch.no_grad():
        t = model.prompt_features(model.class_ids, model.class_mask).double()  # raw text outputs [C, D]
    assert (t.norm(dim=-1) - 1).abs().min() > 1e-2
    a, z = F.normalize(x.double(), dim=-1), F.normalize(t, dim=-1)
    w, b = model.head.weight.detach().double(), model.head.bias.detach().double()
    sa, ha = model.audio_transform.scale.detach().double(), model.audio_transform.shift.detach().double()
    st, ht = model.text_transform.scale.detach().double(), model.text_transform.shift.detach().double()
    sim = tiny_backbone.logit_scale() * a @ z.t()
    head = (x.double() * sa + ha) @ w.t() + b
    torch.testing.assert_close(model.predict_logits(x).double(), 0.3 * sim + 0.7 * head, atol=1e-4, rtol=1e-5)

    labels = torch.tensor([0, 1, 2, 2, 1, 0])
    loss, parts = model.method_loss(model.forward_train(x), labels)
    lp = torch.cat([(t[labels] * st + ht) @ w.t() + b, head])
    ce_sim = -sim.log_softmax(-1)[torch.arange(6), labels].mean()
    ce_head = -lp.log_softmax(-1)[torch.arange(12), torch.cat([labels, labels])].mean()
    assert parts["ce"].item() == pytest.approx(ce_sim.item(), abs=1e-4)
    assert parts["head"].item() == pytest.approx(ce_head.item(), abs=1e-4)
    assert loss.item() == pytest.approx(0.3 * ce_sim.item() + 0.7 * ce_head.item(), abs=1e-4)


def test_hand_sized_case_of_the_original_fusion_and_loss(tiny_backbone):
    """Two clips, two classes, a head reading two channels, worked out in float64 from the original's formulas
    (elp_coop.py: FiLM then Linear on raw features; CE on [text of labels; image] with [y; y]; base-class logits
    (1 - w) * scale * cos + w * head): the head sees the raw norms, which unit features would hide."""
    model = learner(tiny_backbone, dept_weight=0.5)
    model.set_train_classes(BASE[:2])
    d = tiny_backbone.embed_dim
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.weight[0, 0], model.head.weight[1, 1] = 1.0, 1.0   # head logit c = channel c
        model.head.bias.zero_()
        model.audio_transform.scale.fill_(2.0)                        # T_a(x) = 2x + 1
        model.audio_transform.shift.fill_(1.0)
    x = torch.zeros(2, d)
    x[0, 0], x[0, 1] = 3.0, 4.0            # raw norm 5: unit (0.6, 0.8)
    x[1, 0], x[1, 1] = 0.0, 10.0           # raw norm 10: unit (0, 1)
    text_raw = torch.zeros(2, d, dtype=torch.float64)
    text_raw[0, 0], text_raw[1, 1] = 2.0, 0.5                          # class 0 along e0, class 1 along e1
    from stages.tuning.learners.base import TrainForward

    out = TrainForward(audio=F.normalize(x, dim=-1), text=F.normalize(text_raw.float(), dim=-1),
                       audio_raw=x, text_raw=text_raw.float())
    scale = tiny_backbone.logit_scale()
    # by hand: cos = [[0.6, 0.8], [0, 1]]; head(T_a(x)) = [[7, 9], [1, 21]]; head(T_t(t_y)) = text_raw[y][:2]
    sim = scale * torch.tensor([[0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    head_audio = torch.tensor([[7.0, 9.0], [1.0, 21.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    head_text = torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    lse = lambda v: torch.logsumexp(v, -1)  # noqa: E731
    ce_sim = ((lse(sim) - sim[[0, 1], labels]).sum() / 2)
    rows, ys = torch.cat([head_text, head_audio]), torch.tensor([0, 1, 0, 1])
    ce_head = (lse(rows) - rows[torch.arange(4), ys]).sum() / 4
    loss, parts = model.method_loss(out, labels)
    assert parts["head"].item() == pytest.approx(ce_head.item(), rel=1e-6)
    assert parts["ce"].item() == pytest.approx(ce_sim.item(), rel=1e-5)
    assert loss.item() == pytest.approx((0.5 * ce_sim + 0.5 * ce_head).item(), rel=1e-5)
    with torch.no_grad():  # the fused base-class logits, with the model's own class embeddings for `sim`
        z = F.normalize(model.prompt_features(model.class_ids, model.class_mask).double(), dim=-1)
    fused = 0.5 * scale * F.normalize(x.double(), dim=-1) @ z.t() + 0.5 * head_audio
    torch.testing.assert_close(model.predict_logits(x).double(), fused, atol=1e-4, rtol=1e-5)


def test_warm_up_runs_every_group_at_the_warm_up_lr(tiny_backbone, tmp_path):
    """Dassl's ConstantWarmupScheduler returns WARMUP_CONS_LR for every group: the head's 6.5x starts after it."""
    from stages.tuning.checkpoint import load_checkpoint
    from stages.tuning.trainer import CHECKPOINTS

    model = learner(tiny_backbone)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=0.05, schedule="cosine", warmup_epochs=1, warmup_lr=1e-3)
    fit(model, tmp_path, "warm", cfg)
    ckpt = load_checkpoint(tmp_path / "warm" / CHECKPOINTS, tiny_backbone.fingerprint, "dept")
    assert [g["lr"] for g in ckpt.state["optimizer"]["param_groups"]] == [1e-3, 1e-3]


def test_new_classes_never_touch_the_head(tiny_backbone):
    model = learner(tiny_backbone)
    coop = learner(tiny_backbone, "coop")
    with torch.no_grad():  # a poisoned head and transform: any use of them would turn the logits to NaN
        model.head.weight.fill_(float("nan"))
        model.audio_transform.shift.fill_(float("nan"))
    for names in (NEW, NEW + ["vacuum cleaner"], BASE[:2]):  # even a subset of the base classes is not the head's
        model.set_classnames(names)
        coop.set_classnames(names)
        assert torch.equal(model.predict_logits(audio(tiny_backbone)), coop.predict_logits(audio(tiny_backbone)))
    model.set_classnames(BASE)
    assert torch.isnan(model.predict_logits(audio(tiny_backbone))).all()  # the base classes do fuse the head


def test_head_and_transforms_learn_at_the_lr_multiple(tiny_backbone):
    model = learner(tiny_backbone, dept_lr_mult=6.5)
    groups = make_optimizer(model, TrainConfig(lr=0.01)).param_groups
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.065)]
    assert groups[0]["params"] == [model.ctx]
    assert {id(p) for p in groups[1]["params"]} == {id(p) for n, p in model.named_parameters() if n != "ctx"}


def test_checkpoint_keeps_the_prompt_on_other_classes_and_drops_the_head(tiny_backbone, tmp_path):
    model = learner(tiny_backbone)
    with torch.no_grad():
        model.ctx.add_(0.3)
        model.text_transform.scale.mul_(1.2)
    save_prompt(tmp_path / "p.safetensors", model.prompt_state(), "dept", tiny_backbone.fingerprint)
    state = load_prompt(tmp_path / "p.safetensors", tiny_backbone.fingerprint, "dept")
    assert {"ctx", "head.weight", "head.bias", "head_classes", "text_transform.scale"} <= set(state)

    other = build_learner(tiny_backbone, MethodConfig(name="dept", n_ctx=4), TEMPLATES, 9)
    other.set_train_classes(NEW)            # a head over other classes: not the saved one
    other.load_prompt_state(state)
    assert other.head is None and torch.equal(other.ctx, model.ctx)
    assert torch.equal(other.text_transform.scale, model.text_transform.scale)
    other.set_classnames(NEW)
    model.set_classnames(NEW)
    assert torch.equal(other.predict_logits(audio(tiny_backbone)), model.predict_logits(audio(tiny_backbone)))

    fresh = build_learner(tiny_backbone, MethodConfig(name="dept", n_ctx=4), TEMPLATES, 9)
    fresh.load_prompt_state(state)          # no classes set (the diagnostics' way): prompt only
    assert fresh.head is None and torch.equal(fresh.ctx, model.ctx)


def test_lr_multiple_holds_through_the_schedule(tiny_backbone, tmp_path):
    """Plain SGD, one step: the head moves by 6.5 x lr x grad, the lr the trainer sets for the epoch."""
    model = learner(tiny_backbone)
    cfg = TrainConfig(epochs=1, batch_size=12, lr=0.05, momentum=0.0, weight_decay=0.0, schedule="constant",
                      warmup_epochs=0)
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(4)
    feats = torch.randn(12, tiny_backbone.embed_dim, generator=g)
    before = model.head.bias.detach().clone()
    loss, _ = model.method_loss(model.forward_train(feats), labels)
    grad = torch.autograd.grad(loss, model.head.bias)[0]
    train(model, TrainData(labels=labels, features=feats), cfg, SeptConfig(), None, seed=1, run_dir=tmp_path / "r",
          identity={}, backbone_fingerprint=tiny_backbone.fingerprint, progress=False)
    torch.testing.assert_close(model.head.bias.detach(), before - 6.5 * 0.05 * grad, atol=1e-7, rtol=1e-5)


def test_lr_multiple_survives_the_cosine_schedule_after_warm_up(tiny_backbone, tmp_path):
    """The trainer sets every group's lr each epoch from Dassl's cosine: the head's group stays at 6.5x."""
    from stages.tuning.checkpoint import load_checkpoint
    from stages.tuning.schedule import lr_at
    from stages.tuning.trainer import CHECKPOINTS

    model = learner(tiny_backbone)
    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.05, schedule="cosine", warmup_epochs=1, warmup_lr=1e-3)
    fit(model, tmp_path, "cos", cfg)
    ckpt = load_checkpoint(tmp_path / "cos" / CHECKPOINTS, tiny_backbone.fingerprint, "dept")
    last = 0.5 * 0.05 * (1 + math.cos(math.pi * (2 - 1) / 3))  # epoch 2 of 3 after one warm-up epoch, by hand
    assert ckpt.state["lr"] == pytest.approx(last) == lr_at(2, 0.05, 3, "cosine", 1, 1e-3)
    assert [g["lr"] for g in ckpt.state["optimizer"]["param_groups"]] == [pytest.approx(last),
                                                                          pytest.approx(6.5 * last)]
