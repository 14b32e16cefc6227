"""DePT on KgCoOp's and CoCoOp's prompts (`kgcoop-dept`, `cocoop-dept`) on the tiny random CLAP: w = 0 is the base
method bit for bit, fused logits and loss equal a float64 computation (KgCoOp's term kept at full weight; CoCoOp's
head fed each clip's own instance-conditioned class embedding), new classes never touch the head, the meta-net
learns at the prompt's rate, checkpoints onto other classes keep the prompt and meta-net, and a real `tune`."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from stages.tuning.checkpoint import load_prompt, save_prompt
from stages.tuning.config import MethodConfig, TrainConfig
from stages.tuning.learners import build_learner
from stages.tuning.trainer import make_optimizer

from tuning_kit import CLASSES, TEMPLATES, fit_on_random_features, random_audio

BASE, NEW = CLASSES[:3], CLASSES[3:]
VARIANTS = {"kgcoop-dept": "kgcoop", "cocoop-dept": "cocoop"}  # variant -> its base method
# Weight decay on so that at w = 0 the head still moves (by decay alone) while the prompt must not notice.
TRAIN = TrainConfig(epochs=1, batch_size=4, lr=0.05, weight_decay=5e-4, warmup_epochs=0)  # 3 steps, momentum on
LABELS = torch.tensor([0, 1, 2, 2, 1, 0])  # clip b's label differs from b for b >= 1: a wrong gather would show


def config(method, **kw):
    return MethodConfig(name=method, n_ctx=4, cocoop_chunk=3, **kw)  # 6 clips in two chunks


def learner(backbone, method, seed=1, **kw):
    out = build_learner(backbone, config(method, **kw), TEMPLATES, seed)
    out.set_train_classes(BASE)
    return out


def fit(model, tmp_path, name):
    fit_on_random_features(model, tmp_path / name, TRAIN)


def audio(backbone, n=6):
    return random_audio(backbone, n)


def off_identity(model):
    """Transforms off the identity, so a skipped or misplaced transform would show in the logits."""
    with torch.no_grad():
        model.audio_transform.scale.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(2))
        model.audio_transform.shift.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
        model.text_transform.scale.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
        model.text_transform.shift.normal_(0, 0.1, generator=torch.Generator().manual_seed(6))


def hand_head(model, a, text_y):
    """float64 head logits of raw audio `a` and raw label text `text_y`, and of the audio alone."""
    d = lambda t: t.detach().double()  # noqa: E731
    w, b = d(model.head.weight), d(model.head.bias)
    ta = a * d(model.audio_transform.scale) + d(model.audio_transform.shift)
    tt = text_y * d(model.text_transform.scale) + d(model.text_transform.shift)
    return torch.cat([tt, ta]) @ w.t() + b, ta @ w.t() + b


def ce64(logits, labels):
    return -logits.log_softmax(-1)[torch.arange(len(labels)), labels].mean()


@pytest.mark.parametrize("variant", VARIANTS)
def test_head_weight_zero_is_the_base_method_bit_for_bit(tiny_backbone, variant, tmp_path):
    base, dept = learner(tiny_backbone, VARIANTS[variant]), learner(tiny_backbone, variant, dept_weight=0.0)
    x = audio(tiny_backbone)
    assert torch.equal(base.method_loss(base.forward_train(x), LABELS)[0],  # one step's loss, same forward values
                       dept.method_loss(dept.forward_train(x), LABELS)[0])
    fit(base, tmp_path, "base")
    fit(dept, tmp_path, "dept")
    shared = base.prompt_state()
    assert set(shared) < set(dept.prompt_state())  # ctx (+ meta-net) and DePT's own parts besides
    for k, v in shared.items():
        assert torch.equal(v, dept.prompt_state()[k]), k
    assert not torch.equal(dept.head.weight, learner(tiny_backbone, variant).head.weight), "the head trained"
    for names in (BASE, NEW):  # base: fused with w = 0; new: similarity only
        base.set_classnames(names)
        dept.set_classnames(names)
        assert torch.equal(base.predict_logits(x), dept.predict_logits(x))


def test_kgcoop_dept_fuses_and_keeps_the_knowledge_term_at_full_weight(tiny_backbone):
    model = learner(tiny_backbone, "kgcoop-dept", kg_weight=8.0)
    off_identity(model)
    x = audio(tiny_backbone)
    a = F.normalize(x.double(), dim=-1)
    with torch.no_grad():
        t = model.prompt_features(model.class_ids, model.class_mask).double()  # raw: the head's input
    z = F.normalize(t, dim=-1)
    sim = tiny_backbone.logit_scale() * a @ z.t()
    lp, head = hand_head(model, x.double(), t[LABELS])
    torch.testing.assert_close(model.predict_logits(x).double(), 0.3 * sim + 0.7 * head, atol=1e-4, rtol=1e-5)

    loss, parts = model.method_loss(model.forward_train(x), LABELS)
    kg = 1.0 - F.cosine_similarity(z, model.zeroshot_emb.double(), dim=-1).mean()
    ce, ce_head = ce64(sim, LABELS), ce64(lp, torch.cat([LABELS, LABELS]))
    assert parts["ce"].item() == pytest.approx(ce.item(), abs=1e-4)
    assert parts["head"].item() == pytest.approx(ce_head.item(), abs=1e-4)
    assert parts["kg"].item() == pytest.approx(kg.item(), abs=1e-5) and kg.item() > 1e-3
    assert loss.item() == pytest.approx((0.3 * ce + 0.7 * ce_head + 8.0 * kg).item(), abs=1e-4)


def test_cocoop_dept_fuses_per_clip_logits_and_feeds_each_clip_its_own_class_embedding(tiny_backbone):
    model = learner(tiny_backbone, "cocoop-dept")
    off_identity(model)
    with torch.no_grad():  # a sharp head: the tiny tower's per-clip class embeddings differ by ~1e-3 only
        model.head.weight.mul_(300.0)
    x = audio(tiny_backbone)
    a = F.normalize(x.double(), dim=-1)
    with torch.no_grad():  # the model's own instance-conditioned raw class embeddings [B, C, D], clip by clip
        t = torch.stack([model._chunk_features(a[i : i + 1].float())[0] for i in range(6)]).double()
    z = F.normalize(t, dim=-1)
    sim = tiny_backbone.logit_scale() * torch.einsum("bd,bcd->bc", a, z)
    lp, head = hand_head(model, x.double(), t[torch.arange(6), LABELS])
    torch.testing.assert_close(model.predict_logits(x).double(), 0.3 * sim + 0.7 * head, atol=1e-4, rtol=1e-5)

    loss, parts = model.method_loss(model.forward_train(x), LABELS)
    ce, ce_head = ce64(sim, LABELS), ce64(lp, torch.cat([LABELS, LABELS]))
    wrong, _ = hand_head(model, x.double(), t[LABELS, LABELS])  # clip y's embedding of class y: not this clip's own
    assert abs(ce64(wrong, torch.cat([LABELS, LABELS])) - ce_head) > 1e-2, "the check could not tell them apart"
    assert parts["ce"].item() == pytest.approx(ce.item(), abs=1e-4)
    assert parts["head"].item() == pytest.approx(ce_head.item(), abs=1e-4)
    assert loss.item() == pytest.approx((0.3 * ce + 0.7 * ce_head).item(), abs=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_new_classes_never_touch_the_head(tiny_backbone, variant):
    model, base = learner(tiny_backbone, variant), learner(tiny_backbone, VARIANTS[variant])
    with torch.no_grad():  # a poisoned head and transform: any use of them would turn the logits to NaN
        model.head.weight.fill_(float("nan"))
        model.audio_transform.shift.fill_(float("nan"))
    x = audio(tiny_backbone)
    for names in (NEW, NEW + ["vacuum cleaner"], BASE[:2]):  # even a subset of the base classes is not the head's
        model.set_classnames(names)
        base.set_classnames(names)
        assert torch.equal(model.predict_logits(x), base.predict_logits(x))
    model.set_classnames(BASE)
    assert torch.isnan(model.predict_logits(x)).all()  # the base classes do fuse the head


def test_cocoop_dept_meta_net_learns_at_the_prompts_rate(tiny_backbone):
    model = learner(tiny_backbone, "cocoop-dept", dept_lr_mult=6.5)
    groups = make_optimizer(model, TrainConfig(lr=0.01)).param_groups
    assert [g["lr"] for g in groups] == [0.01, pytest.approx(0.065)]
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in groups[0]["params"]) == sorted(
        ["ctx", "meta_net.0.weight", "meta_net.0.bias", "meta_net.2.weight", "meta_net.2.bias"])
    assert {names[id(p)].split(".")[0] for p in groups[1]["params"]} == {"text_transform", "audio_transform", "head"}


def test_cocoop_dept_checkpoint_keeps_prompt_and_meta_net_on_other_classes(tiny_backbone, tmp_path):
    model = learner(tiny_backbone, "cocoop-dept")
    with torch.no_grad():
        model.ctx.add_(0.3)
        model.meta_net[2].bias.add_(0.2)
    save_prompt(tmp_path / "p.safetensors", model.prompt_state(), "cocoop-dept", tiny_backbone.fingerprint)
    state = load_prompt(tmp_path / "p.safetensors", tiny_backbone.fingerprint, "cocoop-dept")
    assert {"ctx", "meta_net.2.bias", "head.weight", "head_classes"} <= set(state)
    other = build_learner(tiny_backbone, config("cocoop-dept"), TEMPLATES, 9)
    other.set_train_classes(NEW)  # a head over other classes: not the saved one
    other.load_prompt_state(state)
    assert other.head is None and torch.equal(other.meta_net[2].bias, model.meta_net[2].bias)
    other.set_classnames(NEW)
    model.set_classnames(NEW)
    assert torch.equal(other.predict_logits(audio(tiny_backbone)), model.predict_logits(audio(tiny_backbone)))


@pytest.mark.parametrize("method", ["dept", "cocoop-dept"])
def test_tune_runs_dept_with_sept_base_to_new(method, synth_spec, filled_cache, tiny_clap_dir, tmp_path, capsys):
    """End to end through `tune`: base classes fused with the head, new classes by similarity, SEPT on."""
    from pipeline.cli import main

    (spec, root), (cache, gkey) = synth_spec, filled_cache
    args = ["tune", "--dataset", spec, "--data-root", root, "--method", method, "--sept", "--protocol",
            "base2new", "--backbone", tiny_clap_dir, "--cache-dir", cache, "--shots", 2, "--out", tmp_path / "run",
            "--json", "--set", "train.epochs=2", "--set", "method.n_ctx=4", "--set", "backbone.device=cpu",
            "--set", f"sept.generation={gkey!r}", "--set", "text.templates=" + json.dumps(TEMPLATES)]
    with pytest.raises(SystemExit) as done:
        main(list(map(str, args)))
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    m = json.loads(out.out)
    assert m["method"] == method and m["sept"]["active"] and m["method_config"]["dept_weight"] == 0.7
    assert m["base"]["num_clips"] == 6 and m["new"]["num_clips"] == 6
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log and all({"ce", "head", "se"} <= set(r) for r in log)
    state = load_prompt(tmp_path / "run" / "prompt.safetensors", m["fingerprints"]["backbone"], method)
    assert state["head.weight"].shape == (3, 32) and "head_classes" in state
    assert ("meta_net.0.weight" in state) == (method == "cocoop-dept")
