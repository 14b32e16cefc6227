"""Stage-two benchmark on the random full-size CLAP architecture, five comparisons side by side in one run:

1. an epoch with cached audio features vs one re-encoding (random-crop) audio every step  (target >= 10x)
2. a CoOp+SEPT step vs a CoOp step at sept.neighbors_per_step = 4 (PER_STEP)           (target <= 1.5x)
3. peak memory of SEPT training with N = 8 vs N = 64 stored neighbors per class, same
   neighbors per step, neighbors streamed from a real neighbor store                      (target <= 1.2x)
4. a DePT step and a PALM step beside a CoOp step (PALM never runs the text tower in training: far below)
5. an epoch with frozen eval-mode towers (cached features) vs one with train-mode towers (train.tower_mode =
   "train", PALM's own training: every step decodes, crops and encodes its clips in train mode), for PALM
   and CoOp, with the code `tune` runs (stages/tuning/features.py training_data, the trainer's `train`)

    python -m benchmarks.bench_tuning                 # CPU here: a few minutes on 2 cores
    python -m benchmarks.bench_tuning --device cuda   # the same on a GPU
    python -m benchmarks.bench_tuning --only 5        # one comparison (1-5, comma-separated)

Everything goes through the code `tune` runs: clip_features (the feature cache), the trainer's `train`
and `training_step`, the store -> NeighborBank path. Memory: each N runs in its own process; on CPU the
figure is the peak resident set size (and its growth during training), on CUDA max_memory_allocated.
Random weights: timings and memory are those of the real architecture; accuracies would mean nothing.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.gpu_check import CLASS_NAMES, build_random_backbone, sync, synthetic_phrases, time_steps

TEMPLATES = ["a sound of a {}.", "an audio recording of {}.", "the sound of {}.", "a recording of a {}.",
             "this is a sound of {}.", "a clip of {} sounds.", "an audio clip of a {}.", "{} can be heard."]


def _learner(backbone, classes, n_ctx=16, method="coop"):
    from stages.tuning.config import MethodConfig
    from stages.tuning.learners import build_learner

    learner = build_learner(backbone, MethodConfig(name=method, n_ctx=n_ctx), TEMPLATES[:1], 1).to(backbone.device)
    learner.set_train_classes(classes)
    return learner


# ---------------------------------------------------------------- 1. cached features vs re-encoding
def bench_feature_cache(backbone, work: Path, classes: list[str], clips_per_epoch: int, batch: int) -> dict:
    from stages.audio_features import clip_features
    from stages.tuning.config import SeptConfig, TrainConfig
    from stages.tuning.trainer import TrainData, train

    clips = _write_clips(backbone, work, classes, clips_per_epoch)  # 12 s clips: a crop of 10 s is taken
    labels = torch.tensor([c.label for c in clips])
    cfg = TrainConfig(epochs=1, batch_size=batch, warmup_epochs=0)

    t = time.perf_counter()
    feats = clip_features(backbone, clips, work / "cache", progress=False)  # first run fills the cache
    fill_s = time.perf_counter() - t
    t = time.perf_counter()
    feats = clip_features(backbone, clips, work / "cache", progress=False)  # what every later run pays
    reload_s = time.perf_counter() - t

    def epoch(data, name):
        learner = _learner(backbone, classes)
        sync(backbone.device)
        t0 = time.perf_counter()
        train(learner, data, cfg, SeptConfig(), None, seed=1, run_dir=work / name, identity={},
              backbone_fingerprint=backbone.fingerprint, progress=False)
        sync(backbone.device)
        return time.perf_counter() - t0

    def encode(idx, gen):
        return clip_features(backbone, [clips[i] for i in idx.tolist()], None, random_crop=True, generator=gen,
                             progress=False)

    epoch(TrainData(labels=labels, features=feats), "warm")  # warm-up (allocator, kernels)
    cached_s = epoch(TrainData(labels=labels, features=feats), "cached")
    reencode_s = epoch(TrainData(labels=labels, encode=encode), "reencode")
    return {"clips_per_epoch": clips_per_epoch, "batch": batch, "cache_fill_s": round(fill_s, 2),
            "cache_reload_s": round(reload_s, 3), "epoch_cached_s": round(cached_s, 2),
            "epoch_reencode_s": round(reencode_s, 2), "speedup": round(reencode_s / cached_s, 1)}


# ---------------------------------------------------------------- 2. SEPT step vs CoOp step
# Neighbors per class per step in comparisons 2 and 3. The figures in docs/benchmarks.md were measured with
# 4 (then the default); the default is now "all", whose step cost grows with N (comparison 2 at --per-step all).
PER_STEP = 4


def _bank(learner, classes, per_class, per_step):
    from benchmarks.gpu_check import synthetic_bank

    return synthetic_bank(learner, classes, per_class, per_step, learner.backbone.embed_dim)


def bench_sept_vs_coop(backbone, classes: list[str], batch: int, steps: int, per_step: int | str = PER_STEP) -> dict:
    from stages.tuning.config import SeptConfig

    sept_cfg = SeptConfig(enabled=True, neighbors_per_step=per_step)
    learner = _learner(backbone, classes)
    bank = _bank(learner, classes, 8, sept_cfg.neighbors_per_step)
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(batch, backbone.embed_dim, generator=g).to(backbone.device)
    labels = torch.randint(len(classes), (batch,), generator=g).to(backbone.device)
    coop = time_steps(learner, None, sept_cfg, audio, labels, steps, 1, None)
    sept = time_steps(learner, bank, sept_cfg, audio, labels, steps, 1, None)
    c, s = statistics.median(coop), statistics.median(sept)
    return {"classes": len(classes), "batch": batch, "neighbors_per_step": sept_cfg.neighbors_per_step,
            "texts_coop_step": len(classes), "texts_sept_step": len(classes) * (1 + bank.draws_per_class),
            "coop_step_s": round(c, 3), "sept_step_s": round(s, 3), "ratio": round(s / c, 2)}


# ---------------------------------------------------------------- 4. DePT and PALM steps beside CoOp's
def bench_methods(backbone, classes: list[str], batch: int, steps: int) -> dict:
    from stages.tuning.config import SeptConfig

    g = torch.Generator().manual_seed(0)
    audio = torch.randn(batch, backbone.embed_dim, generator=g).to(backbone.device)
    labels = torch.randint(len(classes), (batch,), generator=g).to(backbone.device)
    out = {"classes": len(classes), "batch": batch, "rounds": steps}
    methods = ("coop", "dept", "palm")
    learners = {m: _learner(backbone, classes, method=m) for m in methods}  # PALM encodes the bare names here
    times = {m: [] for m in methods}
    for m in methods:  # warm-up step of each
        time_steps(learners[m], None, SeptConfig(), audio, labels, 0, 1, None)
    for _ in range(steps):  # interleaved rounds: a load change on a shared machine hits every method alike
        for m in methods:
            times[m] += time_steps(learners[m], None, SeptConfig(), audio, labels, 1, 0, None)
    for m in methods:
        out[f"{m}_step_s"] = round(statistics.median(times[m]), 4)
    out["dept_ratio"] = round(out["dept_step_s"] / out["coop_step_s"], 2)
    out["palm_ratio"] = round(out["palm_step_s"] / out["coop_step_s"], 4)
    return out


# ---------------------------------------------------------------- 5. eval-mode vs train-mode towers, per epoch
def bench_tower_modes(backbone, work: Path, classes: list[str], clips_per_epoch: int, batch: int) -> dict:
    """Seconds of one training epoch of PALM and of CoOp, eval-mode towers (features from the cache, filled
    beforehand) beside train-mode towers (encoded at every step), in interleaved order; the backbone's
    BatchNorm statistics are put back after each train-mode epoch."""
    from stages.data.config import DataConfig
    from stages.tuning.config import SeptConfig, TrainConfig
    from stages.tuning.features import training_data
    from stages.tuning.trainer import train

    clips = _write_clips(backbone, work, classes, clips_per_epoch)
    labels = torch.tensor([c.label for c in clips])
    frozen = backbone.tower_buffers()
    configs = {"eval": TrainConfig(epochs=1, batch_size=batch, tower_mode="eval"),
               "train": TrainConfig(epochs=1, batch_size=batch, tower_mode="train", random_crop=True)}
    t = time.perf_counter()
    training_data(backbone, clips, labels, work / "cache", configs["eval"], DataConfig(), progress=False)
    fill_s = time.perf_counter() - t
    out = {"clips_per_epoch": clips_per_epoch, "batch": batch, "cache_fill_s": round(fill_s, 2)}
    for method in ("palm", "coop"):
        for mode in ("eval", "train", "eval", "train"):  # the first pair warms up; the second is reported
            cfg = configs[mode]
            data, _ = training_data(backbone, clips, labels, work / "cache", cfg, DataConfig(), progress=False)
            learner = _learner(backbone, classes, method=method)
            sync(backbone.device)
            t0 = time.perf_counter()
            train(learner, data, cfg, SeptConfig(), None, seed=1, run_dir=work / f"{method}-{mode}", identity={},
                  backbone_fingerprint=backbone.fingerprint, progress=False)
            sync(backbone.device)
            out[f"{method}_{mode}_epoch_s"] = round(time.perf_counter() - t0, 2)
            backbone.load_tower_buffers(frozen)
        out[f"{method}_ratio"] = round(out[f"{method}_train_epoch_s"] / out[f"{method}_eval_epoch_s"], 1)
    out["train_s_per_clip"] = round(out["palm_train_epoch_s"] / clips_per_epoch, 3)
    return out


def _write_clips(backbone, work: Path, classes: list[str], n: int, seconds: float = 12.0) -> list:
    """`n` random clips of `seconds` at the model's rate (longer than its window), labelled round-robin."""
    import soundfile as sf

    from stages.data.clips import Clip

    rng = np.random.default_rng(0)
    (work / "audio").mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        path = work / "audio" / f"clip{i}.wav"
        if not path.exists():
            sf.write(path, (0.1 * rng.standard_normal(int(backbone.sample_rate * seconds))).astype(np.float32),
                     backbone.sample_rate)
        clips.append(Clip(path=path, label=i % len(classes), classname=classes[i % len(classes)]))
    return clips


# ---------------------------------------------------------------- 3. memory, N = 8 vs N = 64
def memory_child(n: int, device: str, size: str, classes: int, batch: int, steps: int) -> dict:
    """In a fresh process: store with N neighbors per class -> bank -> SEPT steps; report peak memory."""
    from cache.store import ClassNeighbors, NeighborStore, Provenance
    from pipeline.config_loader import load_config
    from stages.tuning.config import SeptConfig
    from stages.tuning.neighbor_source import load_neighbor_bank

    names = CLASS_NAMES[:classes]
    backbone = build_random_backbone(size, 0, device)
    learner = _learner(backbone, names)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        phrases = synthetic_phrases(names, n)
        prov = Provenance("bench", "0", f"bench-n{n}", "none", "0", "bench", "1", n)
        store = NeighborStore.in_cache(cache)
        store.put_phrases([ClassNeighbors(c, phrases[c], prov, {}, 0) for c in names])
        texts = list(dict.fromkeys(names + [p for c in names for p in phrases[c]]))
        # Random unit vectors stand in for frozen embeddings: memory does not depend on their values.
        vecs = np.random.default_rng(0).standard_normal((len(texts), len(TEMPLATES), backbone.embed_dim))
        vecs = (vecs / np.linalg.norm(vecs, axis=-1, keepdims=True)).astype(np.float32)
        store.put_embeddings(texts, TEMPLATES, backbone.fingerprint, vecs)
        # Random vectors put every neighbor anywhere: the class boundary would drop most of them, and this
        # measures memory with N neighbors per class.
        cfg = load_config(None, [f"sept.generation={prov.generation_key!r}",
                                 f"sept.neighbors_per_step={PER_STEP}",  # the same per step for both N
                                 "sept.boundary_filter=false"])
        sync(backbone.device)
        rss_before = _rss_mib()
        if backbone.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(backbone.device)
        bank, _ = load_neighbor_bank(cfg, learner, backbone, names, cache, dataset="bench", progress=False)
        g = torch.Generator().manual_seed(0)
        audio = torch.randn(batch, backbone.embed_dim, generator=g).to(backbone.device)
        labels = torch.randint(len(names), (batch,), generator=g).to(backbone.device)
        time_steps(learner, bank, SeptConfig(enabled=True, neighbors_per_step=PER_STEP), audio, labels, steps, 0, None)
    out = {"n": n, "rss_before_mib": round(rss_before, 1), "peak_rss_mib": round(_rss_mib(), 1)}
    out["training_growth_mib"] = round(out["peak_rss_mib"] - rss_before, 1)
    if backbone.device.type == "cuda":
        out["cuda_peak_mib"] = round(torch.cuda.max_memory_allocated(backbone.device) / 2**20, 1)
    return out


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench_memory(args) -> dict:
    rows = {}
    for n in (8, 64):
        cmd = [sys.executable, "-m", "benchmarks.bench_tuning", "--memory-child", str(n), "--device", args.device,
               "--size", args.size, "--classes", str(args.classes), "--batch", str(args.batch),
               "--steps", str(max(1, args.steps - 1)), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"memory child N={n} failed:\n{done.stderr[-2000:]}")
        rows[n] = json.loads(done.stdout.strip().splitlines()[-1])
    key = "cuda_peak_mib" if args.device.startswith("cuda") else "peak_rss_mib"
    # training_growth_mib: how far the high-water mark rose during set-up + training (0 when building the
    # model had already peaked higher): an absolute figure, too small to form a meaningful ratio.
    return {"n8": rows[8], "n64": rows[64], "measure": key, "ratio": round(rows[64][key] / rows[8][key], 3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_tuning", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default="full", choices=["full", "tiny"])
    ap.add_argument("--classes", type=int, default=10, help="training classes (10: UrbanSound8K / GTZAN size)")
    ap.add_argument("--batch", type=int, default=16, help="clips per step for the step comparisons")
    ap.add_argument("--epoch-clips", type=int, default=16, help="clips in the timed epochs of comparison 1")
    ap.add_argument("--epoch-batch", type=int, default=16, help="clips per step in comparison 1 (DESIGN default 16)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps of comparison 2 (after one warm-up)")
    ap.add_argument("--per-step", default=str(PER_STEP),
                    help=f"sept.neighbors_per_step of comparison 2: a number or 'all' (default {PER_STEP})")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    ap.add_argument("--only", default="1,2,3,4,5", help="comparisons to run, comma-separated (default all)")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        print(json.dumps(memory_child(args.memory_child, args.device, args.size, args.classes, args.batch,
                                      args.steps)))
        return

    torch.manual_seed(0)
    only = {int(x) for x in args.only.split(",")}
    t0 = time.perf_counter()
    backbone = build_random_backbone(args.size, 0, args.device)
    classes = CLASS_NAMES[: args.classes]
    report = {"device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
              "torch_threads": torch.get_num_threads(), "size": args.size}
    with tempfile.TemporaryDirectory() as tmp:
        if 1 in only:
            report["feature_cache"] = bench_feature_cache(backbone, Path(tmp), classes, args.epoch_clips,
                                                          args.epoch_batch)
        if 5 in only:
            report["tower_modes"] = bench_tower_modes(backbone, Path(tmp), classes, args.epoch_clips,
                                                      args.epoch_batch)
    per_step = args.per_step if args.per_step == "all" else int(args.per_step)
    if 2 in only:
        report["sept_step"] = bench_sept_vs_coop(backbone, classes, args.batch, args.steps, per_step)
    if 4 in only:
        report["methods"] = bench_methods(backbone, classes, args.batch, args.steps)
    del backbone
    if 3 in only:
        report["memory"] = bench_memory(args)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"random CLAP {args.size} on {report['device']} ({report['torch_threads']} threads)")
    print(f"{'comparison':<44}{'baseline':>14}{'measured':>14}{'ratio':>9}  target")
    if "feature_cache" in report:
        cache = report["feature_cache"]
        print(f"{'1. epoch: cached features vs re-encoding':<44}{cache['epoch_cached_s']:>13.2f}s"
              f"{cache['epoch_reencode_s']:>13.2f}s{cache['speedup']:>8.1f}x  >= 10x")
    if "sept_step" in report:
        step = report["sept_step"]
        print(f"{'2. step: CoOp vs CoOp+SEPT':<44}{step['coop_step_s']:>13.3f}s{step['sept_step_s']:>13.3f}s"
              f"{step['ratio']:>8.2f}x  <= 1.5x")
    if "memory" in report:
        memory = report["memory"]
        mem_unit = "CUDA peak" if memory["measure"] == "cuda_peak_mib" else "peak RSS"
        print(f"{'3. ' + mem_unit + ': N=8 vs N=64 neighbors/class':<44}{memory['n8'][memory['measure']]:>10.0f} MiB"
              f"{memory['n64'][memory['measure']]:>10.0f} MiB{memory['ratio']:>8.3f}x  <= 1.2x")
    if "methods" in report:
        methods = report["methods"]
        print(f"{'4. step: CoOp vs DePT':<44}{methods['coop_step_s']:>13.3f}s{methods['dept_step_s']:>13.3f}s"
              f"{methods['dept_ratio']:>8.2f}x  ~ 1x (a linear head on top)")
        print(f"{'   step: CoOp vs PALM':<44}{methods['coop_step_s']:>13.3f}s{methods['palm_step_s']:>13.4f}s"
              f"{methods['palm_ratio']:>8.4f}x  far below 1x (no text tower)")
    if "tower_modes" in report:
        tm = report["tower_modes"]
        for m in ("palm", "coop"):
            label = f"5. epoch, {m.upper()}: eval vs train towers" if m == "palm" else f"   epoch, {m.upper()}: eval vs train towers"
            print(f"{label:<44}{tm[m + '_eval_epoch_s']:>13.2f}s{tm[m + '_train_epoch_s']:>13.2f}s"
                  f"{tm[m + '_ratio']:>8.1f}x  (the price of PALM's conditions)")
        print(f"   ({tm['clips_per_epoch']} clips per epoch in batches of {tm['batch']}: train mode "
              f"{tm['train_s_per_clip']} s per clip; filling the cache once took {tm['cache_fill_s']} s)")
    if "feature_cache" in report and "sept_step" in report and "memory" in report:
        cache, step, memory = report["feature_cache"], report["sept_step"], report["memory"]
        print(f"   (cache fill of {cache['clips_per_epoch']} clips once: {cache['cache_fill_s']} s; "
              f"{step['texts_coop_step']} vs {step['texts_sept_step']} prompts per step through the text tower; "
              f"memory growth during training {memory['n8']['training_growth_mib']} vs "
              f"{memory['n64']['training_growth_mib']} MiB)")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
