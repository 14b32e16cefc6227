"""What stage one stores for a class depends on that class alone, not on the classes generated with it.

Real parts: vLLM (CPU build) with the packaged SmolLM2, greedy; the tiny random CLAP as the encoder with
the near-duplicate filter ON. Its texts sit close together (ESC-50's names: cosine 0.9964 to 0.99994,
0.99916 on average; the fixed probe texts 0.99914 on average, measured), so a threshold of 0.9995 keeps
the filter on and lets it drop some candidates: it does real work. The class is generated once alone and
once inside ESC-50's 50-class list, each in a fresh cache. Under the old rule (class boundary inside
stage one) 'dog' lost its only greedy neighbor, 'dog barking', in the 50-class call: the test failed.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

CLASS = "dog"


def _rows(cache, key: str, classes) -> list[tuple]:
    """(class, rank, phrase, seed) of the stored rows, read with pyarrow from the files the manifest lists."""
    import json

    m = json.loads((cache / "neighbors" / "manifest.json").read_text())
    files = [cache / "neighbors" / p["file"] for p in m["parts"] if p["table"] == "phrases"]
    rows = pa.concat_tables([pq.read_table(f) for f in files]).to_pylist()
    return sorted((r["class_name"], r["rank"], r["phrase"], r["seed"]) for r in rows
                  if r["class_name"] in classes and r["generation_key"] == key)


def test_a_class_stores_the_same_rows_alone_and_inside_a_50_class_batch(tmp_path, neighbors_tiny_clap):
    from cache.store import NeighborStore
    from pipeline.config_loader import load_config
    from stages.data.specs import dataset_classnames
    from stages.neighbors.generation import generate_neighbors

    esc50 = list(dataset_classnames("esc50"))
    assert len(esc50) == 50 and CLASS in esc50
    cfg = load_config(None, [f'neighbors.model_dir="{tmp_path / "llm"}"', "neighbors.max_retries=0",
                             "neighbors.max_tokens=64", "neighbors.temperature=0",
                             "neighbors.near_duplicate_cos=0.9995"])
    alone = generate_neighbors([CLASS], cfg, tmp_path / "alone", backbone=str(neighbors_tiny_clap))
    batch = generate_neighbors(esc50, cfg, tmp_path / "batch", backbone=str(neighbors_tiny_clap))

    assert alone["generation_key"] == batch["generation_key"]
    assert alone["embedding_filters"].startswith("on") and batch["embedding_filters"].startswith("on")
    assert batch["dropped"].get("near duplicate", 0) > 0  # the filter did drop something in the batch
    key = alone["generation_key"]
    mine = _rows(tmp_path / "alone", key, [CLASS])
    assert mine, "the class got no neighbor at all; nothing to compare"
    assert _rows(tmp_path / "batch", key, [CLASS]) == mine
    status = {s["class_name"]: (s["num_kept"], s["short"])
              for s in NeighborStore.in_cache(tmp_path / "batch").class_status([CLASS], key)}
    assert status[CLASS] == (len(mine), alone["classes_short"] == [CLASS])



def test_with_the_filter_on_a_class_filled_in_the_first_round_is_not_asked_again(tmp_path, neighbors_tiny_clap):
    """Retries go to the classes the filter left short, and only to them (N = 1: 'dog barking' fills it)."""
    from pipeline.config_loader import load_config
    from stages.neighbors.generation import generate_neighbors

    cfg = load_config(None, [f'neighbors.model_dir="{tmp_path / "llm"}"', "neighbors.max_retries=1",
                             "neighbors.max_tokens=64", "neighbors.temperature=0", "neighbors.num_neighbors=1",
                             "neighbors.near_duplicate_cos=0.9995"])
    s = generate_neighbors([CLASS], cfg, tmp_path / "cache", backbone=str(neighbors_tiny_clap))
    assert s["embedding_filters"].startswith("on") and s["classes_short"] == []
    assert s["phrases_kept"] == 1
    assert (s["llm_requests"], s["llm_rounds"], s["engine_starts"]) == (1, 1, 1)
