"""The tables are plain Parquet: pyarrow and polars read them with no project code."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq

from cache.store import template_id
from neighbor_store_kit import DIM, ENCODER, TEMPLATES, embed, item, neighbors_of

# Runs in a fresh interpreter with only pyarrow and polars on the path: no project code at all.
_PLAIN_READER = r"""
import json, sys
import pyarrow.parquet as pq, polars as pl
root = sys.argv[1]
m = json.load(open(root + "/manifest.json"))
files = {p["table"]: [] for p in m["parts"]}
for p in m["parts"]:
    files[p["table"]].append(root + "/" + p["file"])
out = {}
for table, paths in files.items():
    a = pq.read_table(paths) if len(paths) > 1 else pq.read_table(paths[0])
    b = pl.read_parquet(paths)
    out[table] = {"pyarrow_rows": a.num_rows, "polars_rows": b.height, "columns": a.column_names,
                  "types": {f.name: str(f.type) for f in a.schema}}
emb = pl.read_parquet(files["embeddings"]).sort("text", "template_id")
out["first_embedding"] = [float(x) for x in emb["embedding"][0]]
out["first_text"] = [emb["text"][0], emb["template"][0]]
ph = pl.read_parquet(root + "/phrases/*.parquet").sort("class_name", "rank")
out["phrases_of_class_001"] = ph.filter(pl.col("class_name") == "class 001")["phrase"].to_list()
print(json.dumps(out))
"""


def test_plain_pyarrow_and_polars_read_every_table(store, tmp_path):
    store.put_phrases([item(i) for i in range(3)])
    texts = ["class 001"] + neighbors_of(1)
    vectors = embed(texts)
    store.put_embeddings(texts, TEMPLATES, ENCODER, vectors)
    env = {"PYTHONPATH": "", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-I", "-c", _PLAIN_READER, str(store.root)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = json.loads(done.stdout)
    n_phrases = sum(len(item(i).phrases) for i in range(3))
    assert out["phrases"]["pyarrow_rows"] == out["phrases"]["polars_rows"] == n_phrases
    assert out["classes"]["pyarrow_rows"] == out["classes"]["polars_rows"] == 3
    assert out["embeddings"]["pyarrow_rows"] == out["embeddings"]["polars_rows"] == len(texts) * len(TEMPLATES)
    assert (
        out["embeddings"]["types"]["embedding"].startswith("fixed_size_list")
        and f"[{DIM}]" in out["embeddings"]["types"]["embedding"]
    )
    for col in (
        "class_name",
        "phrase",
        "rank",
        "generation_key",
        "llm_id",
        "llm_revision",
        "llm_fingerprint",
        "engine",
        "engine_version",
        "prompt_hash",
        "prompt_version",
        "sampling",
        "seed",
        "created_at",
    ):
        assert col in out["phrases"]["columns"]
    for col in ("text", "template", "template_id", "encoder_fingerprint", "dim", "dtype", "embedding", "created_at"):
        assert col in out["embeddings"]["columns"]
    assert out["phrases_of_class_001"] == neighbors_of(1)
    # The polars value is the stored float32, exactly (float32 -> Python float is lossless).
    first = sorted(
        ((t, tp, i, j) for i, t in enumerate(texts) for j, tp in enumerate(TEMPLATES)),
        key=lambda r: (r[0], template_id(r[1])),
    )[0]
    assert out["first_text"] == [first[0], first[1]]
    assert np.array_equal(np.array(out["first_embedding"], np.float32), vectors[first[2], first[3]])


def test_index_mapping_and_embeddings_are_plain_parquet(store):
    texts = ["a", "b"]
    store.put_embeddings(texts, TEMPLATES, ENCODER, embed(texts))
    manifest = json.loads((store.root / "manifest.json").read_text())
    (index,) = manifest["indexes"]
    mapping = pq.read_table(store.root / index["texts_file"]).to_pydict()
    assert mapping == {"id": [0, 1], "text": ["a", "b"]}
    table = pq.read_table(store.root / manifest["parts"][0]["file"])
    assert table.schema.field("embedding").type.list_size == DIM
    assert str(table.schema.field("embedding").type.value_type) == "float"
