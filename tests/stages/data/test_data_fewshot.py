"""Few-shot draws: per-class counts, determinism, seeds, the cache (hit, staleness, corruption)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cache.errors import UserError
from stages.data.clips import Clip
from stages.data.fewshot import draw_fewshot, fewshot_cache_file, fewshot_indices


def clips_of(counts: list[int]) -> list[Clip]:
    """Clips of len(counts) classes, interleaved so a class's members are not contiguous."""
    out, i = [], 0
    remaining = list(counts)
    while any(remaining):
        for label, left in enumerate(remaining):
            if left:
                out.append(Clip(Path(f"/d/{i}.wav"), label, f"c{label}"))
                remaining[label] -= 1
                i += 1
    return out


CLIPS = clips_of([10, 5, 2])


def per_class(clips, idx):
    return [sum(clips[i].label == k for i in idx) for k in range(3)]


def test_counts_sorted_and_short_classes_whole():
    idx = fewshot_indices(CLIPS, shots=4, seed=1, cache_file=None)
    assert idx == sorted(set(idx))
    assert per_class(CLIPS, idx) == [4, 4, 2]  # class 2 has only 2: all of it, no repeats


def test_shots_zero_means_all():
    assert fewshot_indices(CLIPS, shots=0, seed=3, cache_file=None) == list(range(len(CLIPS)))


def test_matches_an_independent_pcg64_draw_for_the_first_class():
    # Class 0 is drawn first from a fresh Generator(PCG64(seed)): the same call by hand gives the same clips.
    members = np.flatnonzero(np.array([c.label for c in CLIPS]) == 0)
    expected = sorted(np.random.Generator(np.random.PCG64(0)).choice(members, size=4, replace=False).tolist())
    got = [i for i in fewshot_indices(CLIPS, shots=4, seed=0, cache_file=None) if CLIPS[i].label == 0]
    assert got == expected


def test_deterministic_and_seeds_differ():
    a = [fewshot_indices(CLIPS, 3, s, None) for s in (0, 1, 2)]
    assert a == [fewshot_indices(CLIPS, 3, s, None) for s in (0, 1, 2)]
    assert len({tuple(x) for x in a}) == 3


def test_cache_file_is_written_and_served(tmp_path):
    f = fewshot_cache_file(tmp_path, "toy", 3, 0)
    assert f == tmp_path / "fewshot" / "toy-3shot-seed0.json"
    first = fewshot_indices(CLIPS, 3, 0, f)
    assert f.is_file() and fewshot_indices(CLIPS, 3, 0, f) == first
    # The second call is served from the file: plant a different (valid) draw under the same key.
    data = json.loads(f.read_text())
    (key,) = data["draws"]
    planted = [0, 1, 2]
    data["draws"][key]["indices"] = planted
    f.write_text(json.dumps(data))
    assert fewshot_indices(CLIPS, 3, 0, f) == planted


def test_changed_clip_list_is_not_served_a_stale_draw(tmp_path):
    f = fewshot_cache_file(tmp_path, "toy", 3, 0)
    fewshot_indices(CLIPS, 3, 0, f)
    data = json.loads(f.read_text())
    (key,) = data["draws"]
    data["draws"][key]["indices"] = [0, 1, 2]
    f.write_text(json.dumps(data))
    fewer = CLIPS[:-1]  # one clip gone: another dataset version (or fold)
    assert fewshot_indices(fewer, 3, 0, f) == draw_fewshot([c.label for c in fewer], 3, 0)
    assert len(json.loads(f.read_text())["draws"]) == 2  # both clip lists keep their own draw


def test_corrupt_cache_is_redrawn(tmp_path):
    f = fewshot_cache_file(tmp_path, "toy", 2, 5)
    f.parent.mkdir(parents=True)
    f.write_text("{not json")
    assert fewshot_indices(CLIPS, 2, 5, f) == draw_fewshot([c.label for c in CLIPS], 2, 5)
    assert json.loads(f.read_text())["seed"] == 5


def test_bad_shots_and_seed():
    with pytest.raises(UserError, match="shots -1"):
        fewshot_indices(CLIPS, -1, 0, None)
    with pytest.raises(UserError, match="seed -2"):
        fewshot_indices(CLIPS, 1, -2, None)
