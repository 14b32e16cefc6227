"""Neighbor lists and controls without a model: parsing, stage one's rules on an imported list (the near-duplicate
filter on hand-made geometry), and the control generators' counts and determinism."""
from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cache.errors import UserError
from stages.neighbors import controls, lists
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


REAL = {"dog bark": ["barking dog", "canine yelp at night", "woof"], "rain": ["drizzle", "heavy rain on a roof"]}


def test_random_words_match_counts_and_lengths_and_are_seeded_per_class():
    words = [f"w{i}" for i in range(500)] + ["dog", "bark", "rain"]
    a = controls.random_words(REAL, words, seed=1)
    assert {c: len(v) for c, v in a.items()} == {c: len(v) for c, v in REAL.items()}
    assert [[len(p.split()) for p in a[c]] for c in REAL] == [[len(p.split()) for p in REAL[c]] for c in REAL]
    assert all(w in words for ps in a.values() for p in ps for w in p.split())
    assert not {"dog", "bark"} & {w for p in a["dog bark"] for w in p.split()}  # never the class's own words
    assert "rain" not in {w for p in a["rain"] for w in p.split()}
    assert controls.random_words(REAL, words, seed=1) == a  # deterministic
    assert controls.random_words(REAL, words, seed=2) != a
    # A class's phrases depend on that class alone, never on which others are drawn with it.
    assert controls.random_words({"rain": REAL["rain"]}, words, seed=1) == {"rain": a["rain"]}


def test_class_name_control_uses_the_first_templates():
    templates = controls._lines(controls.templates_path())
    assert templates[0] == "{}" and all(t.count("{}") == 1 for t in templates) and len(set(templates)) == len(
        templates)
    out = controls.class_names(REAL, templates)
    assert out == {"dog bark": ["dog bark", "the sound of dog bark", "a sound of dog bark"],
                   "rain": ["rain", "the sound of rain"]}
    with pytest.raises(UserError, match=r"class 'dog' has 3 neighbors in the real generation; .* holds 2 templates"):
        controls.class_names({"dog": ["a", "b", "c"]}, ["{}", "the {}"])


def test_the_shipped_word_list_says_where_it_comes_from():
    text = controls.word_list_path().read_text(encoding="utf-8")
    header = [x for x in text.splitlines() if x.startswith("#")]
    assert any("wamerican" in x for x in header) and any("Licence" in x for x in header)
    assert controls.word_list_path().with_suffix(".LICENSE").is_file()
    words = controls._lines(controls.word_list_path())
    assert len(words) > 5000 and len(set(words)) == len(words) and all(w.isalpha() and w.islower() for w in words)
