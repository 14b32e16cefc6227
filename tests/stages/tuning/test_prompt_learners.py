"""Prompt learners on the tiny random CLAP: step-0 equivalence, layout, what is saved, CoCoOp and KgCoOp."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cache.errors import UserError
from stages.tuning.config import MethodConfig
from stages.tuning.learners import build_learner
from stages.tuning.methods import method_names
from stages.zeroshot import zeroshot_class_embeddings

from tuning_kit import CLASSES

INIT = "a sound of a"
TEMPLATE = "a sound of a {}."
# Names of different token lengths (the batch is padded) including punctuation.
NAMES = CLASSES + ["vacuum cleaner", "hi-hat", "rock 'n' roll, live"]


def frozen_sentence_embeddings(backbone, texts):
    """ClapModel's own forward on the token ids (not our adapter's embedding path), L2-normalised."""
    tok = backbone.tokenize(texts)
    with torch.no_grad():
        return backbone.clap.get_text_features(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output


@pytest.mark.parametrize("method", ["coop", "kgcoop", "cocoop"])
def test_context_from_template_words_equals_frozen_sentence_at_step_0(tiny_backbone, method):
    learner = build_learner(tiny_backbone, MethodConfig(name=method, ctx_init=INIT), [TEMPLATE], seed=0)
    learner.set_classnames(NAMES)
    with torch.no_grad():
        z = learner.class_embeddings()
    ref = frozen_sentence_embeddings(tiny_backbone, [TEMPLATE.format(c) for c in NAMES])
    torch.testing.assert_close(z, ref, atol=1e-5, rtol=0)
    # The prompt ids are token for token the template sentence's ids.
    tok = tiny_backbone.tokenize([TEMPLATE.format(c) for c in NAMES])
    torch.testing.assert_close(learner.class_ids, tok["input_ids"].cpu())


def test_zeroshot_and_coop_agree_at_step_0(tiny_backbone):
    zs = build_learner(tiny_backbone, MethodConfig(name="zeroshot"), [TEMPLATE], seed=0)
    coop = build_learner(tiny_backbone, MethodConfig(name="coop", ctx_init=INIT), [TEMPLATE], seed=0)
    zs.set_classnames(NAMES)
    coop.set_classnames(NAMES)
    audio = torch.randn(20, tiny_backbone.embed_dim, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(zs.predict_logits(audio), coop.predict_logits(audio), atol=1e-4, rtol=0)
    assert torch.equal(zs.predict_logits(audio).argmax(1), coop.predict_logits(audio).argmax(1))


def test_random_context_layout_keeps_class_tokens_and_pooling_ids(tiny_backbone):
    learner = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=16), [TEMPLATE], seed=0)
    learner.set_classnames(NAMES)
    assert learner.ctx.shape == (16, tiny_backbone.text_width)
    assert 0.015 < learner.ctx.std().item() < 0.025 and abs(learner.ctx.mean().item()) < 0.005
    ref = tiny_backbone.tokenize([TEMPLATE.format(c) for c in NAMES])
    for row, ids, mask in zip(range(len(NAMES)), learner.class_ids, learner.class_mask):
        n = int(mask.sum())
        sentence = ref["input_ids"][row][ref["attention_mask"][row].bool()].tolist()
        # <s> + 16 slots + the same class-name tokens, '.', </s> as in the template sentence.
        assert ids[0].item() == sentence[0] and n == 1 + 16 + (len(sentence) - 5)
        assert ids[17:n].tolist() == sentence[5:]
    # Same seed -> same context; another seed -> another.
    again = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=16), [TEMPLATE], seed=0)
    other = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=16), [TEMPLATE], seed=1)
    assert torch.equal(again.ctx, learner.ctx) and not torch.equal(other.ctx, learner.ctx)


def test_context_too_long_for_the_tower_is_a_user_error(tiny_backbone):
    learner = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=tiny_backbone.max_text_len), [TEMPLATE], 0)
    with pytest.raises(UserError, match=r"method\.n_ctx: \d+ context tokens plus the class name 'dog bark'"):
        learner.set_classnames(["dog bark"])


def test_unknown_method_is_a_user_error(tiny_backbone):
    with pytest.raises(UserError, match="method.name: 'coopp' is not one of " + ", ".join(method_names())):
        MethodConfig(name="coopp")
    assert {"zeroshot", "coop", "cocoop", "kgcoop"} <= set(method_names())


@pytest.mark.parametrize("method,names", [("coop", ["ctx"]), ("kgcoop", ["ctx"]),
                                          ("cocoop", ["ctx", "meta_net.0.bias", "meta_net.0.weight",
                                                      "meta_net.2.bias", "meta_net.2.weight"])])
def test_only_prompt_parameters_are_state_and_they_transfer_to_other_classes(tiny_backbone, method, names):
    base = build_learner(tiny_backbone, MethodConfig(name=method, n_ctx=4), [TEMPLATE], seed=0)
    base.set_classnames(CLASSES[:3])
    assert sorted(base.prompt_state()) == names
    assert sorted(base.state_dict()) == names  # class ids, masks, zero-shot embeddings are not saved
    assert not any(p.requires_grad for p in tiny_backbone.parameters())
    with torch.no_grad():
        base.ctx.add_(0.5)
    new = build_learner(tiny_backbone, MethodConfig(name=method, n_ctx=4), [TEMPLATE], seed=1)
    new.set_classnames(CLASSES[3:] + ["vacuum cleaner"])
    new.load_prompt_state(base.prompt_state())
    assert torch.equal(new.ctx, base.ctx)
    audio = torch.randn(3, tiny_backbone.embed_dim)
    assert new.predict_logits(audio).shape == (3, 4)


def test_cocoop_logits_match_a_hand_built_instance_prompt_and_chunking_is_exact(tiny_backbone):
    cfg = MethodConfig(name="cocoop", n_ctx=4, cocoop_chunk=2)
    learner = build_learner(tiny_backbone, cfg, [TEMPLATE], seed=0)
    learner.set_classnames(CLASSES)
    audio = torch.randn(5, tiny_backbone.embed_dim, generator=torch.Generator().manual_seed(1))
    logits = learner.predict_logits(audio)
    # Clip 3 by hand: context + meta-net bias, through the prompt path, cosine with the clip, times the scale.
    a = F.normalize(audio[3], dim=-1)
    bias = learner.meta_net[2](torch.relu(learner.meta_net[0](a)))
    with torch.no_grad():
        z = learner.encode_prompts(learner.class_ids, learner.class_mask, learner.ctx + bias)
    torch.testing.assert_close(logits[3], tiny_backbone.logit_scale() * z @ a, atol=1e-5, rtol=0)

    # Training path: activation checkpointing gives the same values and gradients as no checkpointing.
    labels = torch.tensor([0, 1, 2, 3, 4])
    learner.zero_grad()
    F.cross_entropy(learner.logits(learner.forward_train(audio)), labels).backward()
    grads = {k: p.grad.clone() for k, p in learner.named_parameters()}
    learner.zero_grad()
    F.cross_entropy(learner._logits(audio, recompute=False), labels).backward()
    for k, p in learner.named_parameters():
        torch.testing.assert_close(p.grad, grads[k], atol=1e-6, rtol=1e-5)
        assert grads[k].abs().sum() > 0, k


def test_kgcoop_term_is_one_minus_mean_cosine_to_zero_shot(tiny_backbone):
    templates = [TEMPLATE, "the sound of {}."]
    learner = build_learner(tiny_backbone, MethodConfig(name="kgcoop", n_ctx=4), templates, seed=0)
    learner.set_classnames(CLASSES)
    out = learner.forward_train(torch.randn(4, tiny_backbone.embed_dim))
    loss, parts = learner.method_loss(out, torch.tensor([0, 1, 2, 3]))
    zs = zeroshot_class_embeddings(tiny_backbone, CLASSES, templates)
    expected_kg = 1.0 - F.cosine_similarity(learner.class_embeddings().detach(), zs, dim=-1).mean()
    assert parts["kg"].item() == pytest.approx(expected_kg.item(), abs=1e-6)
    assert loss.item() == pytest.approx(parts["ce"].item() + 8.0 * expected_kg.item(), abs=1e-5)
    assert parts["kg"].item() > 0  # a random context differs from the zero-shot embeddings


def test_kgcoop_original_takes_its_reference_from_one_template(tiny_backbone):
    from pipeline.config_loader import load_config

    cfg = load_config(recipe="kgcoop-original")
    assert len(cfg.text.templates) == 8 and cfg.method.kg_templates == ["a sound of a {}."]
    method = dataclasses.replace(cfg.method, name="kgcoop")
    learner = build_learner(tiny_backbone, method, cfg.text.templates, seed=0, logit_scale=cfg.train.logit_scale)
    learner.set_classnames(CLASSES)
    # The reference is the frozen sentence "a sound of a {c}." itself, not the 8-template mean.
    with torch.no_grad():
        one = F.normalize(tiny_backbone.encode_text([f"a sound of a {c}." for c in CLASSES]).float(), dim=-1)
    torch.testing.assert_close(learner.zeroshot_emb, one, atol=1e-6, rtol=0)
    mean8 = zeroshot_class_embeddings(tiny_backbone, CLASSES, cfg.text.templates)
    assert (learner.zeroshot_emb - mean8).abs().max() > 1e-3
    # Context from the same words: at step 0 the prompts are that sentence, so KgCoOp's term is 0.
    out = learner.forward_train(torch.randn(2, tiny_backbone.embed_dim))
    _, parts = learner.method_loss(out, torch.tensor([0, 1]))
    assert parts["kg"].item() == pytest.approx(0.0, abs=1e-5)
    assert learner.logit_scale() == pytest.approx(tiny_backbone.logit_scale())  # "checkpoint"
    # An empty list keeps the [text] templates' mean (the default).
    default = build_learner(tiny_backbone, dataclasses.replace(method, kg_templates=[]), cfg.text.templates, 0)
    default.set_classnames(CLASSES)
    torch.testing.assert_close(default.zeroshot_emb, mean8)


def test_logit_scale_is_fixed_or_the_checkpoints(tiny_backbone):
    fixed = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=4), [TEMPLATE], 0, logit_scale=100.0)
    own = build_learner(tiny_backbone, MethodConfig(name="coop", n_ctx=4), [TEMPLATE], 0)
    for learner in (fixed, own):
        learner.set_classnames(CLASSES)
    audio = torch.randn(3, tiny_backbone.embed_dim)
    assert fixed.logit_scale() == 100.0 and own.logit_scale() == pytest.approx(1 / 0.07)
    torch.testing.assert_close(fixed.predict_logits(audio), own.predict_logits(audio) * 100.0 * 0.07)
