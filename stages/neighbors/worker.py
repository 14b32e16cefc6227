"""The generation worker: a separate process that owns the LLM engine for one or more rounds.

Run as `python -m stages.neighbors.worker REQUEST.json RESPONSE.json` by worker_launch.py, under the run's
supervisor (supervisor.py), which ends the worker's whole process tree with it. Keeping the
engine in its own process guarantees it is gone (GPU memory included) before the parent loads the
audio-language encoder, and gives vLLM's spawned engine core the `__main__` guard it needs.

Rounds: round 0 asks every class once per example set of the prompt, in ONE batched chat call; a class
whose text-cleaned candidates (pooled over its answers, voting.py) are still fewer than `need` is asked
again in the next round (one batched call for all such classes) with fresh per-request seeds, until
`max_rounds` are spent. The parent re-cleans the raw
answers itself; the worker only decides whom to ask again.

The request is plain JSON written by the parent (see worker_launch.py: `worker_request`); the response
holds every raw answer with its seed and sampling, the engine name and version, and timings.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from cache.atomic import atomic_write_json
from stages.neighbors import verification, voting
from stages.neighbors.sampling import round_sampling, sample_request


def _stop_with_parent() -> None:
    """End the engine when our parent, the run's supervisor (supervisor.py), dies.

    The supervisor normally outlives us and ends our whole tree itself; this is the fallback for a
    supervisor that was SIGKILLed alone. SIGTERM (not SIGKILL) so that we unwind: vLLM's exit hooks then
    shut its engine core down, which a SIGKILLed worker could not do (the engine core would be orphaned).
    """
    import signal

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    from stages.neighbors import proctree, supervisor

    try:
        proctree.on_parent_death(signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the supervisor alone ends the tree
        return
    expected = os.environ.get(supervisor.PARENT_VAR)
    if expected and os.getppid() != int(expected):  # the supervisor died before the prctl: stop now
        raise SystemExit(1)


def make_engine(req: dict):
    from stages.neighbors import engines
    from stages.neighbors.llm_source import LLMSource, materialize

    src = LLMSource(req["llm"]["spec"], req["llm"]["kind"],
                    Path(req["llm"]["path"]) if req["llm"]["path"] else None, req["llm"]["name"])
    model = materialize(src, req["model_dir"])
    if req["backend"] == "vllm":
        engines.configure_vllm_env(req["cache_dir"])
        return engines.VLLMEngine(model, seed=req["engine_seed"], max_model_len=req["max_model_len"],
                                  dtype=req["dtype"], tensor_parallel_size=req.get("tensor_parallel_size", 1))
    return engines.TransformersEngine(model, seed=req["engine_seed"], batch_size=req["batch_size"],
                                      dtype=req["dtype"])


def run(req: dict) -> dict:
    from stages.neighbors.engines import Sampling

    t0 = time.perf_counter()
    engine = make_engine(req)
    started = time.perf_counter() - t0
    need = int(req["need"])
    clean_kw = req["cleaning"]
    candidates: dict[str, list[str]] = {c: list(v) for c, v in req["candidates"].items()}
    pending = list(req["classes"])
    rounds = []
    requests = 0
    gen_seconds = 0.0
    try:  # a failure or a SIGTERM still shuts the engine (vLLM: its engine-core process) down
        spec = req["sampling"]
        samples = int(spec.get("samples", 1))
        threshold = float(req.get("verify_threshold", 0.0))
        for r in range(req["start_round"], req["start_round"] + req["max_rounds"]):
            if not pending:
                break
            scored = samples > 1 or threshold > 0
            sets = len(req["messages"][pending[0]])  # conversations per class: one per example set
            # token log-probabilities break ties between equal votes; with one answer, written order ranks
            samplings = [Sampling(**round_sampling(spec, r, c, k), logprobs=samples > 1)
                         for k in range(sets) for c in pending]
            convs = [req["messages"][c][k] for k in range(sets) for c in pending]
            extra = r == 0 and samples > 1  # self-consistency: more answers in the first round's batch
            if extra:
                samplings += [Sampling(**sample_request(spec, r, c)) for c in pending]
                convs += [req["messages"][c][0] for c in pending]
            t = time.perf_counter()
            outs = engine.chat_n(convs, samplings) if scored else [[o] for o in engine.chat(convs, samplings)]
            gen_seconds += time.perf_counter() - t
            requests += len(convs)
            results = {}
            for i, c in enumerate(pending):
                answers = []
                for k in range(sets):
                    s, o = samplings[k * len(pending) + i], outs[k * len(pending) + i][0]
                    # A request that could not be seeded on its own (a sampled transformers batch) records
                    # the seed that was applied.
                    own = o.applied_seed is None
                    answers.append({"text": o.text, "tokens": o.tokens, "finish": o.finish_reason,
                                    "seed": s.seed if own else o.applied_seed, "seeded": own,
                                    "pieces": [list(p) for p in o.pieces]})
                results[c] = answers[0]
                if sets > 1:
                    results[c]["sets"] = answers[1:]  # the answers to the other example sets' conversations
                if extra:
                    s2, more = samplings[sets * len(pending) + i], outs[sets * len(pending) + i]
                    results[c]["samples"] = [{"text": m.text, "tokens": m.tokens, "finish": m.finish_reason,
                                              "pieces": [list(p) for p in m.pieces]} for m in more]
                    results[c]["samples_seed"] = s2.seed
            if threshold > 0:
                _verify(engine, results, candidates, clean_kw)
            for c in pending:
                pooled = voting.pool(voting.answers_of(results[c]), c, clean_kw, already=candidates[c])
                scores = results[c].get("verify", {})
                candidates[c].extend(x.phrase for x in pooled if scores.get(x.phrase, 1.0) >= threshold)
            rounds.append({"round": r, "results": results})
            pending = [c for c in pending if len(candidates[c]) < need]
    finally:
        engine.close()
    return {"engine": engine.name, "engine_version": engine.version, "rounds": rounds, "requests": requests,
            "startup_seconds": started, "generate_seconds": gen_seconds}


def _verify(engine, results: dict, candidates: dict, clean_kw: dict) -> None:
    """P(yes) of every new candidate of this round, in one batched call; into results[c]['verify']."""
    asked = []
    for c, r in results.items():
        asked += [(c, x.phrase) for x in voting.pool(voting.answers_of(r), c, clean_kw, already=candidates[c])]
    tops = engine.first_token_top([verification.question(p, c) for c, p in asked], verification.TOP_LOGPROBS)
    for (c, p), top in zip(asked, tops):
        results[c].setdefault("verify", {})[p] = verification.p_yes(top)


def main(argv: list[str]) -> int:
    _stop_with_parent()
    os.dup2(2, 1)  # engines print to stdout; the parent's stdout may be a --json summary
    req_path, resp_path = argv
    req = json.loads(Path(req_path).read_text())
    atomic_write_json(resp_path, run(req))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
