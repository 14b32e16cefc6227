"""Where stage one's LLM and encoder run and in which precision (stages/neighbors/devices.py)."""
import pytest

from stages.neighbors import devices

GIB = 1024 ** 3


def test_an_encoder_that_fits_shares_the_gpu_and_vllm_gets_the_rest():
    # 80 GiB device, a 15 GiB LLM, a 0.6 GiB CLAP: the encoder keeps 2 * 0.6 + 1 = 2.2 GiB, vLLM may take up to
    # (80 - 2.2) / 80 = 0.9725 of it, capped at 0.85.
    plan = devices.gpu_plan(80 * GIB, 15 * GIB, int(0.6 * GIB))
    assert (plan.gpu_memory_utilization, plan.encoder_device) == (0.85, "cuda")
    # 24 GiB: (24 - 2.2) / 24 = 0.9083 -> 0.85 still; the LLM needs 2 * 8 + 1 = 17 GiB <= 0.85 * 24 = 20.4.
    assert devices.gpu_plan(24 * GIB, 8 * GIB, int(0.6 * GIB)).encoder_device == "cuda"


def test_a_big_encoder_lowers_the_fraction_to_whole_percents():
    # 40 GiB, a 4 GiB encoder: reserve 9 GiB, (40 - 9) / 40 = 0.775 -> 0.77; the LLM's 2 * 5 + 1 = 11 GiB fit.
    plan = devices.gpu_plan(40 * GIB, 5 * GIB, 4 * GIB)
    assert (plan.gpu_memory_utilization, plan.encoder_device) == (0.77, "cuda")
    assert "0.77" in plan.reason


def test_when_both_do_not_fit_the_encoder_goes_to_the_cpu():
    # 16 GiB, a 7 GiB LLM (needs 15 GiB) and a 0.6 GiB encoder (2.2 GiB): 0.85 * 16 = 13.6 < 15.
    plan = devices.gpu_plan(16 * GIB, 7 * GIB, int(0.6 * GIB))
    assert (plan.gpu_memory_utilization, plan.encoder_device) == (0.85, "cpu")
    assert "encoder on the CPU" in plan.reason


def test_weight_bytes_counts_weight_files_only(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pytorch_model.bin").write_bytes(b"x" * 24)
    (tmp_path / "config.json").write_text("{}" * 100)
    assert devices.weight_bytes(str(tmp_path), 7) == 1024
    assert devices.weight_bytes(str(tmp_path / "model.safetensors"), 7) == 1000
    assert devices.weight_bytes(str(tmp_path / "nothing-here"), 7) == 7
    assert devices.weight_bytes("nobody/not-a-cached-model", 7) == 7  # a hub id not in the local cache


def test_an_explicit_dtype_is_kept_and_cuda_is_left_to_the_engine():
    assert devices.llm_dtype("float16", on_cuda=False)[0] == "float16"
    assert devices.llm_dtype("bfloat16", on_cuda=True) == ("bfloat16", "neighbors.dtype = 'bfloat16'")
    assert devices.llm_dtype("auto", on_cuda=True)[0] == "auto"


def test_cpu_description_names_the_model_and_the_flags_that_matter():
    d = devices.cpu_description()
    assert d["model"] and d["cpus"] >= 1
    assert set(d["flags"]) | set(d["lacks"]) == set(devices.SHOWN_FLAGS)
    line = devices.describe_cpu(d)
    assert d["model"] in line and "lacks" in line


def test_auto_on_a_cpu_is_bf16_only_with_native_bf16(monkeypatch):
    """This machine's own answer, checked against /proc/cpuinfo (an independent reading of the same flags);
    then an AVX2-only CPU as torch reports it. No machine of ours is one, so torch.cpu's answers are
    replaced, as benchmarks/stage_one_dtypes.py's emulation replaces them for vLLM."""
    import torch

    native = bool({"avx512_bf16", "amx_bf16"} & devices.cpu_flags())
    dtype, why = devices.llm_dtype("auto", on_cuda=False)
    assert dtype == ("bfloat16" if native else "float32") and "neighbors.dtype = 'auto' on a CPU" in why
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert devices.llm_dtype("auto", on_cuda=False) == (
        "float32", "neighbors.dtype = 'auto' on a CPU without native bf16 (torch sees neither avx512_bf16 nor amx): "
        "float32")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)  # AMX alone (Sapphire Rapids and later)
    assert devices.llm_dtype("auto", on_cuda=False)[0] == "bfloat16"
