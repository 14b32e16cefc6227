"""Per-request seeds, round sampling, LLM resolution and torch-free fingerprints."""
import json
import subprocess
import sys

import pytest

from cache.errors import UserError
from stages.neighbors import llm_source
from stages.neighbors.sampling import request_seed, round_sampling

SPEC = {"temperature": 0.0, "retry_temperature": 0.7, "top_p": 0.9, "max_tokens": 64, "seed": 3,
        "repetition_penalty": 1.2, "json_schema": None}


def test_request_seed_depends_on_seed_round_and_class_only():
    s = request_seed(3, 0, "dog")
    assert s == request_seed(3, 0, "dog")
    assert len({s, request_seed(4, 0, "dog"), request_seed(3, 1, "dog"), request_seed(3, 0, "cat")}) == 4
    assert 0 <= s < 2**31


def test_each_example_set_has_its_own_seed_and_the_first_keeps_the_one_set_rule():
    assert request_seed(3, 0, "dog", 0) == request_seed(3, 0, "dog")
    seeds = {request_seed(3, 0, "dog", k) for k in range(5)}
    assert len(seeds) == 5
    assert round_sampling(SPEC, 0, "dog", 2)["seed"] == request_seed(3, 0, "dog", 2)
    # the frequency penalty reaches every request (absent from an old spec: off)
    assert round_sampling({**SPEC, "frequency_penalty": 0.7}, 1, "dog", 1)["frequency_penalty"] == 0.7
    assert round_sampling(SPEC, 0, "dog")["frequency_penalty"] == 0.0


def test_retries_sample_hot_even_when_greedy():
    assert round_sampling(SPEC, 0, "dog")["temperature"] == 0.0
    r1 = round_sampling(SPEC, 1, "dog")
    assert r1["temperature"] == 0.7 and r1["seed"] == request_seed(3, 1, "dog") and r1["repetition_penalty"] == 1.2
    assert round_sampling({**SPEC, "temperature": 0.9}, 1, "dog")["temperature"] == 0.9


def test_resolve_packaged_local_hub_and_missing(tmp_path):
    src = llm_source.resolve("packaged:smollm2-135m-instruct")
    assert src.kind == "packaged" and src.path.name.endswith(".gguf") and src.path.is_file()
    folder = tmp_path / "my-llm"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert llm_source.resolve(str(folder)).kind == "local"
    assert llm_source.resolve("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    for bad in [str(tmp_path / "missing"), "./models/none", "a/b/c", ""]:
        with pytest.raises(UserError, match="--llm"):
            llm_source.resolve(bad)
    with pytest.raises(UserError, match="unknown packaged model"):
        llm_source.resolve("packaged:nope")
    (tmp_path / "file.bin").write_text("x")
    with pytest.raises(UserError, match="not a model folder"):
        llm_source.resolve(str(tmp_path / "file.bin"))


def test_local_fingerprint_tracks_weight_bytes_and_is_memoised(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    (folder / "README.md").write_text("not part of the model")
    src = llm_source.resolve(str(folder))
    memo_dir = tmp_path / "llm"
    fp1 = llm_source.fingerprint(src, memo_dir)
    assert fp1["fingerprint"].startswith("local:m@")
    memo = json.loads((memo_dir / "fingerprints.json").read_text())
    assert len(memo) == 2  # config.json and model.safetensors, not the README
    (folder / "README.md").write_text("changed")
    assert llm_source.fingerprint(src, memo_dir) == fp1
    (folder / "model.safetensors").write_bytes(b"\x01" * 100)
    assert llm_source.fingerprint(src, memo_dir)["fingerprint"] != fp1["fingerprint"]


def test_generation_key_is_torch_free(tmp_path):
    code = (
        "import sys\n"
        "from stages.neighbors.keys import generation_key_for\n"
        "from stages.neighbors.config import NeighborsConfig\n"
        f"k = generation_key_for(NeighborsConfig(), {str(tmp_path)!r})\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'faiss') if m in sys.modules]\n"
        "print(k, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert len(out[0]) == 16 and out[1] == "[]"
    from stages.neighbors.config import NeighborsConfig
    from stages.neighbors.keys import generation_key_for

    assert generation_key_for(NeighborsConfig(), tmp_path) == out[0]
    assert generation_key_for(NeighborsConfig(num_neighbors=4), tmp_path) != out[0]
    assert generation_key_for(NeighborsConfig(output_format="json"), tmp_path) != out[0]
