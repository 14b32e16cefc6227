"""Per-row votes and verification scores: stored when given, null when not, and phrase files written
before these columns existed still read (as nulls), verify clean and take new rows beside them."""
import pyarrow as pa
import pyarrow.parquet as pq

from cache.store import ClassNeighbors, NeighborStore, Provenance
from cache.store import schema


def _prov(key_hash="p1"):
    return Provenance(llm_id="m", llm_revision="r", llm_fingerprint="fp", engine="vllm", engine_version="0",
                      prompt_hash=key_hash, prompt_version="v", num_neighbors=3)


def test_votes_and_scores_round_trip_and_default_to_null(tmp_path):
    store = NeighborStore.in_cache(tmp_path)
    scored = ClassNeighbors("dog", ["barking dog", "woof"], _prov(), {}, 0, votes=[3, 1], verify_scores=[0.9, 0.25])
    plain = ClassNeighbors("cat", ["meow"], _prov(), {}, 0)
    store.put_phrases([scored, plain])
    rows = {r["phrase"]: r for r in store.phrase_rows(None, scored.generation_key)}
    assert (rows["barking dog"]["votes"], rows["woof"]["votes"]) == (3, 1)
    assert abs(rows["woof"]["verify_score"] - 0.25) < 1e-7
    assert rows["meow"]["votes"] is None and rows["meow"]["verify_score"] is None


def test_phrase_files_from_before_the_score_columns_still_read_and_verify(tmp_path):
    store = NeighborStore.in_cache(tmp_path)
    store.put_phrases([ClassNeighbors("dog", ["barking dog"], _prov(), {}, 0)])
    # Rewrite the committed phrases file the way the older code wrote it (no votes / verify_score columns),
    # and put its new size and hash into the manifest, as if it had always been so.
    import json

    from cache.fingerprint import sha256_file

    mpath = tmp_path / "neighbors" / "manifest.json"
    m = json.loads(mpath.read_text())
    part = next(p for p in m["parts"] if p["table"] == "phrases")
    f = tmp_path / "neighbors" / part["file"]
    old = pq.read_table(f).drop_columns([c.name for c in schema.LATER_PHRASE_COLUMNS])
    assert "votes" not in old.column_names
    pq.write_table(old, f)
    part["bytes"], part["sha256"] = f.stat().st_size, sha256_file(f)
    mpath.write_text(json.dumps(m))

    store = NeighborStore.in_cache(tmp_path)
    key = _prov().generation_key
    assert store.get_phrases(["dog"], key) == {"dog": ["barking dog"]}
    (row,) = store.phrase_rows(["dog"], key)
    assert row["votes"] is None and row["verify_score"] is None
    assert store.verify() == []
    store.put_phrases([ClassNeighbors("cat", ["meow"], _prov(), {}, 0, votes=[2], verify_scores=[None])])
    assert [r["votes"] for r in store.phrase_rows(None, key)] == [2, None]  # cat, then dog
    assert pa.Table.from_pylist(store.phrase_rows(None, key)).num_rows == 2
