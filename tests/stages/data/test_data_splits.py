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


# asif-hanif/zebra at d428bc6a06e4b097fb4e4ddc7aa509e94c74746e, scripts/base-novel-classes/
# Beijing-Opera_BaseNovelClassnames.json, copied: the first dataset of its generator's chain (seed 42).
ZEBRA_BEIJING_OPERA = {"base": ["bangu", "xiaoluo"], "novel": ["daluo", "naobo"]}


def test_shuffle_rule_is_zebras_seeded_shuffle_with_floor_half():
    names = ["xiaoluo", "naobo", "daluo", "bangu"]  # Beijing-Opera's classes, in no order
    assert base_new_split(names, 0.5, "shuffle:42") == (ZEBRA_BEIJING_OPERA["base"], ZEBRA_BEIJING_OPERA["novel"])
    many = [f"c{i:02d}" for i in range(15)]  # odd C: ZEBRA's split_point = C // 2 (7 base), sorted's ceil (8)
    base, new = base_new_split(many, 0.5, "shuffle:42")
    assert (len(base), len(new)) == (7, 8) and base == sorted(base) and new == sorted(new)
    assert sorted(base + new) == many and base != many[:7]  # shuffled, not the sorted split
    assert base_new_split(list(reversed(many)), 0.5, "shuffle:42") == (base, new)  # input order does not matter
    assert base_new_split(many, 0.5, "shuffle:7") != (base, new)  # the seed decides
    assert len(base_new_split(many, 0.5)[0]) == 8


@pytest.mark.parametrize("rule", ["shuffle", "shuffle:", "shuffle:x", "random:1", "sorted:1"])
def test_a_bad_split_rule_is_one_line_naming_the_key(rule):
    from stages.data.config import DataConfig

    with pytest.raises(UserError) as err:
        DataConfig(split_rule=rule)
    assert "data.split_rule" in str(err.value) and "shuffle:<seed>" in str(err.value) and "\n" not in str(err.value)


def test_the_split_record_names_its_rule(tmp_path):
    import json

    path = persist_split(tmp_path, ["a"], ["b"], 0.5, "toy", extra={"split_rule": "shuffle:42"})
    record = json.loads(path.read_text())
    assert record["split_rule"] == "shuffle:42" and "random.Random(42)" in record["rule"]
    assert "ceil" in json.loads(persist_split(tmp_path / "s", ["a"], ["b"], 0.5).read_text())["rule"]
