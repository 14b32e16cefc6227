"""Base-to-new split: hand cases, float safety, persistence, relabelling."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cache.errors import UserError
from stages.data.clips import Clip
from stages.data.splits import base_new_split, persist_split, restrict_clips


def test_five_classes_give_three_base_two_new():
    assert base_new_split(["e", "c", "a", "d", "b"]) == (["a", "b", "c"], ["d", "e"])


def test_four_classes_give_two_and_two():
    assert base_new_split(["dog", "cat", "bird", "ant"]) == (["ant", "bird"], ["cat", "dog"])


@pytest.mark.parametrize("c, f, k", [(10, 0.3, 3), (10, 0.7, 7), (3, 0.0, 0), (3, 1.0, 3), (50, 0.5, 25), (15, 0.5, 8)])
def test_ceil_is_not_fooled_by_float_noise(c, f, k):
    base, new = base_new_split([f"c{i:02d}" for i in range(c)], f)
    assert len(base) == k and len(new) == c - k


def test_bad_inputs():
    with pytest.raises(UserError, match="base_fraction"):
        base_new_split(["a"], 1.5)
    with pytest.raises(UserError, match="twice"):
        base_new_split(["a", "b", "a"])


def test_persist_split(tmp_path):
    base, new = base_new_split(["b", "a", "c"])
    path = persist_split(tmp_path / "run", base, new, 0.5, dataset="toy")
    data = json.loads(path.read_text())
    assert data["base"] == ["a", "b"] and data["new"] == ["c"] and data["dataset"] == "toy"


def test_restrict_clips_relabels_into_the_subset():
    names = ["a", "b", "c"]
    clips = [Clip(Path(f"/{i}.wav"), i % 3, names[i % 3]) for i in range(6)]
    new = restrict_clips(clips, names, ["c"])
    assert [(c.path.name, c.label, c.classname) for c in new] == [("2.wav", 0, "c"), ("5.wav", 0, "c")]
