"""ZEBRA (`zebra` on CoOp, `cocoop-zebra` on CoCoOp) on the tiny random CLAP: fused logits and loss equal a float64
computation of asif-hanif/zebra's formulas, w = 0 without entropy is CoOp bit for bit, the zero-shot side is ZEBRA's
one prompt for whichever classes are scored, and `tune --method zebra --sept` runs through the CLI."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from stages.tuning.config import MethodConfig, TrainConfig
from stages.tuning.learners import build_learner
from stages.zeroshot import zeroshot_class_embeddings

from tuning_kit import CLASSES, TEMPLATES, fit_on_random_features, random_audio

BASE, NEW = CLASSES[:3], CLASSES[3:]
LABELS = torch.tensor([0, 1, 2, 2, 1, 0])
ZEBRA_PROMPT = "The is a recording of  {}."  # f"{'The is a recording of '} {c}." (utils/utils.py, methods/coop.py)


def learner(backbone, method, **kw):
    out = build_learner(backbone, MethodConfig(name=method, n_ctx=4, cocoop_chunk=3, **kw), TEMPLATES, 1)
    out.set_train_classes(BASE)
    return out


def ce64(logits, labels):
    return -logits.log_softmax(-1)[torch.arange(len(labels)), labels].mean()


def entropy64(logits):
    p = logits.softmax(-1)
    return -(p * torch.log(p + 1e-8)).sum(-1).mean()


@pytest.mark.parametrize("method", ["zebra", "cocoop-zebra"])
def test_fused_logits_and_loss_equal_a_float64_hand_computation(tiny_backbone, method):
    model = learner(tiny_backbone, method)
    x = random_audio(tiny_backbone)
    a = F.normalize(x.double(), dim=-1)
    scale = tiny_backbone.logit_scale()
    with torch.no_grad():
        if method == "zebra":
            z = model.class_embeddings().double()
            prompt = scale * a @ z.t()
        else:  # each clip's own instance-conditioned class embeddings
            z = torch.stack([model._chunk_text(a[i : i + 1].float())[0] for i in range(6)]).double()
            prompt = scale * torch.einsum("bd,bcd->bc", a, z)
    zs = zeroshot_class_embeddings(tiny_backbone, BASE, [ZEBRA_PROMPT]).double()  # ZEBRA's own zero-shot prompt
    fused = 0.5 * prompt + 0.5 * scale * a @ zs.t()  # logits, not probabilities, each at the scale
    torch.testing.assert_close(model.predict_logits(x).double(), fused, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(prompt, fused, atol=1e-2)  # the zero-shot half matters here

    loss, parts = model.method_loss(model.forward_train(x), LABELS)
    ce, ent = ce64(fused, LABELS), entropy64(fused)
    assert parts["ce"].item() == pytest.approx(ce.item(), abs=1e-4)
    assert parts["entropy"].item() == pytest.approx(ent.item(), abs=1e-4) and ent.item() > 1e-3
    assert loss.item() == pytest.approx((ce - 0.05 * ent).item(), abs=1e-4)  # entropy maximised: minus


def test_new_classes_are_fused_with_their_own_zero_shot_embeddings(tiny_backbone):
    model = learner(tiny_backbone, "zebra", zebra_weight=1.0)  # w = 1: the zero-shot side alone
    x = random_audio(tiny_backbone)
    model.set_classnames(NEW)
    zs = zeroshot_class_embeddings(tiny_backbone, NEW, [ZEBRA_PROMPT])
    expect = tiny_backbone.logit_scale() * F.normalize(x, dim=-1) @ zs.t()
    torch.testing.assert_close(model.predict_logits(x), expect, atol=1e-4, rtol=1e-5)


def test_weight_zero_without_entropy_is_coop_bit_for_bit(tiny_backbone, tmp_path):
    coop, zebra = learner(tiny_backbone, "coop"), learner(tiny_backbone, "zebra", zebra_weight=0.0, zebra_entropy=0.0)
    cfg = TrainConfig(epochs=1, batch_size=4, lr=0.05, warmup_epochs=0)
    fit_on_random_features(coop, tmp_path / "coop", cfg)
    fit_on_random_features(zebra, tmp_path / "zebra", cfg)
    assert torch.equal(coop.ctx, zebra.ctx)
    x = random_audio(tiny_backbone)
    assert torch.equal(coop.predict_logits(x), zebra.predict_logits(x))


def test_tune_runs_zebra_with_sept_through_the_cli(synth_spec, filled_cache, tiny_clap_dir, tmp_path, capsys):
    from pipeline.cli import main

    (spec, root), (cache, gkey) = synth_spec, filled_cache
    args = ["tune", "--dataset", spec, "--data-root", root, "--method", "zebra", "--sept", "--protocol",
            "base2new", "--backbone", tiny_clap_dir, "--cache-dir", cache, "--shots", 2, "--out", tmp_path / "run",
            "--json", "--set", "train.epochs=2", "--set", "method.n_ctx=4", "--set", "backbone.device=cpu",
            "--set", f"sept.generation={gkey!r}", "--set", "text.templates=" + json.dumps(TEMPLATES),
            "--set", 'data.split_rule="shuffle:42"']
    with pytest.raises(SystemExit) as done:
        main(list(map(str, args)))
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    m = json.loads(out.out)
    assert m["method"] == "zebra" and m["sept"]["active"] and m["method_config"]["zebra_weight"] == 0.5
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all({"ce", "entropy", "se"} <= set(r) for r in log)
    split = json.loads((tmp_path / "run" / "base_new_split.json").read_text())
    from stages.data.splits import base_new_split

    assert split["split_rule"] == "shuffle:42" and (split["base"], split["new"]) == base_new_split(CLASSES, 0.5, "shuffle:42")
    assert m["train_classes"] == split["base"]
