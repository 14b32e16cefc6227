"""train.select = "lowest_train_loss" (jhyukjang/SubT's rule): the prompt of the epoch with the lowest mean
training loss is the one evaluated and saved, its epoch is recorded, and a resumed run keeps it."""
from __future__ import annotations

import json

import pytest
import torch

from stages.tuning import trainer as trainer_mod
from stages.tuning.checkpoint import load_prompt
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig
from stages.tuning.learners import build_learner

from tuning_kit import CLASSES, TEMPLATES

BASE = CLASSES[:3]
CFG = dict(epochs=6, batch_size=4, lr=0.5, momentum=0.9, warmup_epochs=0)


def fresh(backbone):
    model = build_learner(backbone, MethodConfig(name="coop", n_ctx=4), TEMPLATES, 1)
    model.set_train_classes(BASE)
    return model


def data(backbone):
    """Features with fresh noise at every step (drawn from the run's crop generator, like random crops): the
    epoch losses go up and down, so the lowest is not simply the last epoch."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(4)
    base = torch.randn(12, backbone.embed_dim, generator=g)
    return trainer_mod.TrainData(labels=labels, encode=lambda idx, gen: base[idx] + 3.0 * torch.randn(
        len(idx), backbone.embed_dim, generator=gen))


def run(model, tmp_path, name, cfg, resume=False):
    return trainer_mod.train(model, data(model.backbone), cfg, SeptConfig(), None, seed=1, run_dir=tmp_path / name,
                             identity={"config": {"train": {"epochs": cfg.epochs}}},
                             backbone_fingerprint=model.backbone.fingerprint, resume=resume, progress=False)


def losses(tmp_path, name):
    return [json.loads(x)["loss"] for x in (tmp_path / name / "train_log.jsonl").read_text().splitlines()]


def test_the_lowest_loss_epoch_is_kept_evaluated_saved_and_recorded(tiny_backbone, tmp_path):
    chosen = fresh(tiny_backbone)
    summary = run(chosen, tmp_path, "low", TrainConfig(**CFG, select="lowest_train_loss"))
    logged = losses(tmp_path, "low")
    k = min(range(len(logged)), key=lambda i: (logged[i], i))  # the first of the lowest
    assert k < CFG["epochs"] - 1, f"the check needs a lowest epoch before the last: {logged}"
    assert summary["select"] == "lowest_train_loss" and summary["selected_epoch"] == k
    assert summary["selected_loss"] == pytest.approx(logged[k])
    # The same run stopped after epoch k (same seed, constant lr: the same first k + 1 epochs) ends where the
    # selected state is.
    short = fresh(tiny_backbone)
    run(short, tmp_path, "short", TrainConfig(**{**CFG, "epochs": k + 1}))
    last = fresh(tiny_backbone)
    last_summary = run(last, tmp_path, "last", TrainConfig(**CFG))
    assert torch.equal(chosen.ctx, short.ctx) and not torch.equal(chosen.ctx, last.ctx)
    assert last_summary["select"] == "last" and last_summary["selected_epoch"] == CFG["epochs"] - 1
    saved = load_prompt(tmp_path / "low" / "prompt.safetensors", tiny_backbone.fingerprint, "coop")
    assert torch.equal(saved["ctx"], short.ctx)  # the saved prompt is the evaluated one


def test_a_resumed_run_keeps_the_selection_exactly(tiny_backbone, tmp_path, monkeypatch):
    cfg = TrainConfig(**CFG, select="lowest_train_loss")
    whole = fresh(tiny_backbone)
    expected = run(whole, tmp_path, "whole", cfg)
    k = expected["selected_epoch"]
    real_save = trainer_mod.save_checkpoint

    def save_then_die(root, epoch, *args, **kwargs):  # killed after the selected epoch's checkpoint
        real_save(root, epoch, *args, **kwargs)
        if epoch == k + 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(fresh(tiny_backbone), tmp_path, "cut", cfg)
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)
    resumed = fresh(tiny_backbone)
    summary = run(resumed, tmp_path, "cut", cfg, resume=True)
    assert summary["resumed_from_epoch"] == k + 2 and summary["selected_epoch"] == k
    assert torch.equal(resumed.ctx, whole.ctx)
