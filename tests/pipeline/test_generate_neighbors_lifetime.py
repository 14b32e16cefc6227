"""No process of a `generate-neighbors` run outlives it: the census test on the real vLLM CPU build.

Thirteen runs on one cache, each asking for two classes the store lacks (so each starts an engine), are
ended at moments spread over the engine's start-up, generation, the encoding of candidates while the engine
waits for the next round, and the encoding after the engine is gone: SIGKILL of
the CLI, SIGKILL of the generation worker (what an OOM killer does), SIGTERM of the CLI, Ctrl-C (SIGINT to
the CLI's process group). Within a few seconds after each (census_after), a census lists every live
process that belongs to the run: its working folder is the one the test gave the run (every process the
run starts inherits it, vLLM's `VLLM::EngineCore` and `VLLM::Worker` included), or its environment or
command line names this test's cache. None may be left. Survivors are ended by the test itself after
being counted (they are provably this test's: their environment names its private cache), so that one
failure does not starve the following runs of memory.

A last run ends normally and is counted the same way. How the mechanism works, and why it holds in each
case: docs/design.md, "Process lifetime".

The plan runs in a background thread while the module's other tests run (census_in_background), and the
census test, last in the file, collects it.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
POOL = ["dog", "rain", "church bells", "sea waves", "thunder", "violin", "cat", "car horn", "applause",
        "birds", "chainsaw", "train", "wind", "helicopter", "sheep", "cow", "explosion", "drum", "piano",
        "siren", "footsteps", "typing", "water drops", "owl", "bees", "clock tick", "snoring", "frog"]
# Filters off (the random CLAP has no semantics), greedy, short answers and no retry: the runs are about
# processes, not phrases.
SETTINGS = ["--set", "neighbors.near_duplicate_cos=1.0", "--set", "neighbors.temperature=0",
            "--set", "neighbors.max_retries=0", "--set", "neighbors.max_tokens=48"]
CENSUS_AFTER = 6.0  # seconds the run's processes get to exit after its CLI ended (census_after)


@dataclass(frozen=True)
class Kill:
    how: str      # "cli": SIGKILL the CLI; "worker": SIGKILL the generation worker; "term": SIGTERM the CLI;
    #               "ctrl-c": SIGINT to the CLI's process group
    event: str    # when the clock starts: "start", "worker", "spawn", "engine", "generating", "encoding"
    delay: float  # seconds after the event
    extra: tuple[str, ...] = ()  # settings of this run only


# A worker killed while it generates needs a generation long enough to be caught on a fast machine: up to
# 400 tokens per answer instead of 48 (the engine also takes a moment to shut down before the worker exits).
LONG_ANSWERS = ("--set", "neighbors.max_tokens=400")
# The embedding filter on (a threshold the tiny random CLAP's texts fall under, as in
# tests/stages/neighbors/test_class_independence.py) and a retry round: the CLI encodes the candidates of
# round one while the worker waits with its engine for the next round.
FILTER_ON = ("--set", "neighbors.near_duplicate_cos=0.9995", "--set", "neighbors.max_retries=1")


PLAN = [
    Kill("cli", "worker", 0.5),        # start-up: the worker imports vLLM / converts the model files
    Kill("cli", "spawn", 0.0),         # the engine core has just been spawned, not yet named
    Kill("worker", "engine", 0.0),     # ... and has named itself VLLM::EngineCore
    Kill("cli", "engine", 4.0),        # the engine core loads weights, profiles, starts its VLLM::Worker
    Kill("term", "engine", 2.0),
    Kill("worker", "engine", 2.0),     # still loading: on a quiet machine the engine is ready ~5 s after naming
    Kill("cli", "generating", 0.0, LONG_ANSWERS),
    Kill("worker", "generating", 0.3, LONG_ANSWERS),
    Kill("ctrl-c", "generating", 0.0, LONG_ANSWERS),
    Kill("cli", "encoding", 0.0),       # the worker has exited; the CLI loads the text encoder
    Kill("cli", "start", random.Random(11).uniform(3.0, 30.0)),
    Kill("cli", "filtering", 0.0, FILTER_ON),     # the CLI encodes round one's candidates, the engine waits
    Kill("worker", "filtering", 0.0, FILTER_ON),  # ... and the worker dies meanwhile (the CLI fails, exit 1)
]


@pytest.fixture(scope="module")
def clap(tmp_path_factory):
    from stages.backbones.factory import make_random_clap

    return make_random_clap("tiny", 0, tmp_path_factory.mktemp("life-clap") / "tiny-clap")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _cwd(pid: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def census(cache: Path) -> list[dict]:
    """Every live (non-zombie) process of the runs on `cache`: its working folder is the runs' own (cwd),
    its environment names the cache, or its command line does.

    The working folder is what catches vLLM's processes for sure: `setproctitle` (VLLM::EngineCore)
    overwrites the memory /proc/PID/environ reads, unless SPT_NOENV is set, and the code under test
    must not be what makes its own census work.
    """
    env_mark = f"SEPT_CACHE_DIR={cache}".encode()
    home = str(cache.parent / "cwd")
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        stat = _read(f"/proc/{d}/stat").decode(errors="replace")
        if not stat or stat.rsplit(")", 1)[1].split()[0] == "Z":
            continue
        cmdline = _read(f"/proc/{d}/cmdline")
        if (_cwd(d) == home or env_mark in _read(f"/proc/{d}/environ").split(b"\0")
                or str(cache).encode() in cmdline):
            found.append({"pid": int(d), "ppid": int(stat.rsplit(")", 1)[1].split()[1]),
                          "argv": [a.decode(errors="replace") for a in cmdline.split(b"\0")],
                          "cmdline": cmdline.replace(b"\0", b" ").decode(errors="replace")[:120]})
    return found


def census_after(cache: Path, seconds: float) -> list[dict]:
    """The census `seconds` after a run's CLI has ended, taken early once two censuses 0.2 s apart are
    empty: when no process of the run is left, none can come back (only a live one could start it), so an
    early empty census says what the one at `seconds` would. A run that leaves survivors waits the whole
    time and is counted as before."""
    deadline = time.monotonic() + seconds
    empty_since = None
    while True:
        left = census(cache)
        now = time.monotonic()
        if left:
            empty_since = None
        elif empty_since is None:
            empty_since = now
        elif now - empty_since >= 0.2:
            return left
        if now >= deadline:
            return left
        time.sleep(0.1)


def _end(procs: list[dict]) -> None:
    """SIGKILL the given survivors and wait until they are gone (a process holding gigabytes takes a
    moment to exit), so that the next run's census does not see them."""
    for p in procs:
        try:
            os.kill(p["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    pids = {p["pid"] for p in procs}
    while time.monotonic() < deadline:
        live = [pid for pid in pids if (_read(f"/proc/{pid}/stat").decode() or "x) Z").rsplit(")", 1)[1].split()[0]
                not in ("Z", "X")]
        if not live:
            return
        time.sleep(0.1)


def _run_pids(cache: Path, needle: str) -> list[int]:
    return [p["pid"] for p in census(cache) if needle in p["cmdline"]]


def _worker_pids(cache: Path) -> list[int]:
    """The generation worker itself: `python -m stages.neighbors.worker ...` (not a process naming it)."""
    return [p["pid"] for p in census(cache) if p["argv"][1:3] == ["-m", "stages.neighbors.worker"]]


class Run:
    """One `generate-neighbors` CLI with its stderr collected in the background."""

    def __init__(self, cache: Path, classes: list[str], clap: Path, model_dir: Path, name: str,
                 extra: tuple[str, ...] = ()):
        f = cache.parent / f"{name}.txt"
        f.write_text("\n".join(classes) + "\n")
        env = dict(os.environ, SEPT_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
        args = [sys.executable, "-m", "pipeline.cli", "generate-neighbors", "--classes-file", str(f),
                "--backbone", str(clap), "--cache-dir", str(cache), "--set", f'neighbors.model_dir="{model_dir}"',
                *SETTINGS, *extra, "--json"]
        self.cache = cache
        # The worker log is one file per cache, appended by every run: this run reads only what it adds.
        self.log_start = len(self.worker_log(0))
        self.t0 = time.monotonic()
        home = cache.parent / "cwd"  # every process of the run inherits it: the census's surest mark
        home.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(args, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.err = bytearray()
        self.out = bytearray()
        self._readers = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))]
        for t in self._readers:
            t.start()
        self.seen_worker = False

    @staticmethod
    def _pump(stream, buf: bytearray) -> None:
        while True:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return
            buf.extend(chunk)

    def happened(self, event: str) -> bool:
        if event == "start":
            return True
        if event == "worker":
            return bool(_worker_pids(self.cache))
        if event == "spawn":  # vLLM's engine core process exists, named or not yet
            return bool(_run_pids(self.cache, "multiprocessing.spawn") or _run_pids(self.cache, "VLLM::"))
        if event == "engine":
            return bool(_run_pids(self.cache, "VLLM::EngineCore"))
        if event == "generating":  # the engine's progress bar, in the worker's log file (worker_log.py)
            return b"Processed prompts" in self.worker_log() or b"generate (transformers)" in self.worker_log()
        if event == "filtering":  # the CLI's progress line: it encodes candidates while the worker waits
            return b"(the LLM engine waits)" in self.err and bool(_worker_pids(self.cache))
        if event == "encoding":  # the worker was seen and is gone: the CLI is past generation
            alive = bool(_worker_pids(self.cache))
            self.seen_worker |= alive
            return self.seen_worker and not alive
        raise ValueError(event)

    def worker_log(self, start: int | None = None) -> bytes:
        """This run's part of the cache's worker log (from `start`, default where it stood when the run began)."""
        try:
            data = (self.cache / "logs" / "llm-worker.log").read_bytes()
            return data[self.log_start if start is None else start:]
        except FileNotFoundError:
            return b""

    def tail(self) -> str:
        """What to show when an event never came: the CLI's stderr and the worker's log, ends of both."""
        return (bytes(self.err[-2000:]) + b"\n--- worker log ---\n" + self.worker_log()[-2000:]).decode(errors="replace")

    def wait_for(self, event: str, timeout: float = 400.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.happened(event):
                return True
            time.sleep(0.02)
        return False

    def end(self, how: str) -> None:
        if how == "cli":
            os.kill(self.proc.pid, signal.SIGKILL)
        elif how == "term":
            os.kill(self.proc.pid, signal.SIGTERM)
        elif how == "ctrl-c":
            os.killpg(self.proc.pid, signal.SIGINT)  # what the terminal does: the whole foreground group
        elif how == "worker":
            pids = _worker_pids(self.cache)
            assert pids, "no generation worker to kill"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        else:
            raise ValueError(how)

    def finish(self, timeout: float = 120.0) -> int:
        rc = self.proc.wait(timeout=timeout)
        for t in self._readers:
            t.join(timeout=10)
        return rc


def _census_plan(cache: Path, clap: Path, llm_model_dir: Path) -> list[str]:
    """The killed runs of PLAN one after another on `cache`, then the normal one; its report."""
    cache.mkdir(parents=True)
    report = []
    survivors_total = 0
    for i, kill in enumerate(PLAN):
        classes = POOL[2 * i:2 * i + 2]
        run = Run(cache, classes, clap, llm_model_dir, f"run{i}", kill.extra)
        reached = run.wait_for(kill.event)
        if not reached:
            run.proc.kill()
            run.finish()
            left = census(cache)
            _end(left)
            pytest.fail(f"run {i} ({kill}): the event never came (exit {run.proc.returncode}); "
                        f"stderr and worker log tails: {run.tail()}")
        time.sleep(kill.delay)
        at = time.monotonic() - run.t0
        still_running = run.proc.poll() is None
        if still_running:
            if kill.how == "worker" and not _worker_pids(cache):
                run.proc.kill()
                run.finish()
                _end(census(cache))
                pytest.fail(f"run {i} ({kill}): the worker had already exited {at:.1f}s after start; "
                            f"the plan must kill it while it lives")
            run.end(kill.how)
        rc = run.finish()
        left = census_after(cache, CENSUS_AFTER)
        survivors_total += len(left)
        report.append(f"run {i}: {kill.how} at {kill.event}+{kill.delay:.1f}s ({at:.1f}s after start), "
                      f"{'killed' if still_running else 'had already ended'}, exit {rc}, "
                      f"{len(left)} left: {[(p['pid'], p['ppid'], p['cmdline']) for p in left]}")
        _end(left)  # waits until they are gone: the next run starts on a clean slate
    assert survivors_total == 0, f"{survivors_total} processes outlived their run:\n" + "\n".join(report)

    # A run that ends normally leaves nothing either, and the store the killed runs left is consistent.
    run = Run(cache, POOL[18:20] + POOL[-2:], clap, llm_model_dir, "final")  # those of run 9, two never asked
    assert len(POOL) >= 2 * len(PLAN) + 2
    rc = run.finish(timeout=900)
    assert rc == 0, bytes(run.err[-3000:]).decode(errors="replace")
    left = census_after(cache, 3.0)
    _end(left)
    assert left == []
    summary = json.loads(bytes(run.out))
    assert summary["classes"] == 4
    v = subprocess.run([sys.executable, "-m", "pipeline.cli", "neighbors", "verify", "--json", "--cache-dir",
                        str(cache)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                       text=True, timeout=300)
    assert v.returncode == 0 and json.loads(v.stdout)["ok"], v.stdout + v.stderr
    return report


@pytest.fixture(scope="module", autouse=True)
def census_in_background(request, tmp_path_factory, clap, llm_model_dir):
    """The census plan, started in a thread before the module's first test when the census test is selected.

    Its runs stay one after another on one cache; the other tests of this module have caches and working
    folders of their own, so their censuses and the plan's never see each other's processes. They run
    meanwhile: a run spends most of its time in single-threaded start-up (imports, spawning, loading) and
    an engine serves on one thread, so on two cores the module takes little more than the plan alone.
    The census test, last in the module, waits for the plan and reports it.
    """
    from concurrent.futures import ThreadPoolExecutor

    if not any(item.name == "test_no_process_of_a_killed_run_survives" for item in request.session.items):
        yield None
        return
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(_census_plan, tmp_path_factory.mktemp("census") / "cache", clap, llm_model_dir)
    yield future
    future.exception()  # a test of the module failed or stopped the session early: still wait for the plan
    pool.shutdown()


TRANSFORMERS = ("--backend", "transformers", "--set", "neighbors.transformers_batch_size=1")


@pytest.mark.parametrize("how", ["cli", "worker", "term", "ctrl-c"])
def test_transformers_backend_leaves_nothing(tmp_path, clap, llm_model_dir, how):
    """The transformers backend has no engine process, but its worker holds the model: same rules."""
    cache = tmp_path / "cache"
    cache.mkdir()
    run = Run(cache, ["dog", "rain", "wind"], clap, llm_model_dir, "t", TRANSFORMERS)
    assert run.wait_for("generating"), run.tail()
    run.end(how)
    rc = run.finish()
    assert rc != 0
    if how in ("worker", "ctrl-c"):  # the CLI lives on and reports, after its tree is gone
        assert census(cache) == []
        err = bytes(run.err).decode(errors="replace")
        # Ctrl-C: click turns KeyboardInterrupt into "aborted" (exit 1) once supervisor.run has returned.
        assert ("killed by SIGKILL" in err) if how == "worker" else ("aborted" in err), err[-2000:]
    left = census_after(cache, CENSUS_AFTER)
    _end(left)
    assert left == []
    assert not list((cache / "tmp" / "runs").glob("*.json"))  # run records go with their runs


def test_a_failing_worker_leaves_no_engine(tmp_path, clap, llm_model_dir):
    """The engine starts, then every request fails (prompt longer than the context): the CLI reports the
    failure and, by the time it has exited, the engine core and its workers are gone."""
    cache = tmp_path / "cache"
    cache.mkdir()
    run = Run(cache, ["dog"], clap, llm_model_dir, "f", ("--set", "neighbors.max_model_len=64"))
    assert run.wait_for("engine"), run.tail()
    rc = run.finish(timeout=400)
    assert rc == 1 and b"generation worker failed (exit 1)" in run.err, bytes(run.err[-3000:]).decode(errors="replace")
    left = census(cache)
    _end(left)
    assert left == []


@pytest.mark.parametrize("event", ["engine", "generating"])
def test_a_supervisor_killed_alone_still_takes_the_engine_down(tmp_path, clap, llm_model_dir, event):
    """The fallback: the worker gets SIGTERM when its supervisor dies, and shuts its engine down itself."""
    cache = tmp_path / "cache"
    cache.mkdir()
    run = Run(cache, ["dog"], clap, llm_model_dir, "s")
    assert run.wait_for(event), run.tail()
    sup = [p["pid"] for p in census(cache) if p["argv"][1:3] == ["-m", "stages.neighbors.supervisor"]]
    assert len(sup) == 1
    os.kill(sup[0], signal.SIGKILL)
    assert run.finish() == 1 and b"killed by SIGKILL" in run.err
    deadline = time.monotonic() + 20  # vLLM's own shutdown, not ours: give it its time
    while census(cache) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = census(cache)
    _end(left)
    assert left == []


def test_an_engine_a_killed_supervisor_left_is_named_by_the_next_run(tmp_path, clap, llm_model_dir):
    """The one case the supervisor cannot clean up is its own SIGKILL together with the worker's: the
    engine core is orphaned. The next run on the cache names it on stderr and leaves it alive."""
    cache = tmp_path / "cache"
    cache.mkdir()
    run = Run(cache, ["dog"], clap, llm_model_dir, "a")
    assert run.wait_for("engine"), run.tail()
    sup = [p["pid"] for p in census(cache) if p["argv"][1:3] == ["-m", "stages.neighbors.supervisor"]]
    for pid in _worker_pids(cache) + sup:  # the worker first: the supervisor must not see it go
        os.kill(pid, signal.SIGKILL)
    run.finish()
    time.sleep(2.0)
    orphans = [p for p in census(cache) if p["cmdline"].startswith("VLLM::")]
    try:
        assert orphans, "nothing was orphaned: the case this test needs did not happen"
        nxt = Run(cache, ["rain"], clap, llm_model_dir, "b", TRANSFORMERS + ("--set", "neighbors.max_tokens=8"))
        assert nxt.finish(timeout=400) == 0, bytes(nxt.err[-3000:]).decode(errors="replace")
        err = bytes(nxt.err).decode(errors="replace")
        line = next(x for x in err.splitlines() if "earlier generation run" in x)
        for p in orphans:
            assert f"pid {p['pid']} VLLM::" in line and str(p["pid"]) in line.split("kill ")[-1]
        still = {p["pid"] for p in census(cache)}
        assert {p["pid"] for p in orphans} <= still  # named, never ended by the tool
    finally:
        _end(census(cache))


def _tail(folder: Path) -> str:
    return "".join(f.read_text()[-3000:] for f in folder.glob("*")) if folder.is_dir() else "no log"


def test_a_killed_sweep_takes_its_stage_one_run_with_it(tmp_path, clap, llm_model_dir):
    """A sweep's stage one runs `generate-neighbors` for the classes its SEPT cells lack; killing the sweep
    while the engine starts must end the CLI, its worker and the engine."""
    cache = tmp_path / "cache"
    home = tmp_path / "cwd"
    home.mkdir()
    sweep = tmp_path / "s.toml"
    sweep.write_text(f"""
[sweep]
runs_dir = "{tmp_path / 'runs'}"
data_root = "{tmp_path / 'data'}"
backbone = "{clap}"
cache_dir = "{cache}"
[grid]
dataset = ["demo"]
method = ["coop"]
sept = [true]
seed = [1]
[set]
"neighbors.model_dir" = "{llm_model_dir}"
"neighbors.near_duplicate_cos" = 1.0
"neighbors.max_retries" = 0
""")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipeline.sweep.grid import expand\n"
        "from pipeline.sweep.spec import parse_sweep\n"
        "from pipeline.sweep.stage_one import fill_store, find_missing\n"
        f"spec = parse_sweep(Path({str(sweep)!r}))\n"
        "Path('state').mkdir()\n"
        "print(fill_store(spec, find_missing(spec, expand(spec)), Path('state')))\n"
    )
    env = dict(os.environ, SEPT_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=home, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 400
    while not any(p["cmdline"].startswith("VLLM::EngineCore") for p in census(cache)):
        assert proc.poll() is None and time.monotonic() < deadline, _tail(home / "state" / "logs")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = census_after(cache, CENSUS_AFTER)
    _end(left)
    assert left == []


def test_no_process_of_a_killed_run_survives(census_in_background):
    """Last in the module: the plan ran in the background (census_in_background) while the tests above ran."""
    report = census_in_background.result()
    print("\n".join(report))
    assert len(report) == len(PLAN) >= 10
