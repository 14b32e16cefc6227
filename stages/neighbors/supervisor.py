"""A command's whole process tree, bound to the lifetime of the process that launched it.

    rc = supervisor.run([sys.executable, "-m", "stages.neighbors.worker", ...], records=<cache>/tmp/runs)
    with supervisor.started([...], records=..., stdin=PIPE, stdout=PIPE) as proc:   # talk to it meanwhile
        ...

`run` starts `python -m stages.neighbors.supervisor --parent <our pid> ... -- COMMAND`, a small process
(standard library only) that sits between the launcher and the command:

- it is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever the command starts (vLLM's engine core and
  its workers, spawned during the engine's start-up) stays below it even when its own parent dies, so
  "the tree" can always be listed from /proc by parentage;
- it ends that whole tree (SIGTERM, a short grace for vLLM's own shutdown, then SIGKILL until nothing is
  left) when the command exits (normally, failing, or SIGKILLed, as by the OOM killer), when it is sent
  SIGTERM or SIGHUP, and when the launcher dies (its parent pid changes; checked every POLL seconds);
- before starting the command it writes a run record (leftovers.py) and gives the command a random token
  in its environment; the record is removed when the tree is gone. A record left by a supervisor that was
  itself SIGKILLed lets the next run name the survivors without guessing (leftovers.report).

Ctrl-C reaches the whole foreground process group: the supervisor ignores it and cleans up after the
command. Exit status: the command's (a command killed by signal N makes the supervisor die of N), so
the launcher reads it as if it had run the command itself. Why this holds at every moment of a run:
docs/design.md, "Process lifetime".
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from stages.neighbors import leftovers, proctree

POLL = 0.1    # seconds between checks of the launcher and the command
GRACE = 3.0   # seconds the tree gets to stop on SIGTERM before SIGKILL
KILL_TIMEOUT = 30.0  # seconds of SIGKILL before giving up on a process that will not go
PARENT_VAR = "SEPT_SUPERVISOR_PID"  # tells the command which pid its parent must be


# ------------------------------------------------------------------------------------------------
# The launcher's side


def run(command: list[str], *, records: Path, env: dict | None = None, grace: float = GRACE, **popen) -> int:
    """Run `command` supervised; return its exit code (negative: killed by that signal).

    If this call is interrupted (Ctrl-C, an exception from a signal handler), the supervisor is asked to
    end the tree and waited for before the exception goes on, so nothing of the run outlives the call.
    """
    with started(command, records=records, env=env, grace=grace, **popen) as proc:
        return proc.wait()


@contextmanager
def started(command: list[str], *, records: Path, env: dict | None = None, grace: float = GRACE,
            **popen) -> Iterator[subprocess.Popen]:
    """`command` running supervised, as the supervisor's Popen (its stdin/stdout are the command's when
    `popen` asks for pipes: the supervisor itself never reads or writes them).

    Whatever ends the block early (an exception, Ctrl-C) asks the supervisor to end the tree and waits
    for it before going on; a block that ends normally waits for the command to exit (the caller has
    told it to: closed its stdin, say). Either way nothing of the run outlives the block.
    """
    env = dict(os.environ if env is None else env)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # Never import from the folder the user started in (a `cache.py` there would take the place of our
    # `cache`): Python 3.11+ leaves the current folder off sys.path of the supervisor and of the worker.
    env["PYTHONSAFEPATH"] = "1"
    argv = [sys.executable, "-m", "stages.neighbors.supervisor", "--parent", str(os.getpid()),
            "--records", str(records), "--grace", str(grace), "--", *command]
    proc = subprocess.Popen(argv, env=env, **popen)
    try:
        yield proc
        if proc.stdin is not None:
            proc.stdin.close()  # a command that reads its stdin to the end now sees it
        proc.wait()
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace + 30)
        except BaseException:  # noqa: BLE001 - a second Ctrl-C: the supervisor still sees us go
            pass
        raise
    finally:
        for f in (proc.stdin, proc.stdout, proc.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass


def describe_exit(rc: int) -> str:
    if rc >= 0:
        return f"exit {rc}"
    try:
        name = signal.Signals(-rc).name
    except ValueError:
        name = f"signal {-rc}"
    why = " (what the out-of-memory killer sends)" if -rc == signal.SIGKILL else ""
    return f"killed by {name}{why}"


# ------------------------------------------------------------------------------------------------
# The supervisor process


class _Supervisor:
    def __init__(self, parent: int, grace: float):
        self.parent, self.grace = parent, grace
        self.stop: int | None = None          # the signal that asked us to stop
        self.child: subprocess.Popen | None = None
        self.status: int | None = None        # the command's exit code, once reaped
        self.token = secrets.token_hex(12)

    def launcher_alive(self) -> bool:
        return os.getppid() == self.parent

    def _on_signal(self, signum, frame) -> None:
        self.stop = signum

    def start(self, command: list[str]) -> None:
        env = dict(os.environ)
        env[proctree.TOKENS_VAR] = " ".join([*env.get(proctree.TOKENS_VAR, "").split(), self.token])
        env[PARENT_VAR] = str(os.getpid())
        # vLLM names its processes with setproctitle (VLLM::EngineCore), which by default overwrites the
        # memory /proc/PID/environ shows, token included; with SPT_NOENV it keeps the title within argv.
        env.setdefault("SPT_NOENV", "1")
        self.child = subprocess.Popen(command, env=env)

    def reap(self) -> None:
        """Collect every exited child: the command, and orphans of its tree re-parented to us."""
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child is not None and pid == self.child.pid:
                self.status = self.child.returncode = os.waitstatus_to_exitcode(st)

    def ours(self, p: proctree.Proc) -> bool:
        if p.pid == os.getpid():
            return False
        if self.token in proctree.tokens_of(p.pid):
            return True
        return any(d.pid == p.pid for d in proctree.descendants(os.getpid()))

    def live_tree(self) -> list[proctree.Proc]:
        procs = proctree.snapshot()
        tree = {p.pid: p for p in proctree.descendants(os.getpid(), procs) if p.alive}
        # Anything that left the tree some other way still carries the token.
        for p in proctree.carrying([self.token], procs)[self.token]:
            tree.setdefault(p.pid, p)
        return list(tree.values())

    def watch(self) -> None:
        while self.status is None and self.stop is None and self.launcher_alive():
            time.sleep(POLL)
            self.reap()

    def end_tree(self) -> None:
        """SIGTERM to every process of the tree, a grace period, then SIGKILL until none is left."""
        self.reap()
        tree = self.live_tree()
        for p in tree:
            proctree.signal_if(p.pid, signal.SIGTERM, self.ours)
        deadline = time.monotonic() + self.grace
        while tree and time.monotonic() < deadline:
            time.sleep(0.05)
            self.reap()
            tree = self.live_tree()
        deadline = time.monotonic() + KILL_TIMEOUT
        while tree:  # killed processes cannot start new ones: this ends
            if time.monotonic() > deadline:  # e.g. stuck in uninterruptible I/O: say so rather than hang
                print(f"supervisor: could not end {', '.join(f'pid {p.pid} {p.title()[:40]}' for p in tree)}",
                      file=sys.stderr)
                break
            for p in tree:
                proctree.signal_if(p.pid, signal.SIGKILL, self.ours)
            time.sleep(0.02)
            self.reap()
            tree = self.live_tree()
        self.reap()


def _exit_like(code: int | None, fallback: int) -> int:
    if code is None:
        return fallback
    if code < 0:  # die of the same signal, so that our launcher sees what the command saw
        sig = -code
        if sig != signal.SIGKILL:
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return code


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    opts = dict(zip(argv[:sep:2], argv[1:sep:2]))
    command = argv[sep + 1:]
    parent = int(opts["--parent"])
    if not sys.platform.startswith("linux"):  # no /proc, no subreaper: run the command plainly
        return subprocess.call(command)
    sup = _Supervisor(parent, float(opts.get("--grace", GRACE)))
    proctree.become_subreaper()
    signal.signal(signal.SIGTERM, sup._on_signal)
    signal.signal(signal.SIGHUP, sup._on_signal)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda *a: None)  # Ctrl-C: the command decides; we clean up after it
    if not sup.launcher_alive():
        return 1  # the launcher died before we were ready: start nothing
    record = leftovers.write_record(Path(opts["--records"]), sup.token, command)
    try:
        if sup.stop is None:
            sup.start(command)
            sup.watch()
    finally:
        sup.end_tree()
        try:
            record.unlink()
        except OSError:
            pass
    return _exit_like(sup.status, 128 + (sup.stop or 0) if sup.stop else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
