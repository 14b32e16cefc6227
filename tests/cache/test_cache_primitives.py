"""The primitives the store is built on: atomic writes, inter-process locks, fingerprints."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cache.atomic import atomic_dir, atomic_path, atomic_write_json, atomic_write_text
from cache.fingerprint import cache_root, sha256_arrays, sha256_bytes, sha256_json
from cache.lock import file_lock

_HOLD_LOCK = "import sys, time\nfrom cache.lock import file_lock\nwith file_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n"


def test_atomic_write_replaces_the_file_whole_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "x.json"
    atomic_write_json(target, {"k": 1})
    atomic_write_json(target, {"k": 2})
    assert target.read_text().strip().endswith("}")
    assert '"k": 2' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "t.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temp file left behind
    atomic_write_json(target, {"b": 1, "a": 2})
    assert target.read_text().index('"a"') < target.read_text().index('"b"')


def _writer_killed_midway(target: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text("partial")
        os.kill(os.getpid(), signal.SIGKILL)


def test_kill_during_write_keeps_old_content(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")
    p = mp.get_context("spawn").Process(target=_writer_killed_midway, args=(str(target),))
    p.start()
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    assert target.read_text() == "old"


def test_published_files_get_normal_permissions(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {})
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_dir_publishes_whole_folder_or_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d") as d:
            (d / "f").write_text("1")
            raise RuntimeError
    assert not (tmp_path / "d").exists()
    with atomic_dir(tmp_path / "d") as d:
        (d / "f").write_text("1")
    assert (tmp_path / "d" / "f").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_atomic_dir_loser_of_a_race_is_discarded(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("first")
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("second")
    assert (target / "x").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path):
    lock = tmp_path / ".lock"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])
    )
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError):
            with file_lock(lock, timeout=0.3):
                pass
        with pytest.raises(TimeoutError):
            with file_lock(lock, timeout=0.3, shared=True):
                pass
        holder.kill()  # SIGKILL: the kernel drops the flock
        holder.wait()
        with file_lock(lock, timeout=0):  # granted at once: no stale lock file outlives its holder
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_shared_locks_coexist_and_exclude_a_writer(tmp_path):
    # flock locks belong to an open file, so one process with two opens stands for two readers here.
    lock = tmp_path / ".lock"
    with file_lock(lock, shared=True):
        with file_lock(lock, shared=True, timeout=0):  # granted at once, beside the first reader
            with pytest.raises(TimeoutError, match="could not lock"):
                with file_lock(lock, timeout=0.2):
                    pass
        with pytest.raises(TimeoutError):  # one reader left: still no writer
            with file_lock(lock, timeout=0.2):
                pass
    with file_lock(lock, timeout=0.5):  # every reader gone: the writer gets it
        with pytest.raises(TimeoutError):  # and a reader now waits for the writer
            with file_lock(lock, shared=True, timeout=0.2):
                pass


def test_fingerprints():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
    assert sha256_bytes(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    x = np.arange(6, dtype=np.float32)
    assert sha256_arrays([("x", x)]) != sha256_arrays([("x", x.astype(np.float64))])
    assert sha256_arrays([("x", x)]) != sha256_arrays([("x", x.reshape(2, 3))])


def test_cache_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("SEPT_CACHE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert cache_root() == tmp_path / "env"
    monkeypatch.delenv("SEPT_CACHE_DIR")
    assert cache_root() == tmp_path / "xdg" / "sept-pipeline"
