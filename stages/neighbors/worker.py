"""The generation worker: a separate process that owns the LLM engine for a whole stage-one run.

Run as `python -m stages.neighbors.worker REQUEST.json` by worker_launch.py, under the run's supervisor
(supervisor.py), which ends the worker's whole process tree with it. Keeping the engine in its own process
gives vLLM's spawned engine core the `__main__` guard it needs, and lets the supervisor end the engine
with the run however the run ends.

Conversation with the parent, one JSON object per line (the parent writes to our stdin; we answer on the
pipe that was our stdout, which everything else we run must not write to: fd 1 becomes the log):
    -> (engine started)                       {"ready": {"engine", "engine_version", "dtype", ...}}
    <- {"ask": {"classes": [...], "round": r, "earlier": {class: [phrases kept so far]}}}
    -> {"round": r, "classes": {class: {"candidates": [...], "answers": [...]}}, "dropped": {...}, ...}
    ... as many rounds as the parent asks for; end of input (or {"stop": true}): the engine is closed, exit 0.

A round asks every class once per example set of the prompt, in ONE batched chat call (plus the sampled
answers of the first round when neighbors.samples > 1, and one batched verification call when
neighbors.verify_threshold > 0), and ranks each class's answers into candidates with ranking.rank_answers,
the one ranking of stage one. Which classes are asked in the next round is the parent's decision (after
its embedding filter); the raw answers' token counts and seeds come back for statistics only.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from stages.neighbors import ranking, verification
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


def _on_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch means no CUDA
        return False


def make_engine(req: dict):
    """(engine, what the parent is told about it besides its name: why its dtype, where the encoder goes)."""
    from stages.neighbors import devices, engines
    from stages.neighbors.llm_source import LLMSource, materialize

    src = LLMSource(req["llm"]["spec"], req["llm"]["kind"],
                    Path(req["llm"]["path"]) if req["llm"]["path"] else None, req["llm"]["name"])
    model = materialize(src, req["model_dir"])
    on_cuda = _on_cuda()
    dtype, why = devices.llm_dtype(req["dtype"], on_cuda)
    info = {"dtype_reason": why, "encoder_device": "cpu", "placement": "no GPU: the encoder runs on the CPU"}
    fraction = devices.DEFAULT_FRACTION
    if on_cuda:
        import torch

        tp = max(1, int(req.get("tensor_parallel_size", 1)))
        plan = devices.gpu_plan(torch.cuda.get_device_properties(0).total_memory,
                                devices.weight_bytes(model, devices.UNKNOWN_LLM_BYTES) // tp,
                                int(req.get("encoder_weight_bytes") or devices.UNKNOWN_ENCODER_BYTES))
        info.update(encoder_device=plan.encoder_device, placement=plan.reason)
        fraction = plan.gpu_memory_utilization
    if req["backend"] == "vllm":
        engines.configure_vllm_env(req["cache_dir"])
        return engines.VLLMEngine(model, seed=req["engine_seed"], max_model_len=req["max_model_len"], dtype=dtype,
                                  tensor_parallel_size=req.get("tensor_parallel_size", 1),
                                  gpu_memory_utilization=fraction), info
    return engines.TransformersEngine(model, seed=req["engine_seed"], batch_size=req["batch_size"], dtype=dtype), info


def run_round(engine, req: dict, classes: list[str], r: int, earlier: dict[str, list[str]]) -> dict:
    """Round `r` for `classes`: one batched call, each class's answers ranked into its new candidates."""
    from stages.neighbors.engines import Sampling

    spec = req["sampling"]
    clean_kw = req["cleaning"]
    samples = int(spec.get("samples", 1))
    threshold = float(req.get("verify_threshold", 0.0))
    scored = samples > 1 or threshold > 0
    sets = len(req["messages"][classes[0]])  # conversations per class: one per example set
    # token log-probabilities break ties between equal votes; with one answer, written order ranks
    samplings = [Sampling(**round_sampling(spec, r, c, k), logprobs=samples > 1) for k in range(sets) for c in classes]
    convs = [req["messages"][c][k] for k in range(sets) for c in classes]
    extra = r == 0 and samples > 1  # self-consistency: more answers in the first round's batch
    if extra:
        samplings += [Sampling(**sample_request(spec, r, c)) for c in classes]
        convs += [req["messages"][c][0] for c in classes]
    t = time.perf_counter()
    outs = engine.chat_n(convs, samplings) if scored else [[o] for o in engine.chat(convs, samplings)]
    seconds = time.perf_counter() - t
    dropped: dict = {}
    ranked, stats = {}, {}
    for i, c in enumerate(classes):
        answers = []
        for k in range(sets):
            s, o = samplings[k * len(classes) + i], outs[k * len(classes) + i][0]
            # A request that could not be seeded on its own (a sampled transformers batch) records the seed
            # that was applied.
            own = o.applied_seed is None
            answers.append({"text": o.text, "tokens": o.tokens, "finish": o.finish_reason,
                            "seed": s.seed if own else o.applied_seed, "seeded": own,
                            "pieces": [list(p) for p in o.pieces]})
        result = dict(answers[0])
        result["sets"] = answers[1:]  # the answers to the other example sets' conversations
        if extra:
            s2, more = samplings[sets * len(classes) + i], outs[sets * len(classes) + i]
            result["samples"] = [{"text": m.text, "tokens": m.tokens, "finish": m.finish_reason,
                                  "pieces": [list(p) for p in m.pieces]} for m in more]
            result["samples_seed"] = s2.seed
        ranked[c] = ranking.rank_answers(result, c, r, clean_kw, earlier.get(c, []), samples > 1, dropped)
        stats[c] = [{"tokens": a["tokens"], "finish": a["finish"], "seed": a.get("seed"), "seeded": a.get("seeded", True)}
                    for a in answers] + [{"tokens": m["tokens"], "finish": m["finish"]} for m in result.get("samples", [])]
    if threshold > 0:
        t = time.perf_counter()
        scores = _verify(engine, ranked)
        seconds += time.perf_counter() - t
        ranked = {c: ranking.drop_unverified(ranked[c], scores.get(c, {}), threshold, dropped) for c in classes}
    return {"round": r, "requests": len(convs), "generate_seconds": seconds, "dropped": dropped,
            "classes": {c: {"candidates": [x.to_json() for x in ranked[c]], "answers": stats[c]} for c in classes}}


def _verify(engine, ranked: dict[str, list]) -> dict[str, dict[str, float]]:
    """P(yes) of every candidate of this round, in one batched call: {class: {phrase: P(yes)}}."""
    asked = [(c, x.phrase) for c, cands in ranked.items() for x in cands]
    tops = engine.first_token_top([verification.question(p, c) for c, p in asked], verification.TOP_LOGPROBS)
    scores: dict[str, dict[str, float]] = {}
    for (c, p), top in zip(asked, tops):
        scores.setdefault(c, {})[p] = verification.p_yes(top)
    return scores


def serve(req: dict, requests, answers) -> None:
    """Start the engine, say so, then answer each round the parent asks for until its input ends."""

    def send(obj: dict) -> None:
        answers.write(json.dumps(obj) + "\n")
        answers.flush()

    t0 = time.perf_counter()
    engine, info = make_engine(req)
    try:  # a failure or a SIGTERM still shuts the engine (vLLM: its engine-core process) down
        send({"ready": {"engine": engine.name, "engine_version": engine.version, "dtype": engine.dtype, **info,
                        "startup_seconds": time.perf_counter() - t0}})
        while True:
            line = requests.readline()
            if not line:
                return
            msg = json.loads(line)
            if msg.get("stop"):
                return
            ask = msg["ask"]
            send(run_round(engine, req, list(ask["classes"]), int(ask["round"]), ask.get("earlier", {})))
    finally:
        engine.close()


def main(argv: list[str]) -> int:
    _stop_with_parent()
    # Our answers go up the pipe that is our stdout now; fd 1 itself becomes our stderr (the worker log), since
    # engines print to stdout. The duplicate is not inherited by the processes vLLM spawns.
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    req = json.loads(Path(argv[0]).read_text())
    serve(req, sys.stdin, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
