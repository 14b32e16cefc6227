"""The FAISS index: hand-worked nearest neighbors, template means checked independently, rebuilds."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cache.errors import UserError
from cache.store import MissingFromStore
from neighbor_store_kit import DIM, ENCODER, TEMPLATES, embed

T2 = TEMPLATES[:2]


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def _hand_store(store):
    """Four texts in 3-d whose template means point along known directions."""
    # Per text, two template vectors whose normalised mean is the direction in the comment.
    vecs = {
        "dog bark": ([1, 0.2, 0], [1, -0.2, 0]),  # +x
        "barking dog": ([0.9, 0.5, 0], [0.9, 0.3, 0]),  # mostly +x, a little +y
        "rain": ([0.1, 1, 0.1], [0.1, 1, -0.1]),  # +y, leaning a little to +x
        "thunder": ([-0.1, 0.2, 1], [-0.1, -0.2, 1]),  # +z, leaning a little to -x
    }
    texts = list(vecs)
    arr = np.array([[_unit(a), _unit(b)] for a, b in vecs.values()], np.float32)
    store.put_embeddings(texts, T2, ENCODER, arr)
    return texts, arr


def test_search_returns_the_hand_worked_nearest(store):
    texts, arr = _hand_store(store)
    hits = store.search(ENCODER, np.array([[1.0, 0.05, 0.0], [0.1, 0.0, 1.0]]), k=2)
    assert [t for t, _ in hits[0]] == ["dog bark", "barking dog"]
    assert hits[1][0][0] == "thunder"
    # Scores are cosines against normalize(mean of the unit template vectors), computed here in float64.
    means = {t: _unit(arr[i].astype(np.float64).mean(0)) for i, t in enumerate(texts)}
    q = _unit([1.0, 0.05, 0.0])
    for text, score in hits[0]:
        assert score == pytest.approx(float(q @ means[text]), abs=1e-6)


def test_search_k_larger_than_index(store):
    _hand_store(store)
    hits = store.search(ENCODER, np.array([0.0, 1.0, 0.0]), k=50)
    assert len(hits) == 1 and len(hits[0]) == 4 and hits[0][0][0] == "rain"
    assert [s for _, s in hits[0]] == sorted((s for _, s in hits[0]), reverse=True)


def test_nearest_excludes_self_and_respects_candidates(store):
    _hand_store(store)
    (hits,) = store.nearest(ENCODER, ["dog bark"], k=2)
    assert [t for t, _ in hits] == ["barking dog", "rain"]
    (hits,) = store.nearest(ENCODER, ["dog bark"], k=1, among=["rain", "thunder"])
    assert [t for t, _ in hits] == ["rain"]
    (hits,) = store.nearest(ENCODER, ["dog bark"], k=3, among=["thunder"])
    assert [t for t, _ in hits] == ["thunder"]  # closer texts outside `among` are not returned
    with pytest.raises(MissingFromStore, match="'cat'"):
        store.nearest(ENCODER, ["cat"], k=1)


def test_index_is_rebuilt_when_embeddings_are_added(store):
    texts = [f"t{i}" for i in range(5)]
    assert store.put_embeddings(texts, TEMPLATES, ENCODER, embed(texts)).index_rows == 5
    more = [f"u{i}" for i in range(3)]
    assert store.put_embeddings(more, TEMPLATES, ENCODER, embed(more)).index_rows == 8
    (entry,) = store.indexes(ENCODER)
    assert entry.rows == 8 and entry.dim == DIM
    # A stored text's own template mean finds itself first, with cosine 1.
    query = embed(["u1"]).astype(np.float64).mean(1)
    (hits,) = store.search(ENCODER, query, k=1)
    assert hits[0][0] == "u1" and hits[0][1] == pytest.approx(1.0, abs=1e-6)
    assert store.verify() == []
    # Old index files are gone: only the committed ones remain on disk.
    on_disk = sorted(p.relative_to(store.root).as_posix() for p in (store.root / "index").rglob("*") if p.is_file())
    assert on_disk == sorted(entry.files())


def test_texts_missing_a_template_stay_out_of_that_index(store):
    store.put_embeddings(["a", "b"], TEMPLATES, ENCODER, embed(["a", "b"]))
    store.put_embeddings(["c"], T2, ENCODER, embed(["c"], T2))
    by_size = {len(e.templates): e.rows for e in store.indexes(ENCODER)}
    assert by_size == {3: 2, 2: 3}
    with pytest.raises(UserError, match="pass the templates"):
        store.search(ENCODER, np.ones(DIM), k=1)
    assert store.search(ENCODER, embed(["c"], T2).mean(1), k=1, templates=T2)[0][0][0] == "c"
    assert "c" not in [t for t, _ in store.search(ENCODER, embed(["c"], T2).mean(1), k=5, templates=TEMPLATES)[0]]
    assert store.verify() == []


def test_unknown_encoder_is_a_clear_error(store):
    _hand_store(store)
    with pytest.raises(MissingFromStore, match="no FAISS index .* for encoder other"):
        store.search("other", np.ones(3), k=1)


def test_reading_phrases_and_embeddings_never_imports_faiss(store):
    from neighbor_store_kit import item, provenance

    store.put_phrases([item(1)])
    store.put_embeddings(["a"], TEMPLATES, ENCODER, embed(["a"]))
    code = (
        "import sys\nfrom cache.store import NeighborStore\n"
        f"s = NeighborStore({str(store.root)!r})\n"
        f"s.get_phrases(['class 001'], {provenance().generation_key!r})\n"
        f"assert s.missing_embeddings(['a'], {TEMPLATES!r}, {ENCODER!r}) == []\n"
        f"s.get_embeddings(['a'], {TEMPLATES!r}, {ENCODER!r})\n"
        f"s.put_embeddings(['a'], {TEMPLATES!r}, {ENCODER!r}, s.get_embeddings(['a'], {TEMPLATES!r}, {ENCODER!r}))\n"
        "print(sorted(m for m in ('faiss', 'torch', 'vllm', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
