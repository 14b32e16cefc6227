"""Stage-one quality levers from ONE engine start: prompt with/without the task, greedy vs votes, verification.

    python -m benchmarks.bench_neighbor_levers --datasets esc50 --out levers-esc50.json
    python -m benchmarks.bench_neighbor_levers --datasets urbansound8k tut2017 vocalsound gt-music-genre \\
        --out levers-heldout.json --only v2:votes:0.5

On a slow shared CPU a full `generate-neighbors` per variant and seed is out of reach, so this harvests
every answer once and derives the variants from it, through the same code generate-neighbors runs
(prompt.messages, sampling.round_sampling / sample_request, voting.pool, verification.p_yes, cleaning):

- for each prompt (neighbors_v1, neighbors_v2 with the dataset's task) and each class, in ONE batched
  call: the first-round answer (greedy, the default) and `--samples - 1` sampled answers (vLLM's n);
- one batched verification call: P(yes) of every pooled candidate (at most --verify-top per class);
- variants: PROMPT:greedy (candidates of the first answer only, first written first) or PROMPT:votes
  (all answers pooled, ranked by votes then log-probability), each with verification thresholds; the
  first N = 8 candidates are kept (no retry rounds, no embedding filter: the random backbone has none);
- every variant scored by `neighbors quality`'s scorer and judge (all-MiniLM-L6-v2), loaded only after
  the engine is shut down, against the class names of the datasets given, as ONE list (`--score` picks
  which of the harvested datasets form it).

The judge never takes part in generation or ranking: it scores what each variant would store.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9)
PROMPTS = {"v1": "configs/prompts/neighbors_v1.txt", "v2": "configs/prompts/neighbors_v2.txt"}


def _class_lists(datasets):
    from stages.data.specs import dataset_classnames, dataset_spec

    return [(d, list(dataset_classnames(d)), dataset_spec(d).task) for d in datasets]


def harvest(args) -> dict:
    from pipeline.config_loader import load_config
    from stages.neighbors import engines, verification, voting
    from stages.neighbors.worker_launch import sampling_spec
    from stages.neighbors.keys import resolve_generation
    from stages.neighbors.llm_source import materialize
    from stages.neighbors.sampling import round_sampling, sample_request

    cfg = load_config(None, [f'neighbors.model_dir="{args.model_dir}"', f"neighbors.seed={args.seed}",
                             f"neighbors.max_tokens={args.max_tokens}", f"neighbors.samples={args.samples}",
                             # as measured on 2026-11-29 (before neighbors_v3's frequency penalty)
                             "neighbors.frequency_penalty=0"])
    n = cfg.neighbors
    spec = sampling_spec(cfg)
    lists = _class_lists(args.datasets)
    prompts = {k: v for k, v in PROMPTS.items() if k in args.prompts}
    convs, samplings, where = [], [], []
    for pname, ppath in prompts.items():
        pcfg = cfg.replace("neighbors", prompt=ppath).neighbors
        for dname, classes, task in lists:
            ident = resolve_generation(pcfg, args.cache, task)
            for c in classes:
                msgs = ident.template.messages(c, n.output_format, n.overgenerate, ident.task)
                convs += [msgs, msgs]
                samplings += [engines.Sampling(**round_sampling(spec, 0, c), logprobs=True),
                              engines.Sampling(**sample_request(spec, 0, c))]
                where.append((pname, dname, c))
    engines.configure_vllm_env(str(args.cache))
    t0 = time.perf_counter()
    ident = resolve_generation(cfg.neighbors, args.cache)
    engine = engines.VLLMEngine(materialize(ident.source, ident.model_dir), seed=n.seed,
                                max_model_len=n.max_model_len, dtype=n.dtype)
    startup = time.perf_counter() - t0
    try:
        t = time.perf_counter()
        outs = engine.chat_n(convs, samplings)
        gen_seconds = time.perf_counter() - t
        answers = {}
        for i, (pname, dname, c) in enumerate(where):
            first, more = outs[2 * i][0], outs[2 * i + 1]
            answers[f"{pname}|{dname}|{c}"] = [{"text": a.text, "pieces": [list(p) for p in a.pieces],
                                                "tokens": a.tokens, "finish": a.finish_reason} for a in [first, *more]]
        clean_kw = {"max_words": n.max_words, "max_chars": n.max_chars, "same_script": n.same_script}
        asked = {}
        for key, ans in answers.items():
            c = key.split("|", 2)[2]
            for x in voting.pool(ans, c, clean_kw)[:args.verify_top]:
                asked[(c, x.phrase)] = None
        pairs = list(asked)
        t = time.perf_counter()
        tops = engine.first_token_top([verification.question(p, c) for c, p in pairs], verification.TOP_LOGPROBS)
        verify_seconds = time.perf_counter() - t
    finally:
        engine.close()
    scores = {f"{c}|{p}": verification.p_yes(top) for (c, p), top in zip(pairs, tops)}
    return {"answers": answers, "verify": scores, "engine_startup_seconds": startup,
            "generate_seconds": gen_seconds, "verify_seconds": verify_seconds, "verify_requests": len(pairs),
            "requests": len(convs), "tokens": sum(a["tokens"] for v in answers.values() for a in v),
            "settings": {"seed": n.seed, "max_tokens": n.max_tokens, "samples": n.samples,
                         "sample_temperature": n.sample_temperature, "num_neighbors": n.num_neighbors}}


def variants(h: dict, datasets, only=None) -> list[dict]:
    from benchmarks.judge_rows import memoised_judge, summary_row
    from stages.neighbors import voting
    from stages.neighbors.quality import score

    lists = _class_lists(datasets)
    n_keep = h["settings"]["num_neighbors"]
    clean_kw = {"max_words": 6, "max_chars": 60, "same_script": True}
    enc = memoised_judge()

    rows = []
    harvested = {k.split("|", 1)[0] for k in h["answers"]}
    for pname in [p for p in PROMPTS if p in harvested]:
        for mode in ("greedy", "votes"):
            for thr in THRESHOLDS:
                name = f"{pname}:{mode}:{thr}"
                if only and name not in only:
                    continue
                # One class list, as `neighbors quality --classes-file` over the datasets' names together.
                names, neighbors = [], {}
                for dname, classes, _ in lists:
                    for c in classes:
                        if c in neighbors:
                            continue
                        ans = h["answers"][f"{pname}|{dname}|{c}"]
                        pooled = voting.pool(ans if mode == "votes" else ans[:1], c, clean_kw)
                        if mode == "greedy":
                            pooled.sort(key=lambda s: s.first)
                        names.append(c)
                        neighbors[c] = [x.phrase for x in pooled
                                        if thr == 0 or h["verify"].get(f"{c}|{x.phrase}", 0.0) >= thr][:n_keep]
                rows.append(summary_row(name, score(names, neighbors, enc, n_keep)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["esc50"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompts", nargs="+", default=list(PROMPTS), choices=list(PROMPTS))
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--verify-top", type=int, default=16)
    ap.add_argument("--model-dir", default="/tmp/sept-levers/llm")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/sept-levers"))
    ap.add_argument("--harvest", type=Path, default=None, help="Reuse a harvest JSON (skip the engine).")
    ap.add_argument("--score", nargs="*", default=None, help="Datasets whose names form the scored list "
                                                               "(default: --datasets).")
    ap.add_argument("--only", nargs="*", default=None, help="Variants to score, e.g. v2:votes:0.5")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    from benchmarks.judge_rows import load_or_harvest

    h = load_or_harvest(args, harvest)
    rows = variants(h, args.score or args.datasets, args.only)
    report = {"datasets": args.datasets, "scored": args.score or args.datasets, "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
              "date": time.strftime("%Y-%m-%d"), **{k: v for k, v in h.items() if k not in ("answers", "verify")},
              "variants": rows}
    args.out.write_text(json.dumps(report, indent=1))
    def fmt(v):
        return "  n/a" if v is None else f"{v:.3f}"  # nothing kept: no precision

    for r in rows:
        print(f"{r['variant']:<16} precision {fmt(r['precision'])} micro {fmt(r['micro'])} kept {r['kept']:>4} "
              f">=5: {r['share_ge5']:.2f} on-topic/class {r['on_topic_per_class']:.2f}")


if __name__ == "__main__":
    main()
