"""Two writers at once, and writers killed with SIGKILL at random moments: the store stays consistent
and a rerun ends with exactly the rows an uninterrupted run would have written."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache.store import NeighborStore
from neighbor_store_kit import TEMPLATES, item, neighbors_of, provenance, snapshot, write_loop, write_loop_to_file

KIT_DIR = str(Path(__file__).parent)
REPO = str(Path(__file__).parents[3])


def _spawn_pair(root: Path, classes_a: list[int], classes_b: list[int], out: Path) -> list[dict]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=write_loop_to_file, args=(str(root), classes, str(out / f"{n}.json"), barrier))
        for n, classes in enumerate((classes_a, classes_b))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0, f"writer exited with {p.exitcode}"
    return [json.loads((out / f"{n}.json").read_text()) for n in range(2)]


def test_two_processes_writing_overlapping_classes(tmp_path):
    root = tmp_path / "neighbors"
    a, b = list(range(0, 24)), list(range(12, 36))  # 12 classes in common, written in opposite order by b
    counts = _spawn_pair(root, a, b[::-1], tmp_path)
    store = NeighborStore(root)
    assert store.verify() == []
    # Each class was written by exactly one of the two; no phrase or embedding row twice.
    assert counts[0]["classes_written"] + counts[1]["classes_written"] == 36
    snap = snapshot(root)
    key = provenance().generation_key
    assert sorted(r["class_name"] for r in snap["classes"]) == [item(i).class_name for i in range(36)]
    assert len(snap["phrases"]) == sum(len(neighbors_of(i)) for i in range(36))
    pairs = [(r["text"], r["template_id"]) for r in snap["embeddings"]]
    texts = {item(i).class_name for i in range(36)} | {p for i in range(36) for p in neighbors_of(i)}
    assert len(pairs) == len(set(pairs)) == len(texts) * len(TEMPLATES)
    assert counts[0]["rows_written"] + counts[1]["rows_written"] == len(pairs)
    (index,) = store.indexes()
    assert index.rows == len(texts)
    assert store.get_phrases([item(20).class_name], key)[item(20).class_name] == neighbors_of(20)


def _run_writer(root: Path, classes: list[int]) -> subprocess.Popen:
    code = f"from neighbor_store_kit import write_loop; write_loop({str(root)!r}, {classes!r}, batch=2)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([KIT_DIR, REPO, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _commits(root: Path) -> int:
    """The store's commit counter, 0 before its first commit: how far a writer has got."""
    try:
        return int(json.loads((root / "manifest.json").read_text())["commit"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun_matches_uninterrupted(tmp_path):
    classes = list(range(20))
    reference = tmp_path / "reference"
    proc = _run_writer(reference, classes)
    assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    expected = snapshot(reference)
    commits = _commits(reference)
    assert commits >= 20  # 10 batches, each a phrases commit and an embeddings commit
    rng = random.Random(1234)
    trials = 6
    killed_mid_run = 0
    for trial in range(trials):
        root = tmp_path / f"trial{trial}"
        # Spread the kills over the whole run by the writer's own progress, not by the clock (a loaded machine
        # slows the writer, not its commits): start-up, the first writes, the middle, near the end; each at a
        # random moment after that commit, so some land inside the next one.
        after = commits * trial // trials
        proc = _run_writer(root, classes)
        while _commits(root) < after and proc.poll() is None:
            time.sleep(0.002)
        time.sleep(rng.random() * 0.05)
        proc.kill()  # SIGKILL: no cleanup handlers run
        proc.wait()
        killed_mid_run += proc.returncode == -9
        store = NeighborStore(root)
        if root.exists() and (root / "manifest.json").exists():
            assert store.verify() == []  # what was committed is consistent; leftovers are ignored
        write_loop(str(root), classes, batch=2)  # the rerun
        assert store.verify() == []
        assert snapshot(root) == expected, f"trial {trial} (killed after commit {after})"
    assert killed_mid_run >= trials - 1  # the writer was still running (the last one may just have finished)


def test_leftovers_of_a_killed_writer_are_ignored_then_removed(tmp_path):
    store = NeighborStore(tmp_path / "neighbors")
    write_loop(str(store.root), [0, 1, 2])
    key = provenance().generation_key
    before = store.get_phrases([item(i).class_name for i in range(3)], key)
    # What a writer killed before its commit leaves: a renamed part the manifest never listed, a temp
    # part, a temp manifest. (Written by hand: a kill cannot be aimed at that exact instant.)
    manifest = json.loads((store.root / "manifest.json").read_text())
    listed = next(p["file"] for p in manifest["parts"] if p["table"] == "phrases")
    stray = store.root / "phrases" / "part-99999999T000000000000-deadbeef.parquet"
    stray.write_bytes((store.root / listed).read_bytes())
    (store.root / "phrases" / ".part-x.parquet.abc.parquet.tmp").write_bytes(b"half")
    (store.root / ".manifest.json.abc.tmp").write_text("{")
    assert len(store.leftovers()) == 3
    assert store.get_phrases([item(i).class_name for i in range(3)], key) == before
    assert store.verify() == []
    write_loop(str(store.root), [3])  # the next write removes them
    assert store.leftovers() == [] and not stray.exists()
    assert store.verify() == []
