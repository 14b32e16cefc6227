"""Decoding levers for stage one from ONE engine start: example sets, penalties, sampling (how neighbors_v3 was chosen).

    python -m benchmarks.bench_example_sets --datasets esc50 --out sets-esc50.json
    python -m benchmarks.bench_example_sets --datasets urbansound8k tut2017 vocalsound gt-music-genre \\
        --out sets-heldout.json
    python -m benchmarks.bench_example_sets --harvest sets-esc50.harvest.json --out again.json

Every class is asked, in ONE batched vLLM call, under each decoding mode below; the variants are then
derived from those answers through the code generate-neighbors runs (prompt.PromptTemplate.messages,
sampling.request_seed, voting.pool, cleaning) and scored by `neighbors quality`'s scorer and judge
(all-MiniLM-L6-v2, loaded only after the engine is shut down) against the class names of the datasets
given, as ONE list. N = 8 kept, no retry rounds, no embedding filter.

Modes (PROMPT|DECODING): PROMPT is v1 (configs/prompts/neighbors_v1.txt) or s1..s5, the five example sets
of configs/prompts/neighbors_v3.txt asked one at a time; DECODING is g (greedy), g_fp0.3/0.5/0.7 (greedy
with vLLM's frequency penalty), g_rp1.1/1.2/1.3 (repetition penalty, which also penalises the prompt's
words), g_pp0.5/1.0 (presence penalty), s0.3 / s0.7 (6 answers sampled at that temperature, pooled by
votes). Pooled variants ("s1-s5 g_fp0.7" = the v3 default) rank by votes then round-robin (voting.pool).

The judge never takes part in generation or ranking: it scores what each variant would store.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

N_KEEP = 8
CLEAN = {"max_words": 6, "max_chars": 60, "same_script": True}
V1 = "configs/prompts/neighbors_v1.txt"
V3 = "configs/prompts/neighbors_v3.txt"
FP = (0.3, 0.5, 0.7)


def _modes() -> dict[str, tuple[str, dict]]:
    m: dict[str, tuple[str, dict]] = {}
    for p in ["v1", "s1", "s2", "s3", "s4", "s5"]:
        m[f"{p}|g"] = (p, {"temperature": 0.0})
        for fp in FP:
            m[f"{p}|g_fp{fp}"] = (p, {"temperature": 0.0, "frequency_penalty": fp})
    for rp in (1.1, 1.2, 1.3):
        m[f"v1|g_rp{rp}"] = ("v1", {"temperature": 0.0, "repetition_penalty": rp})
    for pp in (0.5, 1.0):
        m[f"v1|g_pp{pp}"] = ("v1", {"temperature": 0.0, "presence_penalty": pp})
    for t in (0.3, 0.7):
        m[f"v1|s{t}"] = ("v1", {"temperature": t, "n": 6})
    return m


def _classes(datasets) -> list[tuple[str, str]]:
    from stages.data.specs import dataset_classnames

    return [(d, c) for d in datasets for c in dataset_classnames(d)]


def _templates():
    from stages.neighbors import prompt
    from stages.shipped import package_root

    v1 = prompt.load(V1, package_root())
    v3 = prompt.load(V3, package_root())
    out = {"v1": (v1, 0)}
    out.update({f"s{k + 1}": (v3, k) for k in range(v3.sets)})
    return out


def harvest(args) -> dict:
    from vllm import SamplingParams

    from pipeline.config_loader import load_config
    from stages.neighbors import engines
    from stages.neighbors.keys import resolve_generation
    from stages.neighbors.llm_source import materialize
    from stages.neighbors.sampling import request_seed

    cfg = load_config(None, [f'neighbors.model_dir="{args.model_dir}"', f"neighbors.seed={args.seed}"])
    templates = _templates()
    convs, params, where = [], [], []
    for mode, (p, kw) in _modes().items():
        tpl, k = templates[p]
        for d, c in _classes(args.datasets):
            convs.append(tpl.messages(c, "lines", cfg.neighbors.overgenerate, "", k))
            params.append(SamplingParams(max_tokens=args.max_tokens, seed=request_seed(args.seed, 0, c + "|" + mode),
                                         logprobs=0, **kw))
            where.append((mode, d, c))
    engines.configure_vllm_env(str(args.cache))
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # every request queued before the first step
    ident = resolve_generation(cfg.neighbors, args.cache)
    t0 = time.perf_counter()
    engine = engines.VLLMEngine(materialize(ident.source, ident.model_dir), seed=args.seed, max_model_len=2048)
    startup = time.perf_counter() - t0
    try:
        t = time.perf_counter()
        outs = engine.llm.chat(convs, params, use_tqdm=True)
        gen_seconds = time.perf_counter() - t
    finally:
        engine.close()
    answers: dict[str, dict] = {}
    tokens: dict[str, int] = {}
    for (mode, d, c), o in zip(where, outs):
        answers.setdefault(mode, {})[f"{d}|{c}"] = [
            {"text": x.text, "pieces": [list(p) for p in engines._pieces(x)]} for x in o.outputs]
        tokens[mode] = tokens.get(mode, 0) + sum(len(x.token_ids) for x in o.outputs)
    return {"answers": answers, "tokens": tokens, "requests": len(convs), "engine_startup_seconds": startup,
            "generate_seconds": gen_seconds, "settings": {"seed": args.seed, "max_tokens": args.max_tokens}}


def _variants(answers: dict) -> list[tuple[str, list[str]]]:
    sets = [f"s{k}" for k in range(1, 6)]
    out = [(m, [m]) for m in answers]
    for dec in ["g", *(f"g_fp{fp}" for fp in FP)]:
        out.append((f"s1-s5 {dec}", [f"{s}|{dec}" for s in sets]))
    out.append(("v1 + s1-s5 g_fp0.7", ["v1|g_fp0.7", *(f"{s}|g_fp0.7" for s in sets)]))
    out.append(("v1 g + v1 s0.3", ["v1|g", "v1|s0.3"]))
    return out


def score_all(h: dict, datasets) -> list[dict]:
    from benchmarks.judge_rows import memoised_judge, summary_row
    from stages.neighbors import voting
    from stages.neighbors.quality import score

    enc = memoised_judge()
    names, keys = [], []
    for d, c in _classes(datasets):
        if c not in names:
            names.append(c)
            keys.append(f"{d}|{c}")
    rows = []
    for name, modes in _variants(h["answers"]):
        neighbors = {}
        for c, key in zip(names, keys):
            # greedy answers without their log-probabilities, as generate-neighbors asks them (samples = 1)
            answers = [a if "|s" in m else {"text": a["text"]} for m in modes for a in h["answers"][m][key]]
            # ranked by votes, log-probability (sampled answers only), then round-robin (voting.pool); one
            # greedy answer keeps its own order
            neighbors[c] = [x.phrase for x in voting.pool(answers, c, CLEAN)][:N_KEEP]
        row = summary_row(name, score(names, neighbors, enc, N_KEEP))
        rows.append({**row, "tokens": sum(h["tokens"][m] for m in modes)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["esc50"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=160, help="token cap per answer (generate-neighbors: 160)")
    ap.add_argument("--model-dir", default="/tmp/sept-sets/llm", help="where the packaged LLM is converted once")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/sept-sets"))
    ap.add_argument("--harvest", type=Path, default=None, help="reuse a harvest JSON (no engine)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    from benchmarks.judge_rows import load_or_harvest

    h = load_or_harvest(args, harvest)
    rows = score_all(h, args.datasets)
    report = {"datasets": args.datasets, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "date": time.strftime("%Y-%m-%d"), **{k: v for k, v in h.items() if k != "answers"}, "variants": rows}
    args.out.write_text(json.dumps(report, indent=1))
    for r in rows:
        p = "  n/a" if r["precision"] is None else f"{r['precision']:.3f}"
        print(f"{r['variant']:<22} precision {p} kept {r['kept']:>4} >=5: {r['share_ge5']:.2f} "
              f"on-topic/class {r['on_topic_per_class']:.2f} tokens {r['tokens']}")


if __name__ == "__main__":
    main()
