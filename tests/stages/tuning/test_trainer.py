"""The training loop: frozen towers untouched, lambda = 0 is the baseline bit for bit, exact resume."""
from __future__ import annotations

import json
import math

import pytest
import torch

from cache.errors import UserError
from pipeline.config_loader import load_config
from stages.tuning import trainer as trainer_mod
from stages.tuning.checkpoint import load_checkpoint, load_prompt
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig
from stages.tuning.learners import build_learner
from stages.tuning.neighbor_source import load_neighbor_bank
from stages.tuning.schedule import lr_at
from stages.tuning.trainer import TrainData, train

from tuning_kit import CLASSES, TEMPLATES

TRAIN = TrainConfig(epochs=3, batch_size=4, lr=0.05, schedule="cosine", warmup_epochs=1, warmup_lr=1e-3)
BASE = CLASSES[:3]


def make_data(backbone, n_per_class=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(BASE)).repeat_interleave(n_per_class)
    return TrainData(labels=labels, features=torch.randn(len(labels), backbone.embed_dim, generator=g))


def make_bank(backbone, learner, cache, gkey, per_step: int | str = 2):
    cfg = load_config(None, [f"sept.generation={gkey!r}", f"sept.neighbors_per_step={per_step}"])
    cfg = cfg.replace("text", templates=TEMPLATES)
    bank, _ = load_neighbor_bank(cfg, learner, backbone, BASE, cache, dataset="synth")
    return bank


def fresh(backbone, method="coop", seed=1):
    learner = build_learner(backbone, MethodConfig(name=method, n_ctx=4), TEMPLATES, seed)
    learner.set_train_classes(BASE)  # the contract's training set-up (DePT builds its head here)
    return learner


def run(learner, tmp_path, name, sept=SeptConfig(), bank=None, train_cfg=TRAIN, resume=False, seed=1, backbone=None):
    return train(learner, make_data(learner.backbone), train_cfg, sept, bank, seed=seed, run_dir=tmp_path / name,
                 identity={"config": {"train": {"epochs": train_cfg.epochs}}},
                 backbone_fingerprint=learner.backbone.fingerprint, resume=resume, progress=False)


def test_a_step_moves_only_prompt_parameters_and_towers_stay_in_eval(tiny_backbone, filled_cache, tmp_path):
    before = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    learner = fresh(tiny_backbone, "cocoop")
    start = {k: v.clone() for k, v in learner.prompt_state().items()}
    bank = make_bank(tiny_backbone, learner, *filled_cache)
    run(learner, tmp_path, "r", SeptConfig(enabled=True), bank,
        TrainConfig(epochs=1, batch_size=4, warmup_epochs=0))
    after = tiny_backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a frozen weight changed"
    assert all(not p.requires_grad and p.grad is None for p in tiny_backbone.parameters())
    assert all(not m.training for m in tiny_backbone.clap.modules())
    for k, v in learner.prompt_state().items():
        assert not torch.equal(v, start[k]), f"prompt parameter {k} did not move"


def test_lambda_zero_is_bit_identical_to_the_baseline(tiny_backbone, filled_cache, tmp_path):
    base = fresh(tiny_backbone)
    run(base, tmp_path, "base")
    zero = fresh(tiny_backbone)
    run(zero, tmp_path, "zero", SeptConfig(enabled=True, lam=0.0), make_bank(tiny_backbone, zero, *filled_cache))
    assert torch.equal(base.ctx, zero.ctx)
    sept = fresh(tiny_backbone)
    run(sept, tmp_path, "sept", SeptConfig(enabled=True, lam=1.0), make_bank(tiny_backbone, sept, *filled_cache))
    assert not torch.equal(base.ctx, sept.ctx)
    rows = [json.loads(x) for x in (tmp_path / "sept" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2] and all("intra" in r and "inter" in r for r in rows)


@pytest.mark.parametrize("method", ["coop", "cocoop"])
def test_resume_after_an_interruption_ends_exactly_like_an_uninterrupted_run(tiny_backbone, filled_cache, tmp_path,
                                                                              monkeypatch, method):
    sept = SeptConfig(enabled=True)
    whole = fresh(tiny_backbone, method)
    run(whole, tmp_path, "whole", sept, make_bank(tiny_backbone, whole, *filled_cache))

    # Stand-in for a kill: the real checkpoint of epoch 2 is written, then the process "dies". A real
    # SIGKILL cannot be timed to an epoch boundary reproducibly; this is the same state on disk.
    real_save = trainer_mod.save_checkpoint

    def save_then_die(root, epoch, *args, **kwargs):
        real_save(root, epoch, *args, **kwargs)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_die)
    first = fresh(tiny_backbone, method)
    with pytest.raises(KeyboardInterrupt):
        run(first, tmp_path, "cut", sept, make_bank(tiny_backbone, first, *filled_cache))
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)
    assert not (tmp_path / "cut" / "prompt.safetensors").exists()

    resumed = fresh(tiny_backbone, method, seed=99)  # its own init is overwritten by the checkpoint
    summary = run(resumed, tmp_path, "cut", sept, make_bank(tiny_backbone, resumed, *filled_cache), resume=True)
    assert summary["resumed_from_epoch"] == 2
    for k, v in whole.prompt_state().items():
        assert torch.equal(v, resumed.prompt_state()[k]), k
    logs = [[{k: v for k, v in json.loads(x).items() if k != "seconds"}
             for x in (tmp_path / d / "train_log.jsonl").read_text().splitlines()] for d in ("whole", "cut")]
    assert logs[0] == logs[1]


def test_resume_refuses_a_checkpoint_of_another_backbone_or_config(tiny_backbone, tmp_path):
    learner = fresh(tiny_backbone)
    run(learner, tmp_path, "r", train_cfg=TrainConfig(epochs=1, batch_size=4))
    with pytest.raises(UserError, match=r"trained on backbone clap:.* but this run uses clap:other@0"):
        load_checkpoint(tmp_path / "r" / "checkpoints", "clap:other@0", "coop")
    with pytest.raises(UserError, match=r"prompt checkpoint .*prompt.safetensors: trained on backbone"):
        load_prompt(tmp_path / "r" / "prompt.safetensors", "clap:other@0")
    with pytest.raises(UserError, match=r"different config.train.epochs \(1 vs now 3\)"):
        run(fresh(tiny_backbone), tmp_path, "r", resume=True)
    with pytest.raises(UserError, match="--resume: no checkpoint"):
        run(fresh(tiny_backbone), tmp_path, "empty", resume=True)


def test_cosine_schedule_decays_over_all_epochs_as_dassls_does(tiny_backbone, tmp_path):
    # By hand, Dassl with WARMUP_RECOUNT = True (its default): epochs 0..W-1 at the constant warm-up lr,
    # then epoch e at 0.5 * lr * (1 + cos(pi * (e - W) / epochs)); half-way is epoch W + epochs / 2.
    assert lr_at(0, 0.002, 10, "cosine", 1, 1e-5) == 1e-5
    assert lr_at(1, 0.002, 10, "cosine", 1, 1e-5) == pytest.approx(0.002)
    assert lr_at(6, 0.002, 10, "cosine", 1, 1e-5) == pytest.approx(0.001)
    assert lr_at(9, 0.002, 10, "cosine", 1, 1e-5) == pytest.approx(0.001 * (1 + math.cos(math.pi * 8 / 10)))
    assert lr_at(7, 0.05, 10, "constant", 0) == 0.05 and lr_at(0, 0.05, 10, "constant", 1, 1e-5) == 1e-5

    # Independently: torch's CosineAnnealingLR(T_max = epochs) behind a constant warm-up, stepped once per
    # epoch and recounted from 0 after the warm-up, as Dassl's ConstantWarmupScheduler drives it.
    for epochs, warmup in ((10, 1), (7, 2), (5, 0)):
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=0.002)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=float(epochs))
        dassl = [1e-5] * warmup
        for _ in range(warmup, epochs):
            dassl.append(opt.param_groups[0]["lr"])
            opt.step()  # no gradient: changes nothing, keeps torch's step order
            cosine.step()
        ours = [lr_at(e, 0.002, epochs, "cosine", warmup, 1e-5) for e in range(epochs)]
        assert ours == pytest.approx(dassl, rel=1e-9, abs=1e-12)

    # The trainer applies it per epoch: the log's lr of a 3-epoch run with 1 warm-up epoch.
    run(fresh(tiny_backbone), tmp_path, "sched", train_cfg=TrainConfig(epochs=3, batch_size=4, lr=0.05,
                                                                      schedule="cosine", warmup_epochs=1,
                                                                      warmup_lr=1e-3))
    rows = [json.loads(x) for x in (tmp_path / "sched" / "train_log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([1e-3, 0.05, 0.025 * (1 + math.cos(math.pi / 3))])


def test_neighbor_draws_follow_counts_and_gather_their_margins(tiny_backbone, filled_cache):
    learner = fresh(tiny_backbone)
    bank = make_bank(tiny_backbone, learner, *filled_cache, per_step=5)
    counts = bank.counts.tolist()  # bird chirp 5, car horn 4, dog bark 6
    assert counts == [5, 4, 6] and bank.draws_per_class == 5
    g = torch.Generator().manual_seed(0)
    draw = bank.sample(g)
    assert draw.valid.sum(1).tolist() == [5, 4, 5]
    assert draw.ids.shape[0] == 14 and draw.margins.shape == (3, 3, 5)
    # Each drawn row is one of its class's stored rows, and its margins column is that row's.
    at = 0
    for j in range(3):
        for k in range(int(draw.valid[j].sum())):
            row = draw.ids[at]
            matches = [n for n in range(counts[j]) if torch.equal(bank.ids[j, n, : row.shape[0]], row)]
            assert len(matches) == 1
            assert torch.equal(draw.margins[:, j, k], bank.margins[:, j, matches[0]])
            at += 1
    # Drawing consumes only its own generator.
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(bank.sample(g2).ids, draw.ids)


def test_neighbors_per_step_all_uses_every_stored_neighbor_and_a_number_samples(tiny_backbone, filled_cache):
    assert SeptConfig().neighbors_per_step == "all"  # the reconstruction averages over all N
    learner = fresh(tiny_backbone)
    bank = make_bank(tiny_backbone, learner, *filled_cache, per_step="all")
    counts = bank.counts.tolist()  # bird chirp 5, car horn 4, dog bark 6
    draws = [bank.sample(torch.Generator().manual_seed(s)) for s in (0, 1)]
    for draw in draws:
        assert draw.valid.sum(1).tolist() == counts and draw.margins.shape == (3, 3, 6)
        # Every stored neighbor exactly once, each with its own margins column.
        at = 0
        for j in range(3):
            for k in range(counts[j]):
                row = draw.ids[at]
                matches = [n for n in range(counts[j]) if torch.equal(bank.ids[j, n, : row.shape[0]], row)]
                assert matches == [k]
                assert torch.equal(draw.margins[:, j, k], bank.margins[:, j, k])
                at += 1
        assert at == sum(counts) == draw.ids.shape[0]
    # A number keeps the per-step random draw of that many.
    bank2 = make_bank(tiny_backbone, learner, *filled_cache, per_step=2)
    a, b = (bank2.sample(torch.Generator().manual_seed(s)) for s in (0, 1))
    assert a.valid.sum(1).tolist() == [2, 2, 2] and not torch.equal(a.ids, b.ids)
    with pytest.raises(UserError, match="sept.neighbors_per_step: 'some' is not 'all' or a whole number"):
        load_config(None, ["sept.neighbors_per_step=some"])


@pytest.mark.parametrize("bias", ["none", "batch_mean"])
def test_cocoop_bias_decides_whether_sept_trains_the_meta_net(tiny_backbone, filled_cache, bias):
    from stages.tuning.learners.base import unit
    from stages.tuning.neighbor_bank import scatter_draws
    from stages.tuning.sept_loss import semantic_expansion_loss

    learner = fresh(tiny_backbone, "cocoop")
    draw = make_bank(tiny_backbone, learner, *filled_cache, per_step="all").sample(torch.Generator())
    audio = make_data(tiny_backbone).features[:4]
    out = learner.forward_train(audio, draw.ids, draw.mask, cocoop_bias=bias)
    # z is the class prompt with the plain context, or with the batch's mean meta-net bias added.
    with torch.no_grad():
        ctx = learner.ctx if bias == "none" else learner.ctx + learner.meta_net(unit(audio)).mean(0)
        expected = learner.encode_prompts(learner.class_ids, learner.class_mask, ctx)
    torch.testing.assert_close(out.z, expected, atol=1e-6, rtol=0)

    se = semantic_expansion_loss(out.z, scatter_draws(out.p, draw.valid), draw.valid, draw.margins)
    assert se.total.item() > 0
    learner.zero_grad()
    se.total.backward()  # L_se alone
    meta = [p.grad for p in learner.meta_net.parameters()]
    assert learner.ctx.grad.abs().sum() > 0
    if bias == "none":
        assert all(g is None or not g.any() for g in meta)
    else:
        assert all(g is not None and g.abs().sum() > 0 for g in meta)
    with pytest.raises(UserError, match="sept.cocoop_bias: 'instance' is not one of none, batch_mean"):
        SeptConfig(cocoop_bias="instance")
