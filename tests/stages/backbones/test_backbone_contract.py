"""The backbone contract, checked on every registered kind (a matrix over `known_kinds()`, as
tests/stages/tuning/test_learner_contract.py is over the method table).

A new kind passes this file without any edit here. Each kind is made offline as its record says (its random
maker at size 'tiny', else its first short id, which must then load offline: the packaged MiniLM for
text-dual) and loaded through `load_backbone`, the path a user's backbone takes. Checked on each: the
tokenize / encode shapes and dtypes, frozen towers (no grad, eval mode under a training parent, weights and
buffers unchanged by a real training step), a stable fingerprint (the same files give the same one, a changed
weight or another dtype another one) and CoOp initialised from the template's words reproducing the frozen
sentence embedding at step 0. Nothing is mocked.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone
from stages.backbones.fingerprint import backbone_fingerprint, weight_files
from stages.backbones.registry import CheckpointKind, get_kind, known_kinds, resolve_kind

KINDS = known_kinds()
CPU = BackboneConfig(device="cpu")
TEXTS = ["a sound of a dog.", "rain", "an audio recording of a hi-hat, live"]
NAMES = ["dog", "rain", "vacuum cleaner", "hi-hat"]
TEMPLATE = "a sound of a {}."


class Built:
    """One kind made offline: the spec a user would pass, the folder holding its weights, the loaded backbone."""

    def __init__(self, kind: str, root: Path):
        record = get_kind(kind)
        if record.makes_random:
            self.spec = str(record.make_random("tiny", 0, root / f"tiny-{kind}"))
        else:
            assert record.short_ids, f"kind {kind!r} has neither a random maker nor a short id to test it offline"
            self.spec = record.short_ids[0]
        self.kind = kind
        self.backbone = load_backbone(self.spec, CPU)

    @property
    def folder(self) -> Path:
        if isinstance(get_kind(self.kind), CheckpointKind):
            return Path(self.spec)
        from stages.backbones.locate import locate_model

        return locate_model(self.spec).folder


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """kind -> Built, each made on first use and shared by the whole session (read it, never change it)."""
    root = tmp_path_factory.mktemp("contract")
    cache: dict[str, Built] = {}

    def get(kind: str) -> Built:
        if kind not in cache:
            cache[kind] = Built(kind, root)
        return cache[kind]

    return get


def _items(backbone, n: int = 2) -> list:
    """n dataset items of the backbone's modality: a clip shorter and one longer than its clip length, or texts."""
    if backbone.item_modality == "text":
        return [f"item number {i}: a dog barks at the rain" for i in range(n)]
    rng = np.random.default_rng(0)
    lengths = [int(backbone.clip_samples * f) for f in np.linspace(0.3, 1.5, n)]
    return [0.1 * rng.standard_normal(length).astype(np.float32) for length in lengths]


def _encode_items(backbone, items) -> torch.Tensor:
    if backbone.item_modality == "text":
        return backbone.encode_item_texts(items)
    return backbone.encode_audio(items)


@pytest.mark.parametrize("kind", KINDS)
def test_the_record_names_what_it_loads(models, kind):
    built, record = models(kind), get_kind(kind)
    backbone = built.backbone
    assert resolve_kind(built.spec) == kind and backbone.kind == kind
    assert backbone.item_modality == record.item_modality
    assert backbone.fingerprint.startswith(f"{kind}:")
    if isinstance(record, CheckpointKind) and record.makes_random:
        assert (built.folder / record.checkpoint_name).is_file()


@pytest.mark.parametrize("kind", KINDS)
def test_tokenize_and_encode_shapes(models, kind):
    backbone = models(kind).backbone
    tok = backbone.tokenize(TEXTS)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    assert ids.dtype == mask.dtype == torch.long and ids.shape == mask.shape
    assert ids.shape[0] == len(TEXTS) and ids.shape[1] <= backbone.max_text_len
    embeds = backbone.token_embeddings(ids)
    assert embeds.shape == (*ids.shape, backbone.text_width)
    with torch.no_grad():
        z = backbone.encode_text_from_embeddings(embeds, ids, mask)
    assert z.shape == (len(TEXTS), backbone.embed_dim) and z.dtype == torch.float32 and torch.isfinite(z).all()
    torch.testing.assert_close(backbone.encode_text(TEXTS), z, atol=1e-6, rtol=0)  # the same path, batched
    items = _items(backbone)
    out = _encode_items(backbone, items)
    assert out.shape == (len(items), backbone.embed_dim) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(_encode_items(backbone, items), out)  # deterministic at evaluation
    assert np.isfinite(backbone.logit_scale()) and backbone.logit_scale() > 0


class _Parent(nn.Module):
    """What a prompt learner is to its backbone: a parent module whose .train() reaches every child."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone


@pytest.mark.parametrize("kind", KINDS)
def test_towers_stay_frozen_through_a_training_step(models, kind):
    from stages.tuning.config import MethodConfig, SeptConfig, TrainConfig
    from stages.tuning.learners import build_learner
    from stages.tuning.trainer import make_optimizer, training_step

    backbone = models(kind).backbone
    params = list(backbone.parameters())
    assert params and not any(p.requires_grad for p in params)
    towers = [m for m in backbone.modules() if m is not backbone]
    assert towers and not any(m.training for m in towers)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}  # weights and buffers (BatchNorm statistics)
    text, items = backbone.encode_text(TEXTS), _items(backbone)
    frozen_items = _encode_items(backbone, items)
    parent = _Parent(backbone)
    try:
        parent.train()
        assert backbone.training and not any(m.training for m in towers)  # requested, but the towers stay in eval
        assert torch.equal(backbone.encode_text(TEXTS), text)  # dropout off
        learner = build_learner(backbone, MethodConfig(name="coop", n_ctx=4), [TEMPLATE], seed=1)
        learner.set_train_classes(NAMES)
        learner.train()
        audio = _encode_items(backbone, items)  # the items, encoded while the learner trains
        assert torch.equal(audio, frozen_items)
        start = {k: v.detach().clone() for k, v in learner.named_parameters()}
        optimizer = make_optimizer(learner, TrainConfig(lr=0.05))
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        loss, _ = training_step(learner, audio, torch.arange(len(items)), None, SeptConfig(), optimizer, scaler, None)
        assert np.isfinite(loss)
    finally:
        parent.eval()
    after = backbone.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before), \
        "a frozen weight or buffer changed"
    assert not any(m.training for m in towers)
    assert any(not torch.equal(v, start[k]) for k, v in learner.named_parameters()), "the prompt did not move"


def _change_one_weight(weights: Path) -> None:
    """Add 0.01 to the first floating-point tensor of a .safetensors or .pth file, in place."""
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file, save_file

        state = load_file(weights)
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key] = state[key] + 0.01
        save_file(state, str(weights), metadata={"format": "pt"})
        return
    obj = torch.load(weights, map_location="cpu", weights_only=True)
    state = obj.get("model", obj)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] + 0.01
    torch.save(obj, weights)


@pytest.mark.parametrize("kind", KINDS)
def test_fingerprint_same_files_same_value_other_weights_or_dtype_another(models, kind, tmp_path):
    built = models(kind)
    fp = built.backbone.fingerprint
    assert backbone_fingerprint(built.spec, kind, tmp_path / "memo1") == fp  # fresh hash memo, same value
    assert backbone_fingerprint(built.spec, "auto", tmp_path / "memo2") == fp
    digest = fp.rsplit("@", 1)[1]

    copy = tmp_path / "elsewhere" / built.folder.name  # the same files under another path
    shutil.copytree(built.folder, copy)
    assert backbone_fingerprint(str(copy), kind, tmp_path / "memo1").rsplit("@", 1)[1] == digest
    if isinstance(get_kind(kind), CheckpointKind):
        from stages.backbones.checkpoint.files import local_checkpoint_file

        weights = local_checkpoint_file(copy)
    else:
        weights = weight_files(copy)[0]
    _change_one_weight(weights)
    changed = backbone_fingerprint(str(copy), kind, tmp_path / "memo1")
    assert changed.startswith(f"{kind}:") and changed.rsplit("@", 1)[1] != digest

    bf16 = backbone_fingerprint(built.spec, kind, tmp_path / "memo1", dtype="bfloat16")
    assert bf16 == f"{fp}+bfloat16"  # float32 names no dtype: the keys made before the dtype was in them
    loaded = load_backbone(built.spec, BackboneConfig(device="cpu", dtype="bfloat16"))
    assert loaded.dtype == torch.bfloat16 and loaded.fingerprint == bf16
    bf16_text = loaded.encode_text(TEXTS)
    assert bf16_text.dtype == torch.float32 and not torch.equal(bf16_text, built.backbone.encode_text(TEXTS))


@pytest.mark.parametrize("kind", KINDS)
def test_coop_from_the_template_words_is_the_frozen_sentence_at_step_0(models, kind):
    from stages.tuning.config import MethodConfig
    from stages.tuning.learners import build_learner

    backbone = models(kind).backbone
    learner = build_learner(backbone, MethodConfig(name="coop", ctx_init="a sound of a"), [TEMPLATE], seed=0)
    learner.set_classnames(NAMES)
    with torch.no_grad():
        z = learner.class_embeddings()
    frozen = torch.nn.functional.normalize(backbone.encode_text([TEMPLATE.format(c) for c in NAMES]), dim=-1)
    torch.testing.assert_close(z, frozen, atol=1e-5, rtol=0)
