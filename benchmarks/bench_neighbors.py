"""Stage-one benchmark: generation engines side by side, cold vs warm rerun, encoding throughput.

    python -m benchmarks.bench_neighbors                    # ~10 minutes on 2 CPU cores
    python -m benchmarks.bench_neighbors --classes 8 --out bench-neighbors.json

Measured in one run, with the same model (the packaged SmolLM2-135M-Instruct unless --llm), the same
prompt (configs/prompts/neighbors_v1.txt), greedy decoding and the same token cap:

1. generation, classes per second (engine start-up reported separately, not counted):
   a. vLLM, all classes in ONE batched `LLM.chat` call (what generate-neighbors does);
   b. vLLM, one request per class (a loop of single-conversation calls on the same engine);
   c. transformers `generate`, one class at a time (what most research scripts do).
   Targets on 2 cores: a >= 5x c. a vs b is small on CPU (decoding is compute-bound there).
2. `sept-pipeline generate-neighbors` cold (empty store: engine, generation, encoding, writes) vs a
   warm rerun of the same command (everything reused: no engine, no torch import). Target: warm < 5%.
3. encoding throughput, phrases per second x T templates, with the tiny random CLAP and with the
   full-size random ClapConfig() architecture (153 M parameters, the real model's cost).

The engines run in this process one after the other (vLLM shut down before transformers loads), each
on the converted model folder, which is built once before any timing (its cost is printed apart).
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
    eng = engines.VLLMEngine(model, seed=0, max_model_len=cfg.max_model_len)
    out["vllm_startup_s"] = time.perf_counter() - t
    out["vllm_version"] = eng.version
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_neighbors", description=__doc__.split("\n")[0])
    ap.add_argument("--classes", type=int, default=16, help="ESC-50 class names used (first N; default 16).")
    ap.add_argument("--llm", default="packaged:smollm2-135m-instruct", help="LLM (same for every engine).")
    ap.add_argument("--encode-texts", type=int, default=256, help="Texts encoded per throughput figure.")
    ap.add_argument("--skip-full-clap", action="store_true", help="Skip the 153 M-parameter encoder figure.")
    ap.add_argument("--work", default=None, help="Scratch folder (default: a temp folder, removed).")
    ap.add_argument("--out", default=None, help="Also write the results as JSON here.")
    args = ap.parse_args(argv)

    from stages.backbones.factory import make_random_clap
    from stages.data.specs import dataset_classnames
    from stages.neighbors.llm_source import materialize, resolve

    tmp = tempfile.TemporaryDirectory(prefix="bench-neighbors-") if args.work is None else None
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    classes = dataset_classnames("esc50")[: args.classes]
    model_dir = work / "llm"
    t = time.perf_counter()
    model = materialize(resolve(args.llm), model_dir)
    prep_s = time.perf_counter() - t
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
               "llm": args.llm, "model_prepare_s": prep_s, "date": time.strftime("%Y-%m-%d")}
    print(f"[bench] model ready in {prep_s:.1f} s: {model}", file=sys.stderr)

    results["generation"] = bench_generation(model, classes, work)
    print(json.dumps(results["generation"], indent=1), file=sys.stderr)
    tiny = work / "tiny-clap"
    if not tiny.exists():  # a --work folder of an earlier run keeps its models
        make_random_clap("tiny", 0, tiny)
    results["cold_warm"] = bench_cold_warm(classes, tiny, model_dir, work)
    results["encoding"] = [bench_encoding(tiny, args.encode_texts, "tiny random CLAP (0.46 M)")]
    if not args.skip_full_clap:
        full = work / "full-clap"
        if not full.exists():
            make_random_clap("full", 0, full)
        results["encoding"].append(bench_encoding(full, max(16, args.encode_texts // 4), "full-size random CLAP (153 M)"))

    g, cw = results["generation"], results["cold_warm"]
    print(f"\nstage one, {len(classes)} ESC-50 classes, {args.llm}, greedy, max_tokens {g['max_tokens']}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'generation':<34}{'classes/s':>10}{'tokens/s':>10}{'seconds':>9}")
    for k, label in (("vllm_batched", "vLLM, one batched call"), ("vllm_per_class", "vLLM, one request per class"),
                     ("transformers_per_class", "transformers, one class at a time")):
        print(f"  {label:<32}{g[k + '_classes_per_s']:>10.3f}{g[k + '_tokens_per_s']:>10.1f}{g[k + '_s']:>9.1f}")
    print(f"  batched vLLM / transformers per class: {g['ratio_batched_vs_transformers']:.1f}x (target >= 5x)")
    print(f"  batched vLLM / vLLM per class:         {g['ratio_batched_vs_vllm_per_class']:.2f}x")
    print(f"  start-up: vLLM {g['vllm_startup_s']:.1f} s, transformers {g['transformers_startup_s']:.1f} s "
          f"(not counted above)")
    print(f"generate-neighbors cold {cw['cold_s']:.1f} s vs warm rerun {cw['warm_s']:.2f} s: "
          f"{100 * cw['warm_over_cold']:.1f}% (target < 5%)")
    for e in results["encoding"]:
        print(f"encoding, {e['backbone']}: {e['phrases_per_s']:.1f} phrases/s x {e['templates']} templates "
              f"({e['forward_passes_per_s']:.0f} texts/s through the tower)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
