"""The parent's side of the LLM worker (worker.py): the JSON request it reads, and running it.

The request carries everything the worker needs (model, prompts, sampling, cleaning rules, the candidates
kept so far); the worker runs under a supervisor (supervisor.py) in a child process, so vLLM and its
engine core never live in the process that writes the store.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

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


def run_worker(request: dict, cache_dir: Path, verbose: bool = False) -> dict:
    """Run worker.py in a child process; its answers come back as JSON, its output (vLLM's log lines)
    goes to the cache's worker log (worker_log.py), or to our stderr when `verbose`.

    The worker runs under a supervisor (supervisor.py) that ends its whole process tree, vLLM's engine
    core included, when the worker exits, when we exit, and when we are killed.
    """
    from stages.neighbors import leftovers, supervisor

    _remove_dead_scratch(cache_dir / "tmp")
    records = cache_dir / "tmp" / leftovers.RECORDS
    tmp = Path(tempfile.mkdtemp(prefix=f"gen-{os.getpid()}-", dir=cache_dir / "tmp"))
    header = f"{request['backend']} worker, {len(request['classes'])} classes from round {request['start_round']}"
    try:
        req_file, resp_file = tmp / "request.json", tmp / "response.json"
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
            rc = supervisor.run([sys.executable, "-m", "stages.neighbors.worker", str(req_file), str(resp_file)],
                                records=records, env=env, stdout=out, stderr=out)
        if rc != 0 or not resp_file.is_file():
            where = "its log is above" if log is None else \
                f"last line of its log: {(worker_log.last_lines(log) or ['(empty)'])[0]!r}; full log: {log}"
            raise RuntimeError(f"the {request['backend']} generation worker failed ({supervisor.describe_exit(rc)}); "
                               f"{where}")
        return json.loads(resp_file.read_text())
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


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


def worker_request(cfg, ident: GenerationIdentity, classes: list[str], candidates: dict[str, list[str]],
                   start_round: int, max_rounds: int, cache_dir: Path) -> dict:
    n = cfg.neighbors
    src = ident.source
    return {
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
        "need": n.num_neighbors,
        "cleaning": cleaning_kwargs(cfg),
        "candidates": {c: candidates.get(c, []) for c in classes},
        "start_round": start_round,
        "max_rounds": max_rounds,
    }


# ------------------------------------------------------------------------------------------------
# Generation of the missing classes
