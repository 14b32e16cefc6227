"""The parent's side of the LLM worker (worker.py): the JSON request it reads, and the session with it.

The request carries everything the worker needs for the run (model, prompts, sampling, cleaning rules);
each round is then asked for over a pipe (WorkerSession.ask), so one engine serves every round of a run.
The worker runs under a supervisor (supervisor.py) in a child process, so vLLM and its engine core never
live in the process that writes the store.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from stages.neighbors import worker_log
from stages.neighbors.keys import GenerationIdentity


def sampling_spec(cfg) -> dict:
    """The sampling recipe every request derives from (sampling.round_sampling)."""
    from stages.neighbors.engines import neighbors_schema

    n = cfg.neighbors
    schema = neighbors_schema(n.overgenerate, n.max_chars) if n.output_format == "json" else None
    return {"temperature": n.temperature, "retry_temperature": n.retry_temperature, "top_p": n.top_p,
            "max_tokens": n.max_tokens, "seed": n.seed, "repetition_penalty": n.repetition_penalty,
            "frequency_penalty": n.frequency_penalty,
            "json_schema": schema, "samples": n.samples, "sample_temperature": n.sample_temperature}


def cleaning_kwargs(cfg) -> dict:
    """The cleaning rules (cleaning.clean_answer keywords) of the [neighbors] section."""
    n = cfg.neighbors
    return {"max_words": n.max_words, "max_chars": n.max_chars, "same_script": n.same_script}


class WorkerSession:
    """The parent's handle on a running worker (worker.py): the engine it reported, and its rounds."""

    def __init__(self, proc, backend: str, log: Path | None):
        self.proc, self.backend, self.log = proc, backend, log
        self.ready: dict | None = None

    def _failed(self) -> RuntimeError:
        from stages.neighbors import supervisor

        try:
            rc = self.proc.wait(timeout=60)  # its supervisor ends the tree, then exits with the worker's status
        except Exception:  # noqa: BLE001 - still running: say so rather than hang
            rc = None
        where = "its log is above" if self.log is None else \
            f"last line of its log: {(worker_log.last_lines(self.log) or ['(empty)'])[0]!r}; full log: {self.log}"
        how = "it stopped answering" if rc is None else supervisor.describe_exit(rc)
        return RuntimeError(f"the {self.backend} generation worker failed ({how}); {where}")

    def _receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise self._failed()
        return json.loads(line)

    def wait_ready(self) -> dict:
        """The engine's name, version, dtype (and why) and start-up seconds, once it has started."""
        if self.ready is None:
            self.ready = self._receive()["ready"]
        return self.ready

    def ask(self, classes: list[str], round_index: int, earlier: dict[str, list[str]]) -> dict:
        """One round for `classes`: the worker's ranked candidates per class (worker.run_round)."""
        self.wait_ready()
        try:
            self.proc.stdin.write(json.dumps({"ask": {"classes": classes, "round": round_index,
                                                      "earlier": {c: earlier.get(c, []) for c in classes}}}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._failed() from None
        return self._receive()


@contextmanager
def worker_session(request: dict, cache_dir: Path, verbose: bool = False) -> Iterator[WorkerSession]:
    """A worker (worker.py) in a child process for the length of the block: it starts its engine at once,
    answers the rounds asked of it, and closes the engine when the block ends.

    Its output (vLLM's log lines) goes to the cache's worker log (worker_log.py), or to our stderr when
    `verbose`; its answers come back over a pipe. The worker runs under a supervisor (supervisor.py) that
    ends its whole process tree, vLLM's engine core included, when the worker exits, when we exit, and when
    we are killed; an exception or Ctrl-C in the block ends it before going on.
    """
    from stages.neighbors import leftovers, supervisor

    _remove_dead_scratch(cache_dir / "tmp")
    records = cache_dir / "tmp" / leftovers.RECORDS
    tmp = Path(tempfile.mkdtemp(prefix=f"gen-{os.getpid()}-", dir=cache_dir / "tmp"))
    header = f"{request['backend']} worker, {len(request['classes'])} classes from round 0"
    try:
        req_file = tmp / "request.json"
        req_file.write_text(json.dumps(request))
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("VLLM_LOGGING_LEVEL", "INFO")  # the full story, in the log file (or, --verbose, here)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        if request.get("sampling", {}).get("samples", 1) > 1:
            # Votes rank sampled answers, so they must be reproducible under the seed. vLLM's engine core in
            # its own process starts stepping as soon as the first request reaches it over its socket, so which
            # requests share a batch depends on timing, and the CPU's bf16 logits depend on the batch: two runs
            # sampled different answers (tests/stages/neighbors/test_vllm_scoring.py). In-process, every request
            # is queued before the first step. The greedy-only default keeps the separate engine process.
            env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        with worker_log.worker_output(cache_dir, header, verbose) as (out, log):
            with supervisor.started([sys.executable, "-m", "stages.neighbors.worker", str(req_file)],
                                    records=records, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=out, text=True) as proc:
                session = WorkerSession(proc, request["backend"], log)
                yield session
                proc.stdin.close()  # end of input: the worker closes its engine and exits
                rc = proc.wait()
                if rc != 0:
                    raise session._failed()
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def run_worker(request: dict, cache_dir: Path, verbose: bool = False) -> dict:
    """Start a worker, wait for its engine and close it: what it reported when ready (used by tests of the
    worker's plumbing)."""
    with worker_session(request, cache_dir, verbose) as w:
        return w.wait_ready()


def _remove_dead_scratch(folder: Path) -> None:
    """Scratch folders of runs that were killed (their pid is gone) are removed; live ones are kept."""
    import shutil

    for d in folder.glob("gen-*-*"):
        try:
            pid = int(d.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists() and sys.platform.startswith("linux"):
            shutil.rmtree(d, ignore_errors=True)


def worker_request(cfg, ident: GenerationIdentity, classes: list[str], cache_dir: Path,
                   encoder_weight_bytes: int | None = None) -> dict:
    """What the worker needs for the whole run: the model, the engine's settings, every class's conversations
    (one per example set), the sampling recipe and the cleaning rules. The rounds are asked for one by one
    (WorkerSession.ask)."""
    n = cfg.neighbors
    src = ident.source
    req = {
        "backend": n.backend,
        "llm": {"spec": src.spec, "kind": src.kind, "path": str(src.path) if src.path else None, "name": src.name},
        "model_dir": str(ident.model_dir),
        "cache_dir": str(cache_dir),
        "engine_seed": n.seed,
        "max_model_len": n.max_model_len,
        "dtype": n.dtype,
        "batch_size": n.transformers_batch_size,
        "classes": classes,
        # one conversation per example set of the prompt (the first set's first)
        "messages": {c: ident.template.conversations(c, n.output_format, n.overgenerate, ident.task) for c in classes},
        "verify_threshold": n.verify_threshold,
        "tensor_parallel_size": n.tensor_parallel_size,
        "sampling": sampling_spec(cfg),
        "cleaning": cleaning_kwargs(cfg),
    }
    if encoder_weight_bytes:  # for sharing a GPU with the encoder (devices.gpu_plan)
        req["encoder_weight_bytes"] = int(encoder_weight_bytes)
    return req
