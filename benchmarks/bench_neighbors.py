"""Stage-one benchmark: precision (bf16 vs float32), engine starts per run, engines side by side, cold vs
warm rerun, encoding throughput. Every result names the CPU it ran on (model, flags, load average).

    python -m benchmarks.bench_neighbors                                  # every section (~70 min on 2 cores)
    python -m benchmarks.bench_neighbors --sections dtypes --out d.json   # one section
    python -m benchmarks.bench_neighbors --sections runs --before /path/to/older/checkout

Sections (`--sections`, comma-separated; default all):

dtypes   the LLM's precision on this CPU: bf16 against float32 with the packaged SmolLM2, the default
         prompt's first round for the first `--dtype-classes` ESC-50 names; engine start and generation
         apart, tokens/s, CPU ms per token (benchmarks/stage_one_dtypes.py: engines started one after the
         other, then generating in turns, best of `--repeats`). Then the same under an emulated AVX2-only
         CPU (`--no-emulate` skips it), labelled as emulated.
independence  does a class's greedy answer depend on the batch it runs in? Every ESC-50 class's first-round
         requests inside one 50-class batch, then class by class, on the same engine (its core in its own
         process, as generate-neighbors runs it), in bf16 and in float32, `--repeats` times; the classes and
         requests whose answers differ are counted (benchmarks/stage_one_dtypes.py: independence).
runs     cold `generate-neighbors` runs, the real command in an empty cache: ESC-50's 50 names with the
         tiny random CLAP, and WordNet-Sounds' 25 base classes (what scripts/demo.sh generates) with the
         packaged all-MiniLM-L6-v2 (`packaged:minilm-dual`, whose embedding filter does real work);
         `--wordnet-all` adds all 49. Reported per run: engine starts, engine start-up, generation and
         encoding seconds apart, rounds, requests, short classes, wall. With `--before DIR` (a checkout of
         an older commit) each run is made with that code too, the two interleaved, side by side.
engines  generation engines side by side with the same model and prompt (configs/prompts/neighbors_v1.txt),
         greedy, the first `--classes` ESC-50 names (engine start-up reported apart, not counted):
         a. vLLM, all classes in ONE batched `LLM.chat` call (what generate-neighbors does);
         b. vLLM, one request per class (a loop of single-conversation calls on the same engine);
         c. transformers `generate`, one class at a time (what most research scripts do).
         Targets on 2 cores: a >= 5x c.
coldwarm `sept-pipeline generate-neighbors` cold vs a warm rerun of the same command (everything reused:
         no engine, no torch import). Target: warm < 5%.
encoding phrases per second x T templates through the frozen text tower: the tiny random CLAP and the
         full-size random ClapConfig() architecture (153 M parameters, the real model's cost).

The converted model folder is built once before any timing (its cost is printed apart).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _conversations(classes, output_format="lines"):
    from pipeline.config_loader import load_config
    from stages.neighbors import prompt

    cfg = load_config(None, ['neighbors.prompt="configs/prompts/neighbors_v1.txt"']).neighbors  # one conversation a class
    tpl = prompt.load(cfg.prompt, ROOT)
    return [tpl.messages(c, output_format, cfg.overgenerate) for c in classes], cfg


def _samplings(classes, cfg):
    from stages.neighbors.engines import Sampling
    from stages.neighbors.sampling import request_seed

    return [Sampling(0.0, 1.0, cfg.max_tokens, request_seed(0, 0, c)) for c in classes]


def bench_generation(model: str, classes: list[str], cache: Path) -> dict:
    from stages.neighbors import engines

    convs, cfg = _conversations(classes)
    samps = _samplings(classes, cfg)
    out: dict = {"classes": len(classes), "max_tokens": cfg.max_tokens}

    engines.configure_vllm_env(str(cache))
    t = time.perf_counter()
    from stages.neighbors.devices import llm_dtype

    eng = engines.VLLMEngine(model, seed=0, max_model_len=cfg.max_model_len, dtype=llm_dtype("auto", False)[0])
    out["vllm_startup_s"] = time.perf_counter() - t
    out["vllm_version"] = eng.version
    out["vllm_dtype"] = eng.dtype
    eng.chat(convs[:1], samps[:1])  # warm-up: first-call costs are not generation
    t = time.perf_counter()
    batched = eng.chat(convs, samps)
    out["vllm_batched_s"] = time.perf_counter() - t
    out["vllm_batched_tokens"] = sum(c.tokens for c in batched)
    t = time.perf_counter()
    single = [eng.chat([cv], [s])[0] for cv, s in zip(convs, samps)]
    out["vllm_per_class_s"] = time.perf_counter() - t
    out["vllm_per_class_tokens"] = sum(c.tokens for c in single)
    eng.close()
    del eng

    t = time.perf_counter()
    hf = engines.TransformersEngine(model, seed=0, batch_size=1)
    out["transformers_startup_s"] = time.perf_counter() - t
    out["transformers_version"] = hf.version
    hf.chat(convs[:1], [samps[0].__class__(0.0, 1.0, 8, 0)])  # warm-up
    t = time.perf_counter()
    loop = hf.chat(convs, samps)
    out["transformers_per_class_s"] = time.perf_counter() - t
    out["transformers_per_class_tokens"] = sum(c.tokens for c in loop)
    hf.close()

    n = len(classes)
    for k in ("vllm_batched", "vllm_per_class", "transformers_per_class"):
        out[f"{k}_classes_per_s"] = n / out[f"{k}_s"]
        out[f"{k}_tokens_per_s"] = out[f"{k}_tokens"] / out[f"{k}_s"]
    out["ratio_batched_vs_transformers"] = out["vllm_batched_classes_per_s"] / out["transformers_per_class_classes_per_s"]
    out["ratio_batched_vs_vllm_per_class"] = out["vllm_batched_classes_per_s"] / out["vllm_per_class_classes_per_s"]
    return out


def _cli(args: list[str], cache: Path) -> tuple[float, dict]:
    env = dict(os.environ, SEPT_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pipeline.cli", *args, "--json"], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"generate-neighbors failed:\n{p.stderr[-3000:]}")
    return wall, json.loads(p.stdout)


def bench_cold_warm(classes: list[str], clap: Path, model_dir: Path, work: Path) -> dict:
    cache = work / "cold-warm-cache"
    if cache.exists():  # cold means an empty store
        import shutil

        shutil.rmtree(cache)
    f = work / "classes.txt"
    f.write_text("\n".join(classes) + "\n")
    args = ["generate-neighbors", "--classes-file", str(f), "--backbone", str(clap), "--cache-dir", str(cache),
            "--set", f'neighbors.model_dir="{model_dir}"',
            # A random CLAP has no semantics: its embedding filters would drop everything.
            "--set", "neighbors.near_duplicate_cos=1.0"]
    cold_s, cold = _cli(args, cache)
    warm_s, warm = _cli(args, cache)
    assert warm["llm_requests"] == 0 and warm["phrases_encoded"] == 0, warm
    return {"cold_s": cold_s, "warm_s": warm_s, "warm_over_cold": warm_s / cold_s,
            "cold_llm_requests": cold["llm_requests"], "cold_llm_rounds": cold["llm_rounds"],
            "cold_engine_startup_s": cold["engine_startup_seconds"], "cold_generate_s": cold["generate_seconds"],
            "cold_encode_s": cold["encode_seconds"], "texts_stored": cold["phrases_encoded"],
            "warm_internal_s": warm["seconds"]}


def bench_encoding(backbone_dir: Path, n_texts: int, label: str) -> dict:
    from pipeline.config_loader import load_config
    from stages.backbones.config import BackboneConfig
    from stages.neighbors.encoding import TextEncoder

    templates = load_config().text.templates
    texts = [f"phrase number {i} of a sound" for i in range(n_texts)]
    enc = TextEncoder(str(backbone_dir), BackboneConfig(device="auto"), "", 64)
    enc.encode(texts[:8], templates)  # load and warm up
    t = time.perf_counter()
    enc.encode(texts, templates)
    s = time.perf_counter() - t
    enc.release()
    return {"backbone": label, "texts": n_texts, "templates": len(templates), "seconds": s,
            "phrases_per_s": n_texts / s, "forward_passes_per_s": n_texts * len(templates) / s}


WORDNET = "wordnet-sounds"
SECTIONS = ("dtypes", "independence", "runs", "engines", "coldwarm", "encoding")


def _class_lists(wordnet_all: bool) -> list[tuple[str, list[str], str, str]]:
    """(label, class names, backbone, what the backbone is) of the cold runs."""
    from stages.data.specs import dataset_classnames
    from stages.data.splits import base_new_split

    wn = list(dataset_classnames(WORDNET))
    lists = [("esc50 (50)", list(dataset_classnames("esc50")), "tiny-clap", "tiny random CLAP: no filter"),
             ("wordnet base (25)", base_new_split(wn)[0], "packaged:minilm-dual", "all-MiniLM-L6-v2: filter on")]
    if wordnet_all:
        lists.append((f"wordnet all ({len(wn)})", wn, "packaged:minilm-dual", "all-MiniLM-L6-v2: filter on"))
    return lists


def _cold_run(tree: Path, classes: list[str], backbone: str, model_dir: Path, cache: Path) -> dict:
    """One cold `generate-neighbors` with the code of `tree` (its own PYTHONPATH), in an empty cache."""
    import shutil

    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    f = cache.parent / f"{cache.name}.txt"
    f.write_text("\n".join(classes) + "\n")
    env = dict(os.environ, SEPT_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1", PYTHONPATH=str(tree))
    args = [sys.executable, "-m", "pipeline.cli", "generate-neighbors", "--classes-file", str(f), "--backbone",
            backbone, "--cache-dir", str(cache), "--set", f'neighbors.model_dir="{model_dir}"', "--json"]
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run(args, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"generate-neighbors ({tree}) failed:\n{p.stderr[-3000:]}")
    s = json.loads(p.stdout)
    return {"wall_s": wall, "engine_starts": s["engine_starts"], "engine_startup_s": s["engine_startup_seconds"],
            "generate_s": s["generate_seconds"], "encode_s": s["encode_seconds"], "rounds": s["llm_rounds"],
            "requests": s["llm_requests"], "tokens": s.get("tokens_generated"), "short": len(s["classes_short"]),
            "kept": s["phrases_kept"], "dtype": s.get("engine_dtype"), "filters": s["embedding_filters"],
            "load_average": [load0, os.getloadavg()[0]]}


def bench_runs(lists, trees: dict[str, Path], model_dir: Path, work: Path) -> list[dict]:
    """Every class list cold, with each tree's code in turn (before, after: interleaved per list)."""
    out = []
    for label, classes, backbone, what in lists:
        for name, tree in trees.items():
            r = _cold_run(tree, classes, backbone, model_dir, work / "runs" / f"{label.split()[0]}-{name}")
            r.update(list=label, code=name, backbone=what)
            print(f"[bench] {label}, {name}: {json.dumps(r)}", file=sys.stderr, flush=True)
            out.append(r)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_neighbors", description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"Comma-separated sections to run (default: all): {', '.join(SECTIONS)}.")
    ap.add_argument("--classes", type=int, default=16, help="ESC-50 class names of engines/coldwarm (first N; default 16).")
    ap.add_argument("--dtype-classes", type=int, default=8,
                    help="ESC-50 names of the dtypes section (first N, one request per example set; default 8).")
    ap.add_argument("--repeats", type=int, default=3, help="Turns per dtype in the dtypes section (best counts; default 3).")
    ap.add_argument("--no-emulate", action="store_true", help="dtypes: skip the emulated AVX2-only CPU.")
    ap.add_argument("--before", default=None,
                    help="runs: a checkout of older code to run beside this one (e.g. `git worktree add ../before main`).")
    ap.add_argument("--wordnet-all", action="store_true", help="runs: also all 49 WordNet-Sounds classes.")
    ap.add_argument("--llm", default="packaged:smollm2-135m-instruct", help="LLM (same for every engine).")
    ap.add_argument("--encode-texts", type=int, default=256, help="Texts encoded per throughput figure.")
    ap.add_argument("--skip-full-clap", action="store_true", help="Skip the 153 M-parameter encoder figure.")
    ap.add_argument("--work", default=None, help="Scratch folder (default: a temp folder, removed).")
    ap.add_argument("--out", default=None, help="Also write the results as JSON here.")
    args = ap.parse_args(argv)
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"--sections: unknown {sorted(unknown)}; choose from {', '.join(SECTIONS)}")

    from stages.backbones.factory import make_random_clap
    from stages.data.specs import dataset_classnames
    from stages.neighbors import devices
    from stages.neighbors.llm_source import materialize, resolve

    tmp = tempfile.TemporaryDirectory(prefix="bench-neighbors-") if args.work is None else None
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    classes = dataset_classnames("esc50")[: args.classes]
    model_dir = work / "llm"
    t = time.perf_counter()
    model = materialize(resolve(args.llm), model_dir)
    prep_s = time.perf_counter() - t
    cpu = devices.cpu_description()
    results = {"machine": {"cpu": cpu, "platform": platform.platform(), "python": platform.python_version(),
                           "load_average_at_start": os.getloadavg()},
               "llm": args.llm, "model_prepare_s": prep_s, "date": time.strftime("%Y-%m-%d")}
    print(f"[bench] CPU: {devices.describe_cpu(cpu)}", file=sys.stderr)
    print(f"[bench] model ready in {prep_s:.1f} s: {model}", file=sys.stderr)
    tiny = work / "tiny-clap"
    if not tiny.exists():  # a --work folder of an earlier run keeps its models
        make_random_clap("tiny", 0, tiny)

    if "dtypes" in sections:
        from benchmarks.stage_one_dtypes import compare

        results["dtypes"] = compare(["bfloat16", "float32"], model, args.dtype_classes, False, work, args.repeats)
        if not args.no_emulate and cpu.get("native_bf16") and "avx512f" in cpu["flags"]:
            results["dtypes"] += compare(["bfloat16", "float32"], model, args.dtype_classes, True, work, args.repeats)
    if "independence" in sections:
        from benchmarks.stage_one_dtypes import independence

        results["independence"] = independence(["bfloat16", "float32"], model, work, max(1, args.repeats - 1))
    if "runs" in sections:
        trees = {"after": ROOT} if args.before is None else {"before": Path(args.before).resolve(), "after": ROOT}
        lists = [(label, names, str(tiny) if backbone == "tiny-clap" else backbone, what)
                 for label, names, backbone, what in _class_lists(args.wordnet_all)]
        results["runs"] = bench_runs(lists, trees, model_dir, work)
    if "engines" in sections:
        results["generation"] = bench_generation(model, classes, work)
    if "coldwarm" in sections:
        results["cold_warm"] = bench_cold_warm(classes, tiny, model_dir, work)
    if "encoding" in sections:
        results["encoding"] = [bench_encoding(tiny, args.encode_texts, "tiny random CLAP (0.46 M)")]
        if not args.skip_full_clap:
            full = work / "full-clap"
            if not full.exists():
                make_random_clap("full", 0, full)
            results["encoding"].append(bench_encoding(full, max(16, args.encode_texts // 4),
                                                      "full-size random CLAP (153 M)"))
    results["machine"]["load_average_at_end"] = os.getloadavg()
    report(results, args)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


def report(results: dict, args) -> None:
    from stages.neighbors import devices

    m = results["machine"]
    print(f"\nstage one, {args.llm}; CPU {devices.describe_cpu(m['cpu'])}")
    print(f"load average (1 min) at start {m['load_average_at_start'][0]:.1f}, at end {m['load_average_at_end'][0]:.1f}")
    if "dtypes" in results:
        print(f"\nLLM precision: the default prompt's first round, {results['dtypes'][0]['requests']} requests "
              f"(best of {args.repeats} turns)")
        print(f"{'CPU':<22}{'dtype':<10}{'kernels':<18}{'start s':>8}{'fixed tok/s':>12}{'CPU ms/tok':>11}"
              f"{'real tok/s':>11}{'real tokens':>12}")
        for r in results["dtypes"]:
            where = "emulated AVX2-only" if r["emulated"] else "this CPU"
            print(f"{where:<22}{r['engine_dtype']:<10}{','.join(r['kernels']) or '-':<18}{r['engine_start_s']:>8.1f}"
                  f"{r['fixed']['tokens_per_s']:>12.1f}{r['fixed']['cpu_ms_per_token']:>11.1f}"
                  f"{r['real']['tokens_per_s']:>11.1f}{r['real']['tokens']:>12}")
        for emulated in (None, "avx2"):
            rows = {r["engine_dtype"]: r for r in results["dtypes"] if r["emulated"] == emulated}
            if {"bfloat16", "float32"} <= set(rows):
                ratio = rows["float32"]["fixed"]["tokens_per_s"] / rows["bfloat16"]["fixed"]["tokens_per_s"]
                print(f"  {'emulated AVX2-only' if emulated else 'this CPU'}: float32 / bf16 tokens per second "
                      f"(fixed length) = {ratio:.2f}x")
    if "independence" in results:
        print("\nbatch dependence: every ESC-50 class's first-round answers inside one 50-class batch vs alone")
        for r in results["independence"]:
            print(f"  {r['dtype']:<9} {r['classes_differing']:>3} of {r['classes']} classes, {r['requests_differing']:>3} of "
                  f"{r['requests']} requests answered differently (load {r['load_average'][0]:.1f})")
    if "runs" in results:
        print("\ncold generate-neighbors runs (empty cache each)")
        print(f"{'list':<20}{'code':<8}{'engine starts':>14}{'start s':>9}{'generate s':>11}{'encode s':>9}"
              f"{'rounds':>7}{'requests':>9}{'short':>6}{'wall s':>8}{'load':>6}")
        for r in results["runs"]:
            print(f"{r['list']:<20}{r['code']:<8}{r['engine_starts']:>14}{r['engine_startup_s']:>9.1f}"
                  f"{r['generate_s']:>11.1f}{r['encode_s']:>9.1f}{r['rounds']:>7}{r['requests']:>9}{r['short']:>6}"
                  f"{r['wall_s']:>8.1f}{r['load_average'][0]:>6.1f}")
    if "generation" in results:
        g = results["generation"]
        print(f"\n{'generation, ' + str(g['classes']) + ' classes':<34}{'classes/s':>10}{'tokens/s':>10}{'seconds':>9}")
        for k, label in (("vllm_batched", "vLLM, one batched call"), ("vllm_per_class", "vLLM, one request per class"),
                         ("transformers_per_class", "transformers, one class at a time")):
            print(f"  {label:<32}{g[k + '_classes_per_s']:>10.3f}{g[k + '_tokens_per_s']:>10.1f}{g[k + '_s']:>9.1f}")
        print(f"  batched vLLM / transformers per class: {g['ratio_batched_vs_transformers']:.1f}x (target >= 5x)")
        print(f"  batched vLLM / vLLM per class:         {g['ratio_batched_vs_vllm_per_class']:.2f}x")
        print(f"  start-up: vLLM {g['vllm_startup_s']:.1f} s ({g['vllm_dtype']}), transformers "
              f"{g['transformers_startup_s']:.1f} s (not counted above)")
    if "cold_warm" in results:
        cw = results["cold_warm"]
        print(f"generate-neighbors cold {cw['cold_s']:.1f} s vs warm rerun {cw['warm_s']:.2f} s: "
              f"{100 * cw['warm_over_cold']:.1f}% (target < 5%)")
    for e in results.get("encoding", []):
        print(f"encoding, {e['backbone']}: {e['phrases_per_s']:.1f} phrases/s x {e['templates']} templates "
              f"({e['forward_passes_per_s']:.0f} texts/s through the tower)")


if __name__ == "__main__":
    main()
