"""Neighbor lists without a model: parsing, and stage one's rules on an imported list (the near-duplicate filter
on hand-made geometry)."""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cache.errors import UserError
from stages.neighbors import lists
from stages.neighbors.config import NeighborsConfig
from stages.neighbors.filters import PROBE_TEXTS


def test_the_three_shapes_parse_to_the_same_lists():
    want = {"dog": ["barking dog", "woof"], "rain": ["drizzle"]}
    as_json = lists.parse_list(json.dumps(want).encode(), "f")
    as_bom = lists.parse_list(b"\xef\xbb\xbf" + json.dumps(want).encode(), "f")
    as_jsonl = lists.parse_list("".join(json.dumps({"class": c, "phrase": p}) + "\n"
                                        for c, ps in want.items() for p in ps).encode(), "f")
    one_line = lists.parse_list(b'{"class": "dog", "phrase": "woof"}', "f")
    buf = io.BytesIO()
    pq.write_table(pa.table({"class": ["rain", "dog", "dog"], "phrase": ["drizzle", "woof", "barking dog"],
                             "rank": [0, 1, 0]}), buf)
    as_parquet = lists.parse_list(buf.getvalue(), "f")
    assert as_json.classes == as_bom.classes == as_jsonl.classes == want
    assert as_parquet.classes == {"dog": ["barking dog", "woof"], "rain": ["drizzle"]}  # by rank
    assert (as_json.format, as_jsonl.format, as_parquet.format) == ("json", "jsonl", "parquet")
    assert one_line.classes == {"dog": ["woof"]} and one_line.format == "jsonl"
    assert as_json.sha256 != as_jsonl.sha256


def test_parquet_without_the_columns_is_refused():
    buf = io.BytesIO()
    pq.write_table(pa.table({"label": ["dog"], "text": ["woof"]}), buf)
    with pytest.raises(UserError, match=r"wrong shape: Parquet columns \['label', 'text'\], expected string"):
        lists.parse_list(buf.getvalue(), "f")


def test_limits_are_checked_at_their_bounds():
    ok = {"dog": ["x" * lists.MAX_PHRASE_CHARS] + [f"p{i}" for i in range(lists.MAX_PHRASES_PER_CLASS - 1)]}
    assert len(lists.parse_list(json.dumps(ok).encode(), "f").classes["dog"]) == lists.MAX_PHRASES_PER_CLASS
    with pytest.raises(UserError, match="MAX_PHRASE_CHARS"):
        lists.parse_list(json.dumps({"dog": ["x" * (lists.MAX_PHRASE_CHARS + 1)]}).encode(), "f")
    with pytest.raises(UserError, match="MAX_CLASS_CHARS"):
        lists.parse_list(json.dumps({"d" * (lists.MAX_CLASS_CHARS + 1): ["woof"]}).encode(), "f")


class HandMadeVectors:
    """Template-mean vectors chosen by hand: probe texts orthogonal (the encoder separates texts), and phrases
    placed at known angles."""

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def mean(self, texts):
        return np.stack([self.table[t] for t in texts])


def _unit(*v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_the_near_duplicate_filter_of_stage_one_runs_on_imports():
    dim = len(PROBE_TEXTS) + 3
    table = {t: np.eye(dim)[i] for i, t in enumerate(PROBE_TEXTS)}
    a = np.eye(dim)[-1]
    table["woof"] = a
    table["woof woof"] = _unit(*(0.2 * np.eye(dim)[-2] + a))          # cos 0.98 to woof: a near duplicate
    table["barking dog"] = _unit(*(np.eye(dim)[-2] + a))              # cos 0.71: kept
    cleaned = lists.Cleaned({"dog": ["woof", "woof woof", "barking dog"]})
    lists.drop_near_duplicates(cleaned, HandMadeVectors(table), 0.97)
    assert cleaned.kept == {"dog": ["woof", "barking dog"]} and cleaned.dropped == {"near duplicate": 1}
    assert cleaned.dropped_phrases == {"dog": [["woof woof", "near duplicate"]]} and cleaned.embedding_filter == "on"

    collapsed = {t: _unit(1.0, 0.001 * i) for i, t in enumerate([*PROBE_TEXTS, "woof", "woof woof"])}
    cleaned = lists.Cleaned({"dog": ["woof", "woof woof"]})
    lists.drop_near_duplicates(cleaned, HandMadeVectors(collapsed), 0.97)
    assert cleaned.kept == {"dog": ["woof", "woof woof"]} and cleaned.embedding_filter.startswith("off: the encoder")


def test_text_rules_are_stage_ones():
    cleaned = lists.clean_text({"church bells": ["Church bells", "bells church", "* ringing bells.", "ringing bells"],
                                "rain": ["drizzle"]}, NeighborsConfig())
    assert cleaned.kept == {"church bells": ["ringing bells"], "rain": ["drizzle"]}
    assert cleaned.dropped == {"class name": 1, "class name reordered": 1, "duplicate": 1}

