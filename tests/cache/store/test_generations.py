"""Which generation a run means, answered by the store alone: names, "auto", keys (cache/store/generations.py),
and a whole generation published by one manifest commit (put_generation)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from cache.errors import UserError
from cache.store import ClassNeighbors, NeighborStore
from cache.store.generations import check_name, classes_lacking
from neighbor_store_kit import DIM, ENCODER, TEMPLATES, embed, provenance

CLASSES = ["dog", "rain", "bell"]


def items(prov, classes=CLASSES, tag=""):
    return [ClassNeighbors(c, [f"{tag}{c} one", f"{tag}{c} two"], prov, {}, 0) for c in classes]


def texts_of(its):
    return list(dict.fromkeys([i.class_name for i in its] + [p for i in its for p in i.phrases]))


def fill(store, prov, classes=CLASSES, tag="", name=None, encoder=ENCODER):
    its = items(prov, classes, tag)
    store.put_phrases(its, name=name)
    texts = texts_of(its)
    store.put_embeddings(texts, TEMPLATES, encoder, embed(texts))
    return prov.generation_key


def manifest_json(store):
    return json.loads((store.root / "manifest.json").read_text())


def test_names_follow_a_rule_that_keys_and_auto_cannot_match():
    assert check_name("qwen7b-v3") == "qwen7b-v3" and check_name("cupl.gpt4o_2+x") == "cupl.gpt4o_2+x"
    for bad in ["auto", "3f2a9c01d4e5b6a7", "7b-qwen", "", "a b", "x" * 65, "émile", "name/slash"]:
        with pytest.raises(UserError, match="a generation name is a letter"):
            check_name(bad)


def test_a_name_is_committed_with_the_phrases_and_is_unique(tmp_path):
    store = NeighborStore(tmp_path / "s")
    prov = provenance()
    store.put_phrases(items(prov), name="first")
    m = manifest_json(store)
    # One commit (the first; 0 is the empty store) wrote the phrases and the name.
    assert m["commit"] == 1 and {p["table"] for p in m["parts"]} == {"phrases", "classes"}
    assert m["names"] == [{"name": "first", "generation_key": prov.generation_key,
                           "created_at": m["names"][0]["created_at"]}]
    assert store.names() == {"first": prov.generation_key}

    other = provenance(prompt_hash="prompt-hash-2")
    with pytest.raises(UserError, match=r"--name first: already names generation .* pass --force-name"):
        store.put_phrases(items(other), name="first")
    assert store.classes_present(CLASSES, other.generation_key) == set()  # refused whole: nothing written
    assert store.name_generation("first", prov.generation_key) is False  # already its name: no commit
    assert store.put_phrases(items(other), name="first", force_name=True).written == CLASSES
    assert store.names() == {"first": other.generation_key}
    assert store.name_generation("second", prov.generation_key) is True  # a key may have several names
    assert store.name_generation("third", prov.generation_key) is True
    assert store.manifest().names_of(prov.generation_key) == ["second", "third"]
    with pytest.raises(UserError, match="generation key nope is not in the store"):
        store.name_generation("fourth", "nope")


def test_names_survive_compaction_and_repair(tmp_path):
    store = NeighborStore(tmp_path / "s")
    prov = provenance()
    for i in range(12):  # past MAX_PARTS: the phrases parts are compacted
        store.put_phrases(items(prov, [f"class {i}"]), name="kept" if i == 0 else None)
    assert store.names() == {"kept": prov.generation_key}
    store.repair()
    assert store.names() == {"kept": prov.generation_key} and not store.verify()


def test_auto_is_the_one_generation_storing_and_embedding_every_class(tmp_path):
    store = NeighborStore(tmp_path / "s")
    a = fill(store, provenance(), name="alpha")
    # Another generation covers only two of the classes: auto still means alpha.
    fill(store, provenance(prompt_hash="p2"), classes=CLASSES[:2], tag="b ")
    chosen = store.resolve_generation("auto", CLASSES, TEMPLATES, ENCODER)
    assert (chosen.key, chosen.how, chosen.name) == (a, "auto", "alpha")
    assert chosen.record() == {"generation": "auto", "generation_key": a, "generation_name": "alpha",
                               "generation_names": ["alpha"], "generation_chosen_by": "auto"}
    # By name and by key.
    assert store.resolve_generation("alpha", CLASSES, TEMPLATES, ENCODER).how == "name"
    assert store.resolve_generation(a, CLASSES, TEMPLATES, ENCODER).how == "key"
    # A third generation stores every class but has no embedding for this encoder: still not a candidate.
    c = provenance(prompt_hash="p3")
    store.put_phrases(items(c, tag="c "))
    assert store.resolve_generation("auto", CLASSES, TEMPLATES, ENCODER).key == a
    # Once embedded it qualifies too: the error lists both with LLM, prompt and date, and asks for one.
    texts = texts_of(items(c, tag="c "))
    store.put_embeddings(texts, TEMPLATES, ENCODER, embed(texts))
    with pytest.raises(UserError) as err:
        store.resolve_generation("auto", CLASSES, TEMPLATES, ENCODER)
    msg = str(err.value)
    assert "2 generations" in msg and a in msg and c.generation_key in msg and "(name 'alpha')" in msg
    assert "llm HuggingFaceTB/SmolLM2-135M-Instruct via vllm, prompt neighbors_v1 p3" in msg
    assert "choose one with --set sept.generation=KEY or =NAME" in msg and "\n" not in msg


def test_auto_says_which_classes_are_missing_and_how_to_add_them(tmp_path):
    store = NeighborStore(tmp_path / "s")

    def fix(key):
        return "`GENERATE`" if key is None else f"`ENCODE {key}`"

    with pytest.raises(UserError, match=r"holds no generation; fill the gap with `GENERATE`"):
        store.resolve_generation("auto", CLASSES, TEMPLATES, ENCODER, fix)
    a = fill(store, provenance(), classes=CLASSES[:2])
    with pytest.raises(UserError, match=r"no generation .* stores all 4 classes; the closest, .* lacks 2: 'bell', "
                                        r"'owl'; fill the gap with `GENERATE`"):
        store.resolve_generation("auto", CLASSES + ["owl"], TEMPLATES, ENCODER, fix)
    with pytest.raises(UserError, match=rf"stores all 2 classes, but texts of 2 of them .* have no frozen embedding "
                                        rf"for encoder other-encoder under all 3 templates; fill the gap with "
                                        rf"`ENCODE {a}`"):
        store.resolve_generation("auto", CLASSES[:2], TEMPLATES, "other-encoder", fix)
    with pytest.raises(UserError, match=r"sept.generation 'nope': neither a name nor a generation key in the store "
                                        rf".*keys: '{a}'"):
        store.resolve_generation("nope", CLASSES, TEMPLATES, ENCODER, fix)
    # Without classes (export, encode, --like), auto is the store's only generation.
    assert store.resolve_generation("auto", [], [], "").key == a
    fill(store, provenance(prompt_hash="p2"), tag="b ")
    with pytest.raises(UserError, match=r"--generation auto: the store .* holds 2 generations \(.*\); give a key"):
        store.resolve_generation("auto", [], [], "", where="--generation")


def test_classes_lacking_counts_a_missing_phrase_embedding(tmp_path):
    store = NeighborStore(tmp_path / "s")
    prov = provenance()
    its = items(prov)
    store.put_phrases(its)
    texts = [t for t in texts_of(its) if t != "rain two"]
    store.put_embeddings(texts, TEMPLATES, ENCODER, embed(texts))
    assert classes_lacking(store, CLASSES + ["owl"], prov.generation_key, TEMPLATES, ENCODER) == ["rain", "owl"]


def test_put_generation_publishes_phrases_embeddings_and_name_in_one_commit(tmp_path):
    store = NeighborStore(tmp_path / "s")
    fill(store, provenance())  # an encoder and an index exist already
    before = manifest_json(store)["commit"]
    prov = replace(provenance(), llm_fingerprint="imported")
    its = items(prov, tag="new ")
    texts = texts_of(its)
    new = [t for t in texts if t not in CLASSES]  # class names are stored already: only the phrases are new
    phrases, emb = store.put_generation(its, new, TEMPLATES, ENCODER, embed(new), name="imported")
    m = manifest_json(store)
    assert m["commit"] == before + 1
    assert phrases.written == CLASSES and emb.rows_written == len(new) * len(TEMPLATES)
    assert store.names()["imported"] == prov.generation_key
    np.testing.assert_array_equal(store.get_embeddings(texts, TEMPLATES, ENCODER), embed(texts))
    assert emb.index_rows == len(set(texts_of(items(provenance())) + texts)) and not store.verify()
    # Nothing new: no commit at all.
    store.put_generation(its, [], TEMPLATES, ENCODER, np.zeros((0, len(TEMPLATES), DIM), np.float32),
                         name="imported")
    assert manifest_json(store)["commit"] == before + 1
