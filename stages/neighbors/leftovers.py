"""Run records in the cache's scratch folder, and the processes an earlier run left behind.

Each supervised run (supervisor.py) writes `<cache>/tmp/runs/<token>.json` before it starts its command
and removes it once its process tree is gone. A record still there names a run whose supervisor was killed
before it could clean up. The next run on the cache lists, from /proc, the processes whose environment
carries that run's random token: those provably belong to it (the token was only ever given to that
run's command, and everything the command starts inherits it). They are named on stderr with the command
that ends them; they are never ended here. A record whose processes are all gone is removed.

Standard library only (the supervisor imports it).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from cache.atomic import atomic_write_json
from stages.neighbors import proctree

RECORDS = "runs"  # folder under the cache's scratch folder (<cache>/tmp)


def write_record(folder: Path, token: str, command: list[str]) -> Path:
    me = proctree.read(os.getpid())
    record = {"token": token, "supervisor_pid": os.getpid(), "supervisor_start": me.start if me else None,
              "boot_id": proctree.boot_id(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": command[:6]}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{token}.json"
    atomic_write_json(path, record)
    return path


def _supervisor_alive(rec: dict) -> bool:
    if rec.get("boot_id") != proctree.boot_id():
        return False
    p = proctree.read(int(rec.get("supervisor_pid") or 0)) if rec.get("supervisor_pid") else None
    return p is not None and p.alive and p.start == rec.get("supervisor_start")


def find(folder: Path) -> list[tuple[dict, list[proctree.Proc]]]:
    """(record, its live processes) for every run whose supervisor is gone but whose processes are not.

    Records of live runs (another process working on this cache now) are left alone; records with
    nothing left alive are removed.
    """
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            token = str(rec["token"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a record being written right now, or not ours: never a reason to act
        if not _supervisor_alive(rec):
            records.append((path, rec, token))
    if not records:
        return []
    alive = proctree.carrying([t for _, _, t in records])
    out = []
    for path, rec, token in records:
        if alive[token]:
            out.append((rec, sorted(alive[token], key=lambda p: p.pid)))
        else:
            try:
                path.unlink()
            except OSError:
                pass
    return out


def report(folder: Path, out=None) -> int:
    """Name the processes left by earlier runs on stderr, with the command that ends them; return how many."""
    out = out or sys.stderr
    total = 0
    for rec, procs in find(folder):
        total += len(procs)
        gb = sum(proctree.rss_bytes(p.pid) for p in procs) / 1e9
        names = ", ".join(f"pid {p.pid} {p.title()[:60]}" for p in procs)
        print(f"warning: {len(procs)} process(es) of an earlier generation run on this cache (started "
              f"{rec.get('started', '?')}; its supervisor was killed) are still alive, holding {gb:.1f} GB: "
              f"{names}. They are not ended automatically; to end them: kill {' '.join(str(p.pid) for p in procs)}",
              file=out)
    return total
