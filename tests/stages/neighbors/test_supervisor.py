"""The supervisor (stages/neighbors/supervisor.py) on real process trees, without an LLM.

The supervised command here is a small Python program that does what vLLM's engine does to the generation
worker: it starts children with multiprocessing's "spawn" (two sleepers standing in for the engine core
and its worker), then exits, fails, or waits. A "stubborn" variant's children ignore SIGTERM and SIGINT,
so only the supervisor's SIGKILL can end them: where a test uses it, a tree that is gone proves the
supervisor ended it; each such child writes down every SIGTERM it got, once it is running again after it. A launcher process calls `supervisor.run` as generate-neighbors does.

Every process of a test carries a marker in its environment; the census lists the live ones by it.
The engine itself (real vLLM) is covered by tests/pipeline/test_generate_neighbors_lifetime.py.
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from stages.neighbors import leftovers, proctree

ROOT = Path(__file__).resolve().parents[3]

TREE = textwrap.dedent('''
    import multiprocessing as mp, os, signal, sys, time

    def sleeper(stubborn, ready):
        got = []
        if stubborn:  # survives SIGTERM (noting it) and SIGINT
            signal.signal(signal.SIGTERM, lambda *_: got.append("TERM"))
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        open(ready, "w").close()
        for _ in range(60_000):
            time.sleep(0.01)
            if got:  # written here, after the handler returned: proof that it ran on after the SIGTERM
                with open(f"{ready}.signals", "a") as f:
                    f.write(f"{got.pop()}, then still running\\n")

    if __name__ == "__main__":
        mode, ready = sys.argv[1], sys.argv[2]
        ctx = mp.get_context("spawn")
        kids = [ctx.Process(target=sleeper, args=(mode == "stubborn", f"{ready}.{i}")) for i in range(2)]
        for k in kids:
            k.start()
        while not all(os.path.exists(f"{ready}.{i}") for i in range(2)):
            time.sleep(0.01)
        open(ready, "w").close()
        if mode == "ok":
            os._exit(0)   # exits without ending its children: the worst a command can do
        if mode == "fail":
            os._exit(3)
        time.sleep(600)
''')

LAUNCHER = textwrap.dedent('''
    import sys
    from pathlib import Path
    from stages.neighbors import supervisor

    tree, mode, ready, records, grace, started = sys.argv[1:7]
    open(started, "w").close()
    try:
        rc = supervisor.run([sys.executable, tree, mode, ready], records=Path(records), grace=float(grace))
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    print(f"rc={rc}", flush=True)
''')


class Case:
    def __init__(self, tmp: Path, mode: str, grace: float = 0.5):
        self.mark = f"SUPERVISOR_TEST_MARK={uuid.uuid4().hex}"
        (tmp / "tree.py").write_text(TREE)
        (tmp / "launcher.py").write_text(LAUNCHER)
        self.ready, self.started, self.records = tmp / "ready", tmp / "started", tmp / "runs"
        key, value = self.mark.split("=")
        env = dict(os.environ, PYTHONPATH=str(ROOT), **{key: value})
        self.out = tmp / "launcher.out"  # a file, not a pipe: survivors would hold a pipe open
        with open(self.out, "w") as out:
            self.launcher = subprocess.Popen(
                [sys.executable, str(tmp / "launcher.py"), str(tmp / "tree.py"), mode, str(self.ready),
                 str(self.records), str(grace), str(self.started)],
                env=env, stdout=out, start_new_session=True)

    def finish(self, timeout=60.0) -> str:
        """The launcher's output once it has exited."""
        self.launcher.wait(timeout=timeout)
        return self.out.read_text()

    def census(self) -> list[proctree.Proc]:
        """Live processes carrying this test's marker (the launcher included while it lives)."""
        out = []
        for p in proctree.snapshot().values():
            if p.alive and p.pid != os.getpid():
                env = Path(f"/proc/{p.pid}/environ")
                try:
                    if self.mark.encode() in env.read_bytes().split(b"\0"):
                        out.append(p)
                except OSError:
                    pass
        return out

    def wait_file(self, f: Path, timeout=60.0) -> None:
        deadline = time.monotonic() + timeout
        while not f.exists():
            assert time.monotonic() < deadline and self.launcher.poll() is None, f"{f.name} never appeared"
            time.sleep(0.01)

    def wait_tree(self) -> list[proctree.Proc]:
        self.wait_file(self.ready)
        deadline = time.monotonic() + 30
        while len(self.census()) < 5:  # launcher, supervisor, command, two children (+ mp's resource tracker)
            assert time.monotonic() < deadline, self.census()
            time.sleep(0.02)
        return self.census()

    def gone(self, timeout: float = 120.0) -> list[proctree.Proc]:
        """The census once it is empty; what is left if it is not after `timeout` (a guard against waiting
        forever when the supervisor fails, not a bound on how fast it is)."""
        deadline = time.monotonic() + timeout
        left = self.census()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.census()
        return left

    def pid_of(self, role: str) -> int:
        for p in self.census():
            if role == "supervisor" and p.argv[1:3] == ("-m", "stages.neighbors.supervisor"):
                return p.pid
            if role == "command" and p.argv[1:2] and p.argv[1].endswith("tree.py"):
                return p.pid
        raise AssertionError(f"no {role} among {[p.argv for p in self.census()]}")

    def cleanup(self) -> None:
        for p in self.census():
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def case(tmp_path):
    made = []

    def make(mode, grace=0.5):
        made.append(Case(tmp_path, mode, grace))
        return made[-1]

    yield make
    for c in made:
        c.cleanup()


@pytest.mark.parametrize("mode, rc", [("ok", 0), ("fail", 3)])
def test_when_the_command_ends_its_tree_is_gone_before_run_returns(case, mode, rc):
    c = case(mode)
    out = c.finish()
    assert f"rc={rc}" in out
    assert c.census() == []  # at once: run() returned after the supervisor had ended the tree
    assert not list(c.records.glob("*.json"))  # the run record is removed with the tree


def test_sigkill_of_the_launcher_ends_the_tree(case):
    c = case("stubborn")
    assert len(c.wait_tree()) >= 5  # the census sees the whole tree before the kill
    os.kill(c.launcher.pid, signal.SIGKILL)
    c.launcher.wait()
    assert c.gone() == []
    assert not list(c.records.glob("*.json"))


def test_sigkill_of_the_command_ends_its_children_and_is_reported(case):
    c = case("stubborn")
    c.wait_tree()
    os.kill(c.pid_of("command"), signal.SIGKILL)  # what the OOM killer does to the worker
    out = c.finish()
    assert f"rc={-signal.SIGKILL}" in out  # the launcher sees what the command died of
    assert c.census() == []


def test_children_that_ignore_sigterm_get_sigkill_after_the_grace(case):
    c = case("stubborn", grace=2.0)
    c.wait_tree()
    os.kill(c.pid_of("supervisor"), signal.SIGTERM)
    out = c.finish()
    assert f"rc={-signal.SIGTERM}" in out  # the command ended by our SIGTERM; the supervisor mirrors it
    assert c.census() == []  # they survive SIGTERM: only a SIGKILL ended them
    # Each child got exactly one SIGTERM and ran on after it (so the SIGTERM came first, and the SIGKILL not at
    # once but after the grace in which it could still run).
    assert [Path(f"{c.ready}.{i}.signals").read_text() for i in range(2)] == ["TERM, then still running\n"] * 2


def test_sigterm_of_the_launcher_ends_the_tree(case):
    c = case("stubborn")
    c.wait_tree()
    os.kill(c.launcher.pid, signal.SIGTERM)  # Python's default: the launcher dies at once
    c.launcher.wait()
    assert c.gone() == []


def test_ctrl_c_ends_the_tree_before_the_launcher_returns(case):
    c = case("stubborn")
    c.wait_tree()
    os.killpg(c.launcher.pid, signal.SIGINT)  # the terminal's Ctrl-C: every process of the group
    out = c.finish()
    assert "interrupted" in out
    assert c.census() == []  # run() waited for the supervisor before letting KeyboardInterrupt go on


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.03, 0.06, 0.1, 0.2, 0.4])
def test_sigkill_of_the_launcher_while_the_tree_starts(case, delay):
    c = case("stubborn")
    c.wait_file(c.started)
    time.sleep(delay)
    os.kill(c.launcher.pid, signal.SIGKILL)
    c.launcher.wait()
    assert c.gone() == []


def test_a_killed_supervisor_leaves_a_record_and_the_next_run_names_its_processes(case):
    c = case("stubborn")
    c.wait_tree()
    # While the run lives, its record is not a leftover.
    assert leftovers.find(c.records) == []
    assert len(list(c.records.glob("*.json"))) == 1
    os.kill(c.pid_of("supervisor"), signal.SIGKILL)  # the one case the supervisor cannot clean up
    c.finish()
    survivors = c.census()  # nobody ends them: the launcher has exited, they sleep on
    # The command, its two children and multiprocessing's resource tracker, re-parented away from us.
    assert len(survivors) >= 3
    buf = io.StringIO()
    assert leftovers.report(c.records, out=buf) == len(survivors)
    msg = buf.getvalue()
    pids = sorted(p.pid for p in survivors)
    assert f"kill {' '.join(map(str, pids))}" in msg and msg.count("\n") == 1
    assert "not ended automatically" in msg
    assert sorted(p.pid for p in c.census()) == pids  # named, not killed
    c.cleanup()
    assert c.gone() == []
    # Once they are gone, the record goes too, silently.
    buf = io.StringIO()
    assert leftovers.report(c.records, out=buf) == 0 and buf.getvalue() == ""
    assert not list(c.records.glob("*.json"))


def test_a_record_never_names_a_process_without_its_token(tmp_path):
    """A recycled pid: the record names a live process (this test) that is not the run's."""
    import json

    me = proctree.read(os.getpid())
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "abc.json").write_text(json.dumps({"token": "abc", "supervisor_pid": 1, "supervisor_start": -1,
                                                 "boot_id": proctree.boot_id()}))
    assert me is not None and leftovers.find(folder) == []
    assert not (folder / "abc.json").exists()


def test_the_supervised_tree_never_imports_from_the_folder_it_starts_in(tmp_path):
    """A user's folder holding a `cache.py` (or a `stages/` package) must not take the place of ours in
    the supervisor or in the command it runs (docs/design.md, "Import names")."""
    from stages.neighbors import supervisor

    home = tmp_path / "home"
    (home / "stages").mkdir(parents=True)
    (home / "stages" / "__init__.py").write_text("raise SystemExit('imported from the start folder')\n")
    (home / "cache.py").write_text("raise SystemExit('imported from the start folder')\n")
    out = tmp_path / "out.txt"
    probe = f"import cache.errors, stages; open({str(out)!r}, 'w').write(stages.__file__)"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rc = supervisor.run([sys.executable, "-c", probe],
                        records=tmp_path / "records", env=env, cwd=home)
    assert rc == 0 and Path(out.read_text()) == ROOT / "stages" / "__init__.py"
