"""Linux processes as /proc shows them: who descends from whom, who carries a run's token, and a signal
that cannot land on a recycled pid.

Standard library only: the supervisor (supervisor.py) imports this and must start in milliseconds.
"""
from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass
from typing import Callable, Iterable

TOKENS_VAR = "SEPT_RUN_TOKENS"  # space-separated tokens of the supervised runs a process belongs to

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str       # "R", "S", "Z", ... (/proc/PID/stat)
    start: int       # start time in clock ticks since boot: with the pid, names one process for good
    name: str        # the kernel's short name (what vLLM's setproctitle sets, e.g. "VLLM::EngineCor")
    argv: tuple[str, ...]

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X")

    def title(self) -> str:
        """What `ps` shows: the command line, else the short name."""
        return " ".join(self.argv)[:100] or self.name


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def read(pid: int) -> Proc | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    text = stat.decode(errors="replace")
    head, _, tail = text.rpartition(")")  # the name may hold spaces and parentheses
    f = tail.split()
    argv = tuple(a.decode(errors="replace") for a in (_read(f"/proc/{pid}/cmdline") or b"").split(b"\0") if a)
    return Proc(pid, int(f[1]), f[0], int(f[19]), head.partition("(")[2], argv)


def snapshot() -> dict[int, Proc]:
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            p = read(int(d))
            if p is not None:
                procs[p.pid] = p
    return procs


def descendants(root: int, procs: dict[int, Proc] | None = None) -> list[Proc]:
    """Every process below `root` in the parent tree (zombies included), parents before children."""
    procs = snapshot() if procs is None else procs
    children: dict[int, list[Proc]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(0), []):
            if c.pid != root:
                out.append(c)
                todo.append(c.pid)
    return out


def tokens_of(pid: int) -> set[str]:
    """The run tokens in the process's (initial) environment: inherited by everything a run starts."""
    env = _read(f"/proc/{pid}/environ") or b""
    prefix = TOKENS_VAR.encode() + b"="
    for entry in env.split(b"\0"):
        if entry.startswith(prefix):
            return set(entry[len(prefix):].decode(errors="replace").split())
    return set()


def carrying(tokens: Iterable[str], procs: dict[int, Proc] | None = None) -> dict[str, list[Proc]]:
    """Live processes whose environment carries each token (processes of other users are unreadable)."""
    wanted = set(tokens)
    found: dict[str, list[Proc]] = {t: [] for t in wanted}
    for p in (snapshot() if procs is None else procs).values():
        if p.alive and p.pid != os.getpid():
            for t in tokens_of(p.pid) & wanted:
                found[t].append(p)
    return found


def signal_if(pid: int, sig: int, still_ours: Callable[[Proc], bool]) -> bool:
    """Send `sig` to `pid` only if, read after the pid is pinned, the process passes `still_ours`.

    The pid is pinned with a pidfd first: should the process have exited and its pid gone to a stranger
    since we listed it, the check reads the stranger and fails, or the signal goes to the pinned (dead)
    process and is lost. Either way nobody else is hit.
    """
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, PermissionError):
        return False
    except (AttributeError, OSError):  # kernel < 5.3: a plain check-then-kill (a tiny window remains)
        fd = None
    try:
        p = read(pid)
        if p is None or not still_ours(p):
            return False
        try:
            if fd is not None:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    finally:
        if fd is not None:
            os.close(fd)


def rss_bytes(pid: int) -> int:
    statm = _read(f"/proc/{pid}/statm")
    try:
        return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE") if statm else 0
    except (IndexError, ValueError):
        return 0


def boot_id() -> str:
    return (_read("/proc/sys/kernel/random/boot_id") or b"").decode().strip()


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def become_subreaper() -> None:
    """Orphans among our descendants are re-parented to us, not to pid 1 (PR_SET_CHILD_SUBREAPER)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def on_parent_death(sig: int) -> None:
    """Linux sends us `sig` when our parent exits (PR_SET_PDEATHSIG; cleared in forked children)."""
    _prctl(_PR_SET_PDEATHSIG, int(sig))
