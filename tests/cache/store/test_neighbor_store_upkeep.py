"""Compaction, summary, the cache-folder default and what a warm rerun reads."""

from __future__ import annotations

import json

from cache.store import NeighborStore
from cache.store.maintenance import MAX_PARTS
from neighbor_store_kit import ENCODER, TEMPLATES, item, provenance, snapshot, write_loop


def test_many_small_writes_are_compacted_without_changing_rows(tmp_path):
    many = NeighborStore(tmp_path / "many")
    for i in range(MAX_PARTS + 4):  # one commit per class and per embedding batch
        write_loop(str(many.root), [i], batch=1)
    one = NeighborStore(tmp_path / "one")
    write_loop(str(one.root), list(range(MAX_PARTS + 4)), batch=MAX_PARTS + 4)
    manifest = many.manifest()
    for table in ("phrases", "classes", "embeddings"):
        assert 1 <= len(manifest.parts_of(table)) <= MAX_PARTS
    assert many.verify() == [] and many.leftovers() == []
    assert snapshot(many.root) == snapshot(one.root)
    # Replaced parts are deleted from disk, not just from the manifest.
    on_disk = {p.relative_to(many.root).as_posix() for p in many.root.rglob("*.parquet")}
    assert on_disk == {p.file for p in manifest.parts} | {i.texts_file for i in manifest.indexes}


def test_summary_counts(store):
    write_loop(str(store.root), list(range(12)))
    s = store.summary()
    assert s["classes"] == s["class_rows"] == 12
    assert s["phrases"] == sum(len(item(i).phrases) for i in range(12))
    assert s["short_classes"] == sum(item(i).short for i in range(12))
    (key,) = s["generation_keys"]
    assert key["generation_key"] == provenance().generation_key and key["classes"] == 12
    (enc,) = s["encoders"]
    assert enc["encoder_fingerprint"] == ENCODER and enc["templates"] == len(TEMPLATES)
    assert enc["embeddings"] == enc["texts"] * len(TEMPLATES) == enc["indexes"][0]["rows"] * len(TEMPLATES)
    assert s["bytes"] == sum(p.stat().st_size for p in store.root.rglob("*") if p.suffix in (".parquet", ".faiss"))
    json.dumps(s)  # `neighbors ls --json` prints it as-is


def test_empty_or_absent_store_reads_as_empty(tmp_path):
    store = NeighborStore(tmp_path / "absent")
    assert store.classes_present(["a"], "k") == set()
    assert store.missing_embeddings(["a"], TEMPLATES, ENCODER) == ["a"]
    assert store.summary()["classes"] == 0 and store.verify() == [] and store.generation_keys() == []
    assert not store.root.exists()  # reading created nothing


def test_in_cache_follows_the_cache_folder_rules(tmp_path, monkeypatch):
    monkeypatch.setenv("SEPT_CACHE_DIR", str(tmp_path / "env-cache"))
    assert NeighborStore.in_cache().root == tmp_path / "env-cache" / "neighbors"
    assert NeighborStore.in_cache(tmp_path / "explicit").root == tmp_path / "explicit" / "neighbors"


def test_warm_rerun_reads_of_an_esc50_sized_store(tmp_path):
    """What a warm rerun reads answers in full; how fast: benchmarks/bench_store_reads.py (printed, not asserted)."""
    from benchmarks.bench_store_reads import esc50_sized_store, warm_reads

    store, key, names, texts, templates = esc50_sized_store(tmp_path / "neighbors")
    present, phrases, missing = warm_reads(store.root, key, names, texts, templates)
    assert present == set(names)
    assert len(phrases) == 50 and phrases["class 7"] == [f"class 7 neighbor {j}" for j in range(8)]
    assert missing == []
    fresh = NeighborStore(store.root)  # and says what is not there
    assert fresh.classes_present([*names, "class 50"], key) == set(names)
    assert fresh.missing_embeddings([*texts, "unseen"], templates, "enc") == ["unseen"]
