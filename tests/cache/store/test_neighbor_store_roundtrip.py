"""Round trips and reuse: what goes in comes out (bit-exact), and nothing is stored twice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cache.errors import UserError
from cache.store import ClassNeighbors, MissingFromStore, NeighborStore, generation_key, template_id
from neighbor_store_kit import DIM, ENCODER, TEMPLATES, embed, item, provenance


def _files(store: NeighborStore) -> dict[str, bytes]:
    return {p.relative_to(store.root).as_posix(): p.read_bytes() for p in store.root.rglob("*") if p.is_file()}


def test_phrases_round_trip_in_rank_order_with_provenance(store):
    prov = provenance(num_neighbors=3)
    items = [
        ClassNeighbors(
            "dog bark", ["barking dog", "canine yelp", "woof"], prov, {"temperature": 0.0, "top_p": 1.0}, seed=7
        ),
        ClassNeighbors("rain", ["rainfall", "downpour"], prov, {"temperature": 0.8}, seed=[3, 4], rounds=2),
        ClassNeighbors("glass breaking", [], prov, {"temperature": 0.0}, seed=0, rounds=3),
    ]
    result = store.put_phrases(items)
    assert result.written == ["dog bark", "rain", "glass breaking"] and result.rows == 5
    key = prov.generation_key
    assert store.get_phrases(["rain", "dog bark", "glass breaking"], key) == {
        "rain": ["rainfall", "downpour"],
        "dog bark": ["barking dog", "canine yelp", "woof"],
        "glass breaking": [],
    }
    rows = {(r["class_name"], r["phrase"]): r for r in store.phrase_rows(generation_key=key)}
    r = rows[("rain", "downpour")]
    assert (r["rank"], r["seed"], r["llm_id"], r["engine"], r["engine_version"]) == (
        1,
        4,
        prov.llm_id,
        "vllm",
        "0.32.0",
    )
    assert (r["prompt_hash"], r["prompt_version"], r["llm_fingerprint"], r["llm_revision"]) == (
        prov.prompt_hash,
        prov.prompt_version,
        prov.llm_fingerprint,
        prov.llm_revision,
    )
    assert json.loads(r["sampling"]) == {"temperature": 0.8}
    assert r["created_at"].endswith("Z") and r["generation_key"] == key
    status = {s["class_name"]: s for s in store.class_status(None, key)}
    assert (status["dog bark"]["num_kept"], status["dog bark"]["short"]) == (3, False)
    assert (status["rain"]["num_kept"], status["rain"]["short"], status["rain"]["rounds"]) == (2, True, 2)
    assert (status["glass breaking"]["num_kept"], status["glass breaking"]["short"]) == (0, True)


def test_second_put_of_same_classes_writes_nothing(store):
    items = [item(i) for i in range(6)]
    store.put_phrases(items)
    before = _files(store)
    result = store.put_phrases(items)
    assert result.written == [] and result.skipped == [i.class_name for i in items] and result.rows == 0
    assert _files(store) == before  # not even the manifest was rewritten


def test_partial_overlap_writes_only_new_classes(store):
    store.put_phrases([item(i) for i in range(4)])
    result = store.put_phrases([item(i) for i in range(2, 7)])
    assert result.written == [item(i).class_name for i in range(4, 7)]
    assert result.skipped == [item(i).class_name for i in range(2, 4)]
    key = provenance().generation_key
    assert store.classes_present([item(i).class_name for i in range(9)], key) == {item(i).class_name for i in range(7)}


def test_generation_key_separates_llm_prompt_and_n(store):
    base = generation_key("llm-a", "prompt-1", 8)
    assert (
        len(
            {
                base,
                generation_key("llm-b", "prompt-1", 8),
                generation_key("llm-a", "prompt-2", 8),
                generation_key("llm-a", "prompt-1", 9),
            }
        )
        == 4
    )
    assert base == generation_key("llm-a", "prompt-1", 8)
    store.put_phrases([item(1)])
    other = provenance(prompt_hash="prompt-hash-2")
    assert store.classes_present([item(1).class_name], other.generation_key) == set()
    assert store.classes_present([item(1).class_name], provenance().generation_key) == {item(1).class_name}


def test_get_phrases_names_classes_never_generated(store):
    store.put_phrases([item(1)])
    key = provenance().generation_key
    with pytest.raises(MissingFromStore, match="never-seen") as err:
        store.get_phrases([item(1).class_name, "never-seen"], key)
    assert err.value.missing == ["never-seen"]
    assert store.get_phrases([item(1).class_name, "never-seen"], key, allow_missing=True) == {
        item(1).class_name: list(item(1).phrases)
    }


def test_generation_keys_and_keys_covering(store):
    store.put_phrases([item(i) for i in range(12)])
    other = provenance(prompt_hash="prompt-hash-2")
    store.put_phrases([ClassNeighbors("class 000", ["x"], other, {}, 0)])
    rows = {r["generation_key"]: r for r in store.generation_keys()}
    main = rows[provenance().generation_key]
    assert main["classes"] == 12
    assert main["phrases"] == sum(len(item(i).phrases) for i in range(12))
    assert main["short_classes"] == sorted(item(i).class_name for i in range(12) if item(i).short)
    assert rows[other.generation_key]["classes"] == 1
    assert store.keys_covering(["class 000", "class 005"]) == [provenance().generation_key]
    assert set(store.keys_covering(["class 000"])) == {provenance().generation_key, other.generation_key}


def test_invalid_items_are_rejected_before_anything_is_written(store):
    prov = provenance()
    with pytest.raises(ValueError, match="duplicate phrases"):
        ClassNeighbors("a", ["x", "x"], prov, {}, 0)
    with pytest.raises(ValueError, match="non-blank"):
        ClassNeighbors("  ", ["x"], prov, {}, 0)
    with pytest.raises(ValueError, match="seeds"):
        ClassNeighbors("a", ["x", "y"], prov, {}, [1])
    with pytest.raises(ValueError, match="twice"):
        store.put_phrases([item(1), item(1)])
    assert not store.root.exists()


def test_embeddings_round_trip_bit_exact(store):
    texts = ["dog bark", "barking dog", "woof"]
    vectors = embed(texts)
    # Values that a lossy path would change: negative zero, a subnormal, extremes, many significant bits.
    vectors[0, 0, :4] = np.array([-0.0, 1e-45, np.finfo(np.float32).max, np.float32(1) / 3], np.float32)
    result = store.put_embeddings(texts, TEMPLATES, ENCODER, vectors)
    assert (result.rows_written, result.texts_written, result.rows_skipped) == (9, 3, 0)
    got = store.get_embeddings(["woof", "dog bark"], TEMPLATES[::-1], ENCODER)
    assert got.dtype == np.float32 and got.shape == (2, 3, DIM)
    assert got.tobytes() == np.ascontiguousarray(vectors[[2, 0]][:, ::-1]).tobytes()


def test_second_put_of_same_embeddings_writes_nothing(store):
    texts = ["a", "b", "c"]
    store.put_embeddings(texts, TEMPLATES, ENCODER, embed(texts))
    before = _files(store)
    result = store.put_embeddings(texts, TEMPLATES, ENCODER, embed(texts))
    assert (result.rows_written, result.rows_skipped, result.index_rows) == (0, 9, 3)
    assert _files(store) == before


def test_missing_embeddings_counts_each_template(store):
    store.put_embeddings(["a", "b"], TEMPLATES[:2], ENCODER, embed(["a", "b"], TEMPLATES[:2]))
    assert store.missing_embeddings(["a", "c", "b", "a"], TEMPLATES[:2], ENCODER) == ["c"]
    assert store.missing_embeddings(["a", "b"], TEMPLATES, ENCODER) == ["a", "b"]  # third template lacking
    assert store.missing_embeddings(["a"], TEMPLATES[:1], "other-encoder") == ["a"]
    # Adding only the missing template completes both texts without rewriting the first two.
    result = store.put_embeddings(["a", "b"], TEMPLATES, ENCODER, embed(["a", "b"]))
    assert (result.rows_written, result.rows_skipped) == (2, 4)
    assert store.missing_embeddings(["a", "b"], TEMPLATES, ENCODER) == []


def test_duplicate_text_in_one_put_is_stored_once(store):
    vectors = embed(["a", "a"])
    vectors[1] = -vectors[1]
    result = store.put_embeddings(["a", "a"], TEMPLATES, ENCODER, vectors)
    assert result.rows_written == 3
    assert store.get_embeddings(["a"], TEMPLATES, ENCODER).tobytes() == vectors[:1].tobytes()
    assert store.verify() == []


def test_get_embeddings_lists_missing_texts(store):
    store.put_embeddings(["a"], TEMPLATES, ENCODER, embed(["a"]))
    with pytest.raises(MissingFromStore, match="'zzz'") as err:
        store.get_embeddings(["a", "zzz"], TEMPLATES, ENCODER)
    assert err.value.missing == ["zzz"] and "\n" not in str(err.value)
    with pytest.raises(MissingFromStore, match="no embeddings for encoder nope"):
        store.get_embeddings(["a"], TEMPLATES, "nope")


def test_embedding_checks(store):
    with pytest.raises(ValueError, match=r"\[len\(texts\)"):
        store.put_embeddings(["a"], TEMPLATES, ENCODER, np.zeros((1, 2, DIM), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        store.put_embeddings(["a"], TEMPLATES[:1], ENCODER, np.full((1, 1, DIM), np.nan, np.float32))
    with pytest.raises(ValueError, match="distinct"):
        store.put_embeddings(["a"], [TEMPLATES[0]] * 2, ENCODER, np.zeros((1, 2, DIM), np.float32))
    store.put_embeddings(["a"], TEMPLATES, ENCODER, embed(["a"]))
    with pytest.raises(UserError, match=f"{DIM}-d"):
        store.put_embeddings(["b"], TEMPLATES, ENCODER, np.ones((1, 3, DIM + 1), np.float32))


def test_template_id_is_the_template_text():
    assert template_id("a sound of a {}.") == template_id("a sound of a {}.")
    assert template_id("a sound of a {}.") != template_id("a sound of a {} .")


def test_empty_puts_create_nothing(store):
    assert store.put_phrases([]).written == []
    assert store.put_embeddings([], TEMPLATES, ENCODER, np.zeros((0, 3, DIM), np.float32)).rows_written == 0
    assert not store.root.exists()
