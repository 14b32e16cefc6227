"""Per-request sampling: the effective parameters of round r for one class, and its seed.

The seed of a request depends only on (base seed, round, class name), not on the batch it runs in, so
a class's sampled answer does not change when other classes join or leave the batch. Retries
(round >= 1) sample at `retry_temperature` at least: with greedy decoding a fresh seed alone would
give the same answer again.
"""
from __future__ import annotations

import hashlib


def request_seed(base_seed: int, round_index: int, class_name: str, example_set: int = 0) -> int:
    """The seed of one request: sha256 of (base seed, round, class name[, example set after the first])."""
    tag = f"{class_name}\x00set{int(example_set)}" if example_set else class_name
    digest = hashlib.sha256(f"{int(base_seed)}:{int(round_index)}:{tag}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def round_sampling(spec: dict, round_index: int, class_name: str, example_set: int = 0) -> dict:
    """Keyword arguments of engines.Sampling for one request; `spec` is worker_launch.sampling_spec().

    example_set: which of the prompt's example sets the conversation uses; sets after the first get a
    seed of their own (the first set's is the rule of a one-set prompt)."""
    temperature = spec["temperature"]
    if round_index > 0:
        temperature = max(temperature, spec["retry_temperature"])
    return {
        "temperature": float(temperature),
        "top_p": float(spec["top_p"]),
        "max_tokens": int(spec["max_tokens"]),
        "seed": request_seed(spec["seed"], round_index, class_name, example_set),
        "repetition_penalty": float(spec.get("repetition_penalty", 1.0)),
        "frequency_penalty": float(spec.get("frequency_penalty", 0.0)),
        "json_schema": spec.get("json_schema"),
    }


def sample_request(spec: dict, round_index: int, class_name: str) -> dict:
    """Keyword arguments of the extra sampled answers of a class (spec['samples'] > 1): n = samples - 1 at
    spec['sample_temperature'], with a seed of their own (same rule, tagged so it differs from the
    first answer's)."""
    kw = round_sampling(spec, round_index, class_name)
    kw.update(temperature=float(spec["sample_temperature"]), n=int(spec["samples"]) - 1, logprobs=True,
              seed=request_seed(spec["seed"], round_index, class_name + "\x00samples"))
    return kw
