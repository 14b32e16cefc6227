"""Losses in float32 under autocast: the towers may run in bf16, the logits, KgCoOp's term, DePT's transforms
and head, and L_se may not.

Each check runs one real `training_step` (bank draw, scatter, margin gather, the learner's own forward)
with CPU bf16 autocast, and compares the step's reported loss parts with a float64 computation on the
very embeddings that step produced. The forward is wrapped only to record what it returned and whether
autocast was on while it ran; it is the learner's real forward.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stages.tuning.config import SeptConfig
from stages.tuning.trainer import amp_settings, make_optimizer, training_step
from stages.zeroshot import zeroshot_class_embeddings

from test_trainer import BASE, TRAIN, fresh, make_bank, make_data
from tuning_kit import TEMPLATES

SEPT = SeptConfig(enabled=True, neighbors_per_step=3)  # a sampled draw: the gather of margins matters


def record_forward(learner) -> dict:
    seen = {}
    real = learner.forward_train

    def recording(*args, **kwargs):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["kwargs"] = kwargs
        seen["out"] = real(*args, **kwargs)
        return seen["out"]

    learner.forward_train = recording  # an instance attribute: shadows the method for this learner only
    return seen


def stored_index(bank, j: int, row: torch.Tensor) -> int:
    """Which of class j's stored neighbors a drawn prompt-id row is (the draw keeps no index)."""
    hits = [n for n in range(int(bank.counts[j])) if torch.equal(bank.ids[j, n, : row.shape[0]], row)]
    assert len(hits) == 1
    return hits[0]


def sept_reference(z: torch.Tensor, p: torch.Tensor, draw, bank, alpha=1.0, beta=1.0) -> float:
    """L_se in float64, term by term: d(z_i, p) against m[i, j, n] of the stored neighbor n that was drawn."""
    z, p = z.detach().double(), p.detach().double()
    intra, inter = [], []
    at = 0
    for j in range(draw.valid.shape[0]):
        for _ in range(int(draw.valid[j].sum())):
            n = stored_index(bank, j, draw.ids[at])
            for i in range(z.shape[0]):
                d = torch.linalg.vector_norm(z[i] - p[at])
                m = bank.margins[i, j, n].double()
                (intra if i == j else inter).append(torch.relu(d - m) if i == j else torch.relu(m - d))
            at += 1
    assert at == p.shape[0]
    return float(alpha * torch.stack(intra).mean() + beta * torch.stack(inter).mean())


def one_step(learner, bank, caller_autocast: bool):
    data = make_data(learner.backbone)
    audio, labels = data.features[:6], data.labels[:6]
    draw = bank.sample(torch.Generator().manual_seed(3))
    seen = record_forward(learner)
    optimizer = make_optimizer(learner, TRAIN)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    if caller_autocast:  # the caller's own autocast around the step; the trainer itself asks for none
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, parts = training_step(learner, audio, labels, draw, SEPT, optimizer, scaler, None)
    else:  # train.amp = "bf16" on the CPU
        amp_dtype, use_scaler = amp_settings(torch.device("cpu"), "bf16")
        assert amp_dtype is torch.bfloat16 and not use_scaler
        loss, parts = training_step(learner, audio, labels, draw, SEPT, optimizer, scaler, amp_dtype)
    assert seen["autocast"], "the towers did not run under autocast: the check would prove nothing"
    parts["loss"] = loss
    return seen["out"], parts, audio, labels, draw


@pytest.mark.parametrize("caller_autocast", [False, True])
@pytest.mark.parametrize("method", ["coop", "kgcoop", "cocoop", "dept", "kgcoop-dept", "cocoop-dept"])
def test_step_losses_equal_float64_reference_under_bf16_autocast(tiny_backbone, filled_cache, method,
                                                                 caller_autocast):
    learner = fresh(tiny_backbone, method)
    bank = make_bank(tiny_backbone, learner, *filled_cache, per_step=3)
    dept = method.endswith("dept")
    if dept:  # transforms off the identity, so a transform skipped or run in bf16 would show
        g = torch.Generator().manual_seed(2)
        with torch.no_grad():
            for t in (learner.text_transform, learner.audio_transform):
                t.scale.uniform_(0.5, 1.5, generator=g)
                t.shift.normal_(0.0, 0.1, generator=g)
        params_before = {k: v.detach().double().clone() for k, v in learner.named_parameters() if k != "ctx"}
    out, parts, audio, labels, draw = one_step(learner, bank, caller_autocast)

    # L_se through the real glue, against float64 on the learner's own z and p.
    reference = sept_reference(out.z, out.p, draw, bank)
    assert parts["se"] == pytest.approx(reference, abs=1e-5, rel=0)

    # Cross-entropy of scale * cos(audio, text) in float64 on the same embeddings.
    a = F.normalize(audio.double(), dim=-1)
    text = out.text.detach().double()
    cos = a @ text.t() if text.ndim == 2 else torch.einsum("bd,bcd->bc", a, text)
    ce = F.cross_entropy(learner.logit_scale() * cos, labels)
    assert parts["ce"] == pytest.approx(float(ce), abs=1e-5, rel=0)

    kg_term = 0.0
    if method.startswith("kgcoop"):
        zs = zeroshot_class_embeddings(tiny_backbone, BASE, TEMPLATES).double()
        kg = 1.0 - F.cosine_similarity(out.z.detach().double(), zs, dim=-1).mean()
        assert parts["kg"] == pytest.approx(float(kg), abs=1e-5, rel=0)
        kg_term = learner.kg_weight * float(kg)

    if dept:  # the head's CE over [T_t(raw text_y); T_a(raw audio)], with the parameters the step started from
        q = params_before
        raw = out.text_raw.detach().double()
        torch.testing.assert_close(F.normalize(raw, dim=-1), text, atol=1e-6, rtol=0)  # the same tower outputs
        text_y = raw[labels] if raw.ndim == 2 else raw[torch.arange(len(labels)), labels]  # CoCoOp: per clip
        feats = torch.cat([text_y * q["text_transform.scale"] + q["text_transform.shift"],
                           audio.double() * q["audio_transform.scale"] + q["audio_transform.shift"]])
        head = F.cross_entropy(feats @ q["head.weight"].t() + q["head.bias"], torch.cat([labels, labels]))
        assert parts["head"] == pytest.approx(float(head), abs=2e-6, rel=0)  # float32 is off by ~5e-8 here
        w = learner.weight
        total = (1 - w) * float(ce) + w * float(head) + kg_term + SEPT.lam * reference
        assert parts["loss"] == pytest.approx(total, abs=1e-5, rel=0)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # the head in bf16, for contrast
            low_head = F.cross_entropy(feats.float() @ q["head.weight"].float().t() + q["head.bias"].float(),
                                       torch.cat([labels, labels]))
        assert abs(float(low_head) - float(head)) > 2e-6  # the tolerance above tells the two apart

    # What bf16 would have given: the tolerance above is tight enough to tell the two apart.
    from stages.tuning.neighbor_bank import scatter_draws
    from stages.tuning.sept_loss import semantic_expansion_loss

    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = semantic_expansion_loss(out.z, scatter_draws(out.p, draw.valid), draw.valid, draw.margins).total
    assert abs(float(low) - reference) > 1e-4


def test_the_trainer_passes_cocoop_bias_to_the_forward(tiny_backbone, filled_cache):
    learner = fresh(tiny_backbone, "cocoop")
    bank = make_bank(tiny_backbone, learner, *filled_cache, per_step=3)
    seen = record_forward(learner)
    data = make_data(tiny_backbone)
    sept = SeptConfig(enabled=True, cocoop_bias="batch_mean")
    training_step(learner, data.features[:4], data.labels[:4], bank.sample(torch.Generator()), sept,
                  make_optimizer(learner, TRAIN), torch.amp.GradScaler("cuda", enabled=False), None)
    assert seen["kwargs"]["cocoop_bias"] == "batch_mean"
