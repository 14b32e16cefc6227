"""The validation view of base2new (data.eval_split = "val"): carved out of the base classes' training items
only, the same items for every seed, worked by hand on a small dataset."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cache.errors import UserError
from pipeline.protocols.plans import make_plan
from pipeline.protocols.validation import holdout_count
from stages.data.clips import AudioDataset, Clip

CLASSES = ["bee", "cat", "cow", "dog", "owl", "yak"]  # sorted; base2new 0.5: base bee/cat/cow, new dog/owl/yak


def dataset(root: Path, train_per_class: int = 5) -> AudioDataset:
    train = [Clip(root / c / f"tr{k}.wav", i, c) for i, c in enumerate(CLASSES) for k in range(train_per_class)]
    test = [Clip(root / c / f"te{k}.wav", i, c) for i, c in enumerate(CLASSES) for k in range(2)]
    return AudioDataset(name="toy", root=root, classnames=list(CLASSES), train=train, test=test)


def test_hand_worked_holdout_counts():
    # round(n * f) kept within [1, n - 1]
    assert [holdout_count(n, 0.3) for n in (2, 3, 5, 10, 21)] == [1, 1, 2, 3, 6]
    assert holdout_count(4, 0.0) == 1 and holdout_count(4, 1.0) == 3


def test_validation_plan_reads_only_base_training_items(tmp_path):
    ds = dataset(tmp_path)
    plan = make_plan("base2new", ds, tmp_path, 0.5, eval_split="val", val_fraction=0.3)
    # base = bee, cat, cow; split again: validation-base = bee, cat; validation-new = cow
    assert plan.train_classes == ["bee", "cat"]
    assert plan.split["base"] == ["bee", "cat"] and plan.split["new"] == ["cow"]
    base_eval, new_eval = plan.evals
    assert (base_eval.name, base_eval.classnames, new_eval.name, new_eval.classnames) == \
        ("base", ["bee", "cat"], "new", ["cow"])
    base_train_paths = {c.path for c in ds.train if c.classname in ("bee", "cat", "cow")}
    used = [c.path for c in plan.train_clips] + [c.path for ev in plan.evals for c in ev.clips]
    assert set(used) <= base_train_paths and len(used) == len(set(used)) == 15  # no test item, no new class
    # 5 items per validation-base class: 2 held out (round(1.5)), 3 kept; cow lends all 5
    assert len(plan.train_clips) == 6 and len(base_eval.clips) == 4 and len(new_eval.clips) == 5
    assert {c.classname for c in base_eval.clips} == {"bee", "cat"}
    assert all(c.label == plan.train_classes.index(c.classname) for c in plan.train_clips + base_eval.clips)
    assert all(c.label == 0 for c in new_eval.clips)


def test_held_out_items_do_not_depend_on_root_or_seed(tmp_path):
    a = make_plan("base2new", dataset(tmp_path / "a"), tmp_path, 0.5, eval_split="val")
    b = make_plan("base2new", dataset(tmp_path / "elsewhere"), tmp_path, 0.5, eval_split="val")
    names = lambda plan: [(c.classname, c.path.name) for c in plan.evals[0].clips]  # noqa: E731
    assert names(a) == names(b)
    # the held-out items are the first two of each class in sha256("class/file") order, computed here apart
    expected = [(c, f) for c in ("bee", "cat")
                for f in sorted((f"tr{k}.wav" for k in range(5)),
                                key=lambda f, c=c: hashlib.sha256(f"{c}/{f}".encode()).hexdigest())[:2]]
    assert sorted(names(a)) == sorted(expected)


def test_test_split_is_unchanged_and_val_refused_outside_base2new(tmp_path):
    ds = dataset(tmp_path)
    plan = make_plan("base2new", ds, tmp_path, 0.5)  # eval_split "test": today's protocol
    assert plan.train_classes == ["bee", "cat", "cow"] and len(plan.evals[1].clips) == 6
    assert "eval_split" not in plan.split
    with pytest.raises(UserError, match="data.eval_split 'val': defined for --protocol base2new only"):
        make_plan("fewshot", ds, tmp_path, 0.5, eval_split="val")


def test_class_with_one_training_item_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match=r"base class 'bee' has 1 training item\(s\)"):
        make_plan("base2new", dataset(tmp_path, train_per_class=1), tmp_path, 0.5, eval_split="val")
