"""Where stage one's LLM and encoder run, and in which precision (torch-free at import).

- `llm_dtype(requested, on_cuda)`: the dtype the LLM engine is given. `neighbors.dtype = "auto"` on a CPU is
  bfloat16 only where the CPU computes bf16 natively (AVX512-BF16 or AMX, the instructions vLLM's CPU kernels
  use for it), float32 elsewhere: without them every bf16 operation is converted in software, and decoding
  was 4.7x slower per token than float32 on an AVX2-only EPYC (docs/benchmarks.md, "Precision"). On CUDA
  "auto" is left to the engine (vLLM's own choice from the model's config).
- `cpu_description()`: the CPU model and the instruction-set flags that matter here, for logs and benchmarks.
- `gpu_plan(...)`: on a GPU, whether the frozen text encoder fits beside the LLM engine on the same device,
  and the memory fraction vLLM is then given (`gpu_memory_utilization`).
"""
from __future__ import annotations

import platform
from dataclasses import dataclass

# The CPU flags (as /proc/cpuinfo names them) that give native bf16 arithmetic on x86.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Flags shown with every stage-one measurement (what the engines dispatch on).
SHOWN_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_flags() -> set[str]:
    """The flags of the first CPU in /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_bf16() -> tuple[bool, str]:
    """(whether this CPU computes bf16 natively, which evidence says so), as vLLM's CPU platform decides it.

    vLLM's CPU build picks its kernels with torch.cpu._is_avx512_bf16_supported() and
    torch.cpu._is_amx_tile_supported() (vllm/platforms/cpu.py); those are read first, /proc/cpuinfo's flags
    where torch lacks them."""
    import torch

    seen = []
    bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if bf16 is not None and amx is not None:
        if bf16():
            seen.append("avx512_bf16")
        if amx():
            seen.append("amx")
        return bool(seen), ("torch sees " + " and ".join(seen)) if seen else "torch sees neither avx512_bf16 nor amx"
    flags = cpu_flags()
    seen = [f for f in NATIVE_BF16_FLAGS if f in flags]
    return bool(seen), ("/proc/cpuinfo has " + " and ".join(seen)) if seen else \
        "/proc/cpuinfo has neither avx512_bf16 nor amx_bf16"


def llm_dtype(requested: str, on_cuda: bool) -> tuple[str, str]:
    """(dtype to give the engine, why): see the module doc. An explicit neighbors.dtype is kept as asked."""
    if requested != "auto":
        return requested, f"neighbors.dtype = {requested!r}"
    if on_cuda:
        return "auto", "neighbors.dtype = 'auto' on CUDA: the engine's own choice"
    native, why = native_bf16()
    if native:
        return "bfloat16", f"neighbors.dtype = 'auto' on a CPU with native bf16 ({why})"
    return "float32", f"neighbors.dtype = 'auto' on a CPU without native bf16 ({why}): float32"


def cpu_description() -> dict:
    """CPU model, logical CPUs, the SHOWN_FLAGS it has and lacks, and torch's view of it (when importable)."""
    import os

    flags = cpu_flags()
    out = {"model": cpu_model(), "cpus": os.cpu_count(), "flags": [f for f in SHOWN_FLAGS if f in flags],
           "lacks": [f for f in SHOWN_FLAGS if f not in flags]}
    try:
        import torch

        out["torch_capability"] = torch.backends.cpu.get_cpu_capability()
        out["native_bf16"] = native_bf16()[0]
    except Exception:  # noqa: BLE001 - torch missing or too old: the flags alone
        pass
    return out


def describe_cpu(d: dict | None = None) -> str:
    d = cpu_description() if d is None else d
    line = f"{d['model']}, {d['cpus']} CPUs, flags {' '.join(d['flags']) or '-'} (lacks {' '.join(d['lacks']) or '-'})"
    if "torch_capability" in d:
        line += f", torch {d['torch_capability']}"
    return line


# ------------------------------------------------------------------------------------------------
# One GPU for the LLM and the encoder

GIB = 1024 ** 3
CONTEXT_BYTES = 1 * GIB  # a second CUDA context (the parent's) plus the allocator's slack
DEFAULT_FRACTION = 0.85  # vLLM's share of the device when the encoder is elsewhere


@dataclass(frozen=True)
class GpuPlan:
    gpu_memory_utilization: float  # what vLLM is given
    encoder_device: str  # "cuda" or "cpu"
    reason: str


def gpu_plan(total_bytes: int, llm_weight_bytes: int, encoder_weight_bytes: int,
             default_fraction: float = DEFAULT_FRACTION) -> GpuPlan:
    """Share one GPU between the LLM engine and the frozen text encoder, or keep the encoder on the CPU.

    The encoder needs its weights (loaded as float32), a CUDA context of its own and room for a batch:
    twice its weight bytes plus CONTEXT_BYTES. vLLM gets the rest, at most `default_fraction` of the
    device; it needs its weights plus at least as much again for its KV cache. When that does not fit,
    the encoder runs on the CPU and vLLM keeps `default_fraction`.
    """
    reserve = 2 * encoder_weight_bytes + CONTEXT_BYTES
    fraction = min(default_fraction, (total_bytes - reserve) / total_bytes) if total_bytes > 0 else 0.0
    llm_need = 2 * llm_weight_bytes + CONTEXT_BYTES
    if fraction > 0 and fraction * total_bytes >= llm_need:
        fraction = float(int(fraction * 100)) / 100  # whole percents, rounded down
        return GpuPlan(fraction, "cuda", f"encoder beside the LLM on the GPU: vLLM gets {fraction:.2f} of "
                                         f"{total_bytes / GIB:.0f} GiB, the encoder keeps {reserve / GIB:.1f} GiB")
    return GpuPlan(default_fraction, "cpu", f"the encoder ({reserve / GIB:.1f} GiB with its context) and the "
                                            f"LLM ({llm_need / GIB:.1f} GiB at least) do not fit on one "
                                            f"{total_bytes / GIB:.0f} GiB GPU: encoder on the CPU")


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
UNKNOWN_LLM_BYTES = 16 * GIB  # a 7B-class model in bf16, when its files cannot be seen
UNKNOWN_ENCODER_BYTES = 2 * GIB


def weight_bytes(location: str | None, unknown: int) -> int:
    """Bytes of the weight files of a model folder, a checkpoint file or a hub id in the local Hugging Face
    cache; `unknown` when none can be seen (a hub id not downloaded yet)."""
    import os
    from pathlib import Path

    if not location:
        return unknown
    path = Path(location).expanduser()
    if not path.exists() and "/" in str(location) and not str(location).startswith(("/", ".")):
        try:  # a hub id: its snapshot in the local cache, if any (never downloads)
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(str(location), local_files_only=True))
        except Exception:  # noqa: BLE001 - not cached, or no huggingface_hub
            return unknown
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path, followlinks=True):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(WEIGHT_SUFFIXES))
    return total or unknown
