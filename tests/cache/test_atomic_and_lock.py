import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from cache.atomic import atomic_dir, atomic_path, atomic_write_json, atomic_write_text
from cache.lock import file_lock


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "x.json"
    atomic_write_json(target, {"k": 1})
    atomic_write_json(target, {"k": 2})
    assert target.read_text().strip().endswith("}")
    assert '"k": 2' in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


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


def _hold_lock(path: str, seconds: float, q) -> None:
    with file_lock(path):
        q.put("held")
        time.sleep(seconds)


def test_lock_excludes_a_second_process_and_is_freed_on_kill(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    lock = tmp_path / "lock"
    p = ctx.Process(target=_hold_lock, args=(str(lock), 60, q))
    p.start()
    assert q.get(timeout=30) == "held"
    with pytest.raises(TimeoutError):
        with file_lock(lock, timeout=0.3):
            pass
    p.kill()
    p.join(10)
    # The kernel released the dead holder's lock: no stale lock file blocks us.
    with file_lock(lock, timeout=5):
        pass


def test_published_files_get_normal_permissions(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {})
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
