"""PALM on the tiny random CLAP: lambda = 0 is zero-shot on the bare class names, only z and lambda train,
the text tower is never called after set-up, unseen classes and SEPT are refused (or scored zero-shot,
labelled), and `tune` runs it end to end."""
from __future__ import annotations

import json

import pytest
import torch

from cache.errors import UserError
from pipeline.cli import main
from stages.tuning.checkpoint import load_prompt, save_prompt
from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig
from stages.tuning.scoring import evaluate
from stages.tuning.learners import build_learner
from stages.tuning.trainer import TrainData, train
from stages.zeroshot import zeroshot_class_embeddings

from tuning_kit import CLASSES, TEMPLATES

BASE, NEW = CLASSES[:3], CLASSES[3:]


def palm(backbone, classes=BASE, seed=1, **kw):
    learner = build_learner(backbone, MethodConfig(name="palm", **kw), TEMPLATES, seed)
    learner.set_train_classes(classes)
    return learner


def features(backbone, n, seed=4):
    return torch.randn(n, backbone.embed_dim, generator=torch.Generator().manual_seed(seed))


def fit(learner, tmp_path, epochs=2):
    labels = torch.arange(len(learner.train_classes)).repeat_interleave(4)
    data = TrainData(labels=labels, features=features(learner.backbone, len(labels), seed=0))
    cfg = TrainConfig(epochs=epochs, batch_size=4, lr=0.05, warmup_epochs=0)
    train(learner, data, cfg, SeptConfig(), None, seed=1, run_dir=tmp_path, identity={},
          backbone_fingerprint=learner.backbone.fingerprint, progress=False)


class TextTowerCalls:
    """Counts forward calls of the real text tower (a forward hook, removed on exit)."""

    def __init__(self, backbone):
        self.module, self.count = backbone.clap.text_model, 0

    def __enter__(self):
        self.handle = self.module.register_forward_hook(lambda *_: setattr(self, "count", self.count + 1))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_lambda_zero_gives_exactly_zero_shot_on_the_bare_class_names(tiny_backbone):
    learner = palm(tiny_backbone, CLASSES)
    with torch.no_grad():
        learner.lambda_logit.fill_(float("-inf"))   # sigmoid(-inf) = 0 exactly
        learner.z.normal_(0, 5.0)                   # z must then not matter at all
    ref = zeroshot_class_embeddings(tiny_backbone, CLASSES, ["{}"])  # the text is the class name alone
    torch.testing.assert_close(learner.class_embeddings(), ref, atol=1e-6, rtol=0)
    x, labels = features(tiny_backbone, 300), torch.randint(0, 6, (300,), generator=torch.Generator().manual_seed(1))
    ours = evaluate(learner, CLASSES, x, labels.tolist())
    zs = build_learner(tiny_backbone, MethodConfig(name="zeroshot"), ["{}"], 0)
    assert ours["acc"] == evaluate(zs, CLASSES, x, labels.tolist())["acc"]
    assert torch.equal(learner.predict_logits(x).argmax(1), zs.predict_logits(x).argmax(1))


def test_class_feature_is_the_lambda_mix_by_hand(tiny_backbone):
    learner = palm(tiny_backbone)
    f = torch.nn.functional.normalize(tiny_backbone.encode_text(BASE).double(), dim=-1)
    lam = torch.sigmoid(learner.lambda_logit.detach().double())[:, None]
    expected = torch.nn.functional.normalize((1 - lam) * f + lam * learner.z.detach().double(), dim=-1)
    torch.testing.assert_close(learner.class_embeddings().double(), expected, atol=1e-6, rtol=0)
    lam0 = torch.sigmoid(learner.lambda_logit.detach())
    assert ((lam0 > 0.5) & (lam0 < 0.7311)).all()  # lambda_i = sigmoid(U(0, 1))


def test_training_moves_only_z_and_lambda_and_never_calls_the_text_tower(tiny_backbone, other_backbone, tmp_path):
    learner = palm(tiny_backbone)                     # set-up: the bare names are encoded (or were, earlier)
    assert sorted(learner.prompt_state()) == ["classes", "lambda_logit", "z"]
    assert sorted(n for n, _ in learner.named_parameters()) == ["lambda_logit", "z"]
    start = {k: v.detach().clone() for k, v in learner.named_parameters()}
    frozen = {k: v.clone() for k, v in tiny_backbone.state_dict().items()}
    with TextTowerCalls(tiny_backbone) as calls:
        fit(learner, tmp_path)
        evaluate(learner, BASE, features(tiny_backbone, 10), [0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
        again = palm(tiny_backbone, seed=2)          # another learner, same backbone: cached features
        again.predict_logits(features(tiny_backbone, 3))
    assert calls.count == 0
    assert all(torch.equal(frozen[k], v) for k, v in tiny_backbone.state_dict().items())
    for k, v in learner.named_parameters():
        assert not torch.equal(v, start[k]), k
    # The cache is per backbone fingerprint: another backbone's features are its own.
    with TextTowerCalls(other_backbone) as calls:
        palm(other_backbone, ["a class only here"])
    assert calls.count == 1


def test_unseen_classes_are_refused_unless_scored_zero_shot_and_labelled(tiny_backbone):
    learner = palm(tiny_backbone)
    with pytest.raises(UserError, match=r"method palm: no prompt for 2 classes it never trained on \('rain', "
                                        r"'siren'\).*palm_unseen=\"zeroshot\"") as err:
        learner.set_classnames(["dog bark", "rain", "siren"])
    assert "\n" not in str(err.value) and learner.run_notes() == {}

    lenient = palm(tiny_backbone, palm_unseen="zeroshot")
    assert lenient.run_notes() == {"unseen": "zeroshot"}
    lenient.set_classnames(["dog bark"] + NEW)        # one trained class, three unseen
    z = lenient.class_embeddings()
    ref_new = zeroshot_class_embeddings(tiny_backbone, NEW, ["{}"])
    torch.testing.assert_close(z[1:], ref_new, atol=1e-6, rtol=0)   # unseen: lambda = 0
    lenient.set_classnames(BASE)
    torch.testing.assert_close(z[0], lenient.class_embeddings()[2], atol=0, rtol=0)  # seen: its own z and lambda


def test_sept_is_refused_by_the_table_and_by_the_learner(tiny_backbone):
    from pipeline.protocols.table import check_method_fits

    with pytest.raises(UserError, match=r"--sept: PALM cannot use SEPT \(it has no shared prompt"):
        check_method_fits(MethodConfig(name="palm"), "fewshot", sept_on=True)
    check_method_fits(MethodConfig(name="palm"), "fewshot", sept_on=False)
    with pytest.raises(UserError, match=r"--protocol cross: PALM has no prompt for classes it never trained on .*; "
                                        r"run it with --protocol fewshot"):
        check_method_fits(MethodConfig(name="palm"), "cross", sept_on=False)
    check_method_fits(MethodConfig(name="palm", palm_unseen="zeroshot"), "base2new", sept_on=False)
    with pytest.raises(ValueError, match="no SEPT"):
        palm(tiny_backbone).forward_train(features(tiny_backbone, 2), torch.ones(1, 3, dtype=torch.long),
                                          torch.ones(1, 3, dtype=torch.long))


def test_checkpoint_belongs_to_its_classes(tiny_backbone, tmp_path):
    learner = palm(tiny_backbone)
    save_prompt(tmp_path / "p.safetensors", learner.prompt_state(), "palm", tiny_backbone.fingerprint)
    state = load_prompt(tmp_path / "p.safetensors", tiny_backbone.fingerprint, "palm")
    loaded = build_learner(tiny_backbone, MethodConfig(name="palm"), TEMPLATES, 5)
    loaded.load_prompt_state(state)                  # nothing trained yet: adopts the saved classes
    assert loaded.train_classes == BASE and torch.equal(loaded.z, learner.z)
    other = palm(tiny_backbone, NEW)
    with pytest.raises(UserError, match="holds vectors for the classes"):
        other.load_prompt_state(state)


def _tune(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", *map(str, args)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_tune_runs_palm_fewshot_and_labels_zero_shot_new_classes(synth_spec, tiny_clap_dir, tmp_path, capsys):
    spec, root = synth_spec
    common = ["--dataset", spec, "--data-root", root, "--method", "palm", "--backbone", tiny_clap_dir,
              "--cache-dir", tmp_path / "cache", "--shots", 2, "--set", "train.epochs=2",
              "--set", "backbone.device=cpu", "--json"]
    code, _, err = _tune(capsys, *common, "--sept", "--protocol", "fewshot", "--out", tmp_path / "no")
    assert code == 2 and err.count("\n") == 1 and "PALM cannot use SEPT" in err
    code, _, err = _tune(capsys, *common, "--no-sept", "--protocol", "base2new", "--out", tmp_path / "no")
    assert code == 2 and err.count("\n") == 1 and "palm_unseen" in err
    assert not (tmp_path / "no").exists()            # refused before anything was written

    code, out, err = _tune(capsys, *common, "--no-sept", "--protocol", "fewshot", "--out", tmp_path / "runs" / "f")
    assert code == 0, err
    m = json.loads(out)
    assert m["method"] == "palm" and m["method_notes"] == {} and 0 <= m["acc"] <= 100
    code, out, err = _tune(capsys, *common, "--no-sept", "--protocol", "base2new", "--set",
                           'method.palm_unseen="zeroshot"', "--out", tmp_path / "runs" / "b")
    assert code == 0, err
    m = json.loads(out)
    assert m["method_notes"] == {"unseen": "zeroshot"} and m["method_config"]["palm_unseen"] == "zeroshot"

    from pipeline.report.collect import collect_runs
    from pipeline.report.tables import method_label

    runs = {r["protocol"]: r for r in collect_runs(tmp_path / "runs").runs}
    assert method_label("palm", False, runs["base2new"]["variant"]) == "PALM [unseen=zeroshot]"
    assert method_label("palm", False, runs["fewshot"]["variant"]) == "PALM"
