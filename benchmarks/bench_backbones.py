"""Text-step and audio-step times per backbone kind on the full-size random architecture.

    python -m benchmarks.bench_backbones                  # CPU here: about a minute on 2 cores
    python -m benchmarks.bench_backbones --device cuda    # the same on a GPU

Text step: a CoOp-style forward + backward through the frozen text tower from token embeddings
(32 prompts, gradient w.r.t. the embeddings), what every prompt-tuning step pays. Audio step: encoding
8 clips of the backbone's own length (no grad), what feature caching and random-crop training pay.
Each kind is written as a random checkpoint of the real key layout (`backbones make-random --size full`)
and loaded through the same path a user's file takes. Random weights: timings only.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TEXTS = 32
CLIPS = 8


def audio_kinds_with_random_maker() -> tuple[str, ...]:
    """Every registered audio kind that can make a random model (the default --kinds)."""
    from stages.backbones.registry import get_kind, known_kinds

    return tuple(k for k in known_kinds() if get_kind(k).item_modality == "audio" and get_kind(k).makes_random)


def _time(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds (all threads) of `fn`.

    On a shared machine the wall time depends on what else runs; the CPU time does much less.
    """
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return round(statistics.median(walls), 3), round(statistics.median(cpus), 3)


def measure(kind: str, device: str, repeats: int, folder: Path) -> dict:
    from stages.backbones.config import BackboneConfig
    from stages.backbones.factory import load_backbone
    from stages.backbones.registry import get_kind

    path = get_kind(kind).make_random("full", 0, folder / kind)
    backbone = load_backbone(path, BackboneConfig(device=device))
    texts = [f"a sound of a class number {i}." for i in range(TEXTS)]
    tok = backbone.tokenize(texts)

    def text_step():
        embeds = backbone.token_embeddings(tok["input_ids"]).detach().requires_grad_(True)
        out = backbone.encode_text_from_embeddings(embeds, tok["input_ids"], tok["attention_mask"])
        torch.nn.functional.normalize(out, dim=-1).sum().backward()

    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(backbone.clip_samples).astype(np.float32) * 0.1 for _ in range(CLIPS)]
    text_wall, text_cpu = _time(text_step, repeats)
    audio_wall, audio_cpu = _time(lambda: backbone.encode_audio(clips), repeats)
    return {"kind": kind, "parameters_M": round(backbone.num_parameters() / 1e6, 1), "clip_s": backbone.clip_seconds,
            "text_step_s": text_wall, "text_step_cpu_s": text_cpu, "audio_step_s": audio_wall,
            "audio_step_cpu_s": audio_cpu, "device": device}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(audio_kinds_with_random_maker()))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            rows.append(measure(kind, args.device, args.repeats, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n| kind | parameters (M) | clip (s) | text step, {TEXTS} prompts fwd+bwd: wall / CPU (s) "
          f"| audio step, {CLIPS} clips: wall / CPU (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['parameters_M']} | {r['clip_s']} | {r['text_step_s']} / {r['text_step_cpu_s']} "
              f"| {r['audio_step_s']} / {r['audio_step_cpu_s']} |")


if __name__ == "__main__":
    main()
