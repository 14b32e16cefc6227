"""GPU check of stage two: CoOp+SEPT training steps on the full-size CLAP architecture, bf16 and fp32.

    python -m benchmarks.gpu_check                      # CUDA: bf16 and fp32, a few minutes on an H100
    python -m benchmarks.gpu_check --device cpu --size tiny --steps 2   # smoke test anywhere

For each precision: CoOp step and CoOp+SEPT step time (median of timed steps after warm-up), their
ratio, peak GPU memory of the SEPT steps, and the share of a SEPT step spent in the text tower (its
forward and backward on the class and neighbor prompts, timed alone). Then, per precision, a DePT step
and a PALM step with eval-mode towers (cached audio features) and with train-mode towers (train.tower_mode
= "train": the step's clips decoded-length waveforms encoded by the audio tower in train mode, PALM's class
names through the text tower), and one step of every recipe (configs/recipes/) for the method it is meant
for, at the recipe's batch size, precision (train.amp) and tower mode. Random weights (no hub): the
timings and memory are those of the real architecture, the losses mean nothing.

Imports only torch, transformers, numpy and this project's torch-only training core (no vllm, faiss,
polars, pyarrow): GPU machines that run project checks have nothing else.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

CLASS_NAMES = ["dog bark", "rain", "sea waves", "crackling fire", "crying baby", "clock tick", "helicopter",
               "chainsaw", "siren", "car horn", "church bells", "airplane", "fireworks", "hand saw", "keyboard typing",
               "door knock", "vacuum cleaner", "washing machine", "thunderstorm", "crow", "cat", "rooster",
               "water drops", "wind", "pouring water"]
WORDS = ["loud", "distant", "soft", "metallic", "sharp", "low", "rapid", "echoing", "muffled", "steady", "sudden",
         "gentle", "harsh", "rhythmic", "faint", "heavy"]


def build_random_backbone(size: str, seed: int, device: str, fingerprint: str | None = None):
    """A random ClapModel of `size` wrapped in the project's adapter, built in memory (no files, no hub)."""
    from transformers import ClapModel

    from stages.backbones.clap.adapter import ClapBackbone
    from stages.backbones.clap.random_model import clap_config, feature_extractor, train_tokenizer

    config = clap_config(size)
    text = config.text_config
    tokenizer = train_tokenizer(text.vocab_size, text.max_position_embeddings - text.pad_token_id - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ClapModel(config).eval()
    backbone = ClapBackbone(model, tokenizer, feature_extractor(size), id=f"random-{size}-seed{seed}",
                            fingerprint=fingerprint or f"clap:random-{size}@seed{seed}")
    return backbone.to(torch.device(device))


def synthetic_phrases(classes: list[str], per_class: int, seed: int = 0) -> dict[str, list[str]]:
    """`per_class` distinct short phrases per class ("distant dog bark sound"): neighbor-like lengths."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for c in classes:
        seen: list[str] = []
        while len(seen) < per_class:
            a, b = (WORDS[int(i)] for i in torch.randint(len(WORDS), (2,), generator=g))
            phrase = f"{a} {c}" if len(seen) % 2 else f"{a} {b} {c} sound"
            if phrase not in seen:
                seen.append(phrase)
            elif len(seen) >= len(WORDS) ** 2:  # pragma: no cover - per_class beyond the vocabulary
                raise ValueError("too many phrases per class for the word list")
            else:
                seen.append(f"{phrase} {len(seen)}")
        out[c] = seen
    return out


def synthetic_bank(learner, classes: list[str], per_class: int, per_step: int, dim: int, templates: int = 8):
    """A NeighborBank of synthetic phrases with margins from random unit 'frozen' embeddings (no store)."""
    from stages.tuning.neighbor_bank import NeighborBank
    from stages.tuning.sept_loss import frozen_margins

    phrases = synthetic_phrases(classes, per_class)
    flat = [p for c in classes for p in phrases[c]]
    ids, mask = learner.tokenize_phrases(flat)
    g = torch.Generator().manual_seed(1)
    class_emb = torch.nn.functional.normalize(torch.randn(len(classes), templates, dim, generator=g), dim=-1)
    neigh_emb = torch.nn.functional.normalize(torch.randn(len(classes), per_class, templates, dim, generator=g), dim=-1)
    margins = frozen_margins(class_emb, neigh_emb)
    c = len(classes)
    return NeighborBank(ids.view(c, per_class, -1), mask.view(c, per_class, -1), torch.full((c,), per_class),
                        margins, per_step, learner.phrase_pad_id)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(learner, bank, sept_cfg, audio, labels, steps: int, warmup: int, amp_dtype) -> list[float]:
    """Seconds of each timed training step (the trainer's own `training_step`), after `warmup` steps."""
    from stages.tuning.config import TrainConfig
    from stages.tuning.trainer import make_optimizer, training_step

    device = audio.device
    optimizer = make_optimizer(learner, TrainConfig())
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        sync(device)
        start = time.perf_counter()
        draw = bank.sample(g).to(device) if bank is not None else None
        training_step(learner, audio, labels, draw, sept_cfg, optimizer, scaler, amp_dtype)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def time_text_tower(learner, bank, steps: int, amp_dtype) -> list[float]:
    """Seconds of the text tower alone on one SEPT step's prompts (class + drawn neighbors), forward + backward."""
    device = learner.ctx.device
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(1 + steps):
        draw = bank.sample(g).to(device)
        sync(device)
        start = time.perf_counter()
        ctx = torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else torch.autocast("cpu", enabled=False)
        with ctx:
            z, p = learner.classes_and_phrases(draw.ids, draw.mask)
        (z.float().sum() + p.float().sum()).backward()
        sync(device)
        learner.zero_grad(set_to_none=True)
        if i >= 1:
            times.append(time.perf_counter() - start)
    return times


# The method each recipe is written for (its file's first line says so); a new recipe must be added here
# (tests/stages/tuning/test_training_core_imports.py checks that every shipped recipe is).
RECIPE_METHODS = {"palm": "coop", "palm-original": "palm", "coop-fewshot": "coop", "coop-b2n": "coop",
                  "coop-imagenet": "coop", "cocoop-original": "cocoop", "kgcoop-original": "kgcoop",
                  "dept-original": "dept", "sept-lab": "coop", "zebra-original": "zebra"}


def random_waves(backbone, batch: int, seed: int = 3) -> list:
    """`batch` random waveforms 20% longer than the tower's window (so a training crop is cut)."""
    g = torch.Generator().manual_seed(seed)
    n = int(backbone.clip_samples * 1.2)
    return [(0.1 * torch.randn(n, generator=g)).numpy() for _ in range(batch)]


def time_tower_steps(learner, waves, labels, steps: int, warmup: int, amp_dtype, tower_mode: str,
                     sept_cfg=None, bank=None) -> list[float]:
    """Seconds of each timed step that first encodes `waves` (train crops) with the towers in `tower_mode`
    ("eval" or "train"/"train_bn_eval"), then runs the trainer's own `training_step`."""
    from stages.tuning.config import SeptConfig, TrainConfig
    from stages.tuning.trainer import make_optimizer, training_step

    backbone = learner.backbone
    device = backbone.device
    sept_cfg = sept_cfg or SeptConfig()
    optimizer = make_optimizer(learner, TrainConfig())
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    crop, draws = torch.Generator().manual_seed(1), torch.Generator().manual_seed(0)
    frozen = backbone.tower_buffers()
    backbone.set_towers_training(tower_mode != "eval", batchnorm=tower_mode == "train")
    times = []
    try:
        for i in range(warmup + steps):
            sync(device)
            start = time.perf_counter()
            audio = backbone.encode_audio(waves, train_crop=True, generator=crop, batch_size=len(waves)).to(device)
            draw = bank.sample(draws).to(device) if bank is not None else None
            training_step(learner, audio, labels, draw, sept_cfg, optimizer, scaler, amp_dtype)
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        backbone.set_towers_training(False)
        backbone.load_tower_buffers(frozen)  # the next measurement starts from the same statistics
    return times


def method_rows(backbone, classes, audio, labels, args, amp_dtype) -> dict:
    """DePT and PALM steps (cached features), and PALM with train-mode towers (audio encoded every step)."""
    from stages.tuning.config import MethodConfig, SeptConfig
    from stages.tuning.learners import build_learner

    device = backbone.device
    out = {}
    for method in ("dept", "palm"):
        learner = build_learner(backbone, MethodConfig(name=method, n_ctx=args.n_ctx), ["a sound of a {}."], 1)
        learner = learner.to(device)
        learner.set_train_classes(classes)
        out[f"{method}_step_ms"] = round(1e3 * statistics.median(
            time_steps(learner, None, SeptConfig(), audio, labels, args.steps, args.warmup, amp_dtype)), 2)
        if method == "palm":
            waves = random_waves(backbone, args.batch)
            for mode in ("eval", "train"):
                t = time_tower_steps(learner, waves, labels, args.steps, args.warmup, amp_dtype, mode)
                out[f"palm_{mode}_towers_encoding_step_ms"] = round(1e3 * statistics.median(t), 2)
    return out


def recipe_rows(backbone, classes, args) -> dict:
    """One training step per recipe, for the method it is meant for, at its batch, precision and tower mode
    (eval-mode towers: cached features, as `tune` reads them; train modes: encoded in the step)."""
    from pipeline.config_loader import load_config, recipe_names
    from stages.tuning.learners import build_learner
    from stages.tuning.trainer import amp_settings

    device = backbone.device
    rows = {}
    for name in recipe_names():
        method = RECIPE_METHODS.get(name, "coop")
        cfg = load_config(recipe=name, method=method)
        batch = args.recipe_batch or cfg.train.batch_size
        learner = build_learner(backbone, cfg.method, cfg.text.templates[:1], 1, cfg.train.logit_scale).to(device)
        learner.set_train_classes(classes)
        amp_dtype, _ = amp_settings(device, cfg.train.amp)
        g = torch.Generator().manual_seed(4)
        labels = torch.randint(len(classes), (batch,), generator=g).to(device)
        if cfg.train.tower_mode == "eval":
            audio = torch.randn(batch, backbone.embed_dim, generator=g).to(device)
            t = time_steps(learner, None, cfg.sept, audio, labels, args.steps, args.warmup, amp_dtype)
        else:
            t = time_tower_steps(learner, random_waves(backbone, batch), labels, args.steps, args.warmup, amp_dtype,
                                 cfg.train.tower_mode)
        rows[name] = {"method": method, "batch": batch, "amp": cfg.train.amp,
                      "autocast": str(amp_dtype).replace("torch.", "") if amp_dtype else "off",
                      "tower_mode": cfg.train.tower_mode, "step_ms": round(1e3 * statistics.median(t), 2)}
    return rows


def run_check(args) -> dict:
    from stages.tuning.config import MethodConfig, SeptConfig
    from stages.tuning.learners import build_learner

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible; use --device cpu for a smoke test")
    t0 = time.perf_counter()
    backbone = build_random_backbone(args.size, 0, args.device)
    build_s = time.perf_counter() - t0
    classes = CLASS_NAMES[: args.classes]
    learner = build_learner(backbone, MethodConfig(name="coop", n_ctx=args.n_ctx), ["a sound of a {}."], 1).to(device)
    learner.set_classnames(classes)
    sept_cfg = SeptConfig(enabled=True, neighbors_per_step=args.neighbors_per_step)
    bank = synthetic_bank(learner, classes, args.neighbors, args.neighbors_per_step, backbone.embed_dim)
    g = torch.Generator().manual_seed(2)
    audio = torch.randn(args.batch, backbone.embed_dim, generator=g).to(device)
    labels = torch.randint(len(classes), (args.batch,), generator=g).to(device)

    precisions = {"bf16": torch.bfloat16, "fp32": None} if device.type == "cuda" else {"fp32": None}
    rows = {}
    for name, amp_dtype in precisions.items():
        coop = time_steps(learner, None, sept_cfg, audio, labels, args.steps, args.warmup, amp_dtype)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        sept = time_steps(learner, bank, sept_cfg, audio, labels, args.steps, args.warmup, amp_dtype)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        tower = time_text_tower(learner, bank, args.steps, amp_dtype)
        coop_ms, sept_ms = 1e3 * statistics.median(coop), 1e3 * statistics.median(sept)
        rows[name] = {"coop_step_ms": round(coop_ms, 2), "coop_sept_step_ms": round(sept_ms, 2),
                      "sept_over_coop": round(sept_ms / coop_ms, 3),
                      "peak_memory_mib": None if peak is None else round(peak, 1),
                      "text_tower_share": round(1e3 * statistics.median(tower) / sept_ms, 3),
                      **method_rows(backbone, classes, audio, labels, args, amp_dtype)}
    recipes = recipe_rows(backbone, classes, args) if args.recipes else {}
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "size": args.size, "parameters_m": round(backbone.num_parameters() / 1e6, 1),
        "classes": len(classes), "batch": args.batch, "n_ctx": args.n_ctx,
        "neighbors_per_class": args.neighbors, "neighbors_per_step": args.neighbors_per_step,
        "texts_per_sept_step": len(classes) * (1 + min(args.neighbors, args.neighbors_per_step)),
        "steps_timed": args.steps, "build_seconds": round(build_s, 1), "results": rows, "recipes": recipes,
    }


def print_table(report: dict) -> None:
    print(f"{report['device']} | torch {report['torch']} | CLAP {report['size']} ({report['parameters_m']} M params, "
          f"random) | {report['classes']} classes, batch {report['batch']}, n_ctx {report['n_ctx']}, "
          f"{report['neighbors_per_step']} neighbors/class/step ({report['texts_per_sept_step']} texts per SEPT step)")
    print(f"{'precision':<10}{'CoOp ms':>10}{'+SEPT ms':>10}{'ratio':>8}{'peak MiB':>10}{'text tower':>12}"
          f"{'DePT ms':>10}{'PALM ms':>10}{'PALM+enc eval':>15}{'PALM+enc train':>16}")
    for name, r in report["results"].items():
        peak = "n/a" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        print(f"{name:<10}{r['coop_step_ms']:>10.1f}{r['coop_sept_step_ms']:>10.1f}{r['sept_over_coop']:>8.2f}"
              f"{peak:>10}{100 * r['text_tower_share']:>11.0f}%{r['dept_step_ms']:>10.1f}{r['palm_step_ms']:>10.1f}"
              f"{r['palm_eval_towers_encoding_step_ms']:>15.1f}{r['palm_train_towers_encoding_step_ms']:>16.1f}")
    if report.get("recipes"):
        print(f"\n{'recipe':<18}{'method':<10}{'batch':>6}{'autocast':>10}{'towers':>15}{'step ms':>10}")
        for name, r in report["recipes"].items():
            print(f"{name:<18}{r['method']:<10}{r['batch']:>6}{r['autocast']:>10}{r['tower_mode']:>15}"
                  f"{r['step_ms']:>10.1f}")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu for a smoke test")
    ap.add_argument("--size", default="full", choices=["full", "tiny"], help="random CLAP architecture")
    ap.add_argument("--classes", type=int, default=25, help="training classes (25 = ESC-50's base half)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--n-ctx", type=int, default=16)
    ap.add_argument("--neighbors", type=int, default=8, help="stored neighbors per class (N)")
    ap.add_argument("--neighbors-per-step", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-recipes", dest="recipes", action="store_false",
                    help="skip the one-step timing of every recipe")
    ap.add_argument("--recipe-batch", type=int, default=0,
                    help="clips per recipe step (0 = each recipe's own batch size; a small number for smoke tests)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    report = run_check(args)
    print_table(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
