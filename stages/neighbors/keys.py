"""Torch-free keys of stage one: which generation a NeighborsConfig refers to.

Stage two calls `generation_key_for(cfg.neighbors, cache_dir)` to find the neighbors its config
refers to; `generate-neighbors` uses `resolve_generation` for the same answer plus its parts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cache.fingerprint import cache_root, sha256_json, short
from cache.store.keys import generation_key
from stages import shipped
from stages.neighbors import llm_source, prompt
from stages.neighbors.config import NeighborsConfig

# Version of the rule that turns a class's cleaned candidates into stored rows (filters.py). It is folded
# into the stored prompt hash, hence into the generation key: rows chosen under rule 1 (which dropped
# neighbors closer to another class generated in the same call) are never read as rows of this rule,
# under which a class's rows depend on that class alone.
SELECTION_RULE = "own-class-only-v2"
# Version of the text-cleaning rules (cleaning.py): v2 also drops truncations and reorderings of the class
# name and phrases in another script than the class name. Folded into the key like the selection rule.
CLEANING_RULE = "cleaning-v2"


def ranking_spec(cfg: NeighborsConfig) -> dict:
    """How a class's candidates are pooled, scored and ranked (voting.py, verification.py): part of the key."""
    spec: dict = {"cleaning": CLEANING_RULE}
    if cfg.samples > 1:
        spec["votes"] = {"samples": cfg.samples, "temperature": cfg.sample_temperature,
                         "ties": "logprob, then round-robin"}
    if cfg.verify_threshold > 0:
        from stages.neighbors.verification import VERIFY_PROMPT_VERSION

        spec["verify"] = {"threshold": cfg.verify_threshold, "prompt": VERIFY_PROMPT_VERSION}
    return spec


@dataclass(frozen=True)
class GenerationIdentity:
    source: llm_source.LLMSource
    llm: dict  # {'id', 'revision', 'fingerprint'}
    template: prompt.PromptTemplate
    prompt_hash: str  # template file, answer format, count asked, task (with {task}), rules and ranking
    task: str  # the task text the prompt is given ('' when the template has no {task})
    num_neighbors: int
    key: str
    model_dir: Path


def dataset_task(dataset: str | os.PathLike | None) -> str:
    """The task a dataset config states ('' for none or no dataset)."""
    if dataset is None:
        return ""
    from stages.data.specs import dataset_spec

    return dataset_spec(dataset).task


def resolve_generation(cfg: NeighborsConfig, cache_dir: str | os.PathLike | None = None,
                       task: str = "") -> GenerationIdentity:
    """Check the LLM and the prompt named by `cfg` and compute the generation key (UserError if bad).

    task: the dataset's task (dataset_task); neighbors.task, when set, wins over it.
    """
    cache = cache_root(cache_dir)
    source = llm_source.resolve(cfg.llm)
    model_dir = llm_source.model_dir_for(cfg.model_dir, cache)
    template = prompt.load(cfg.prompt, shipped.package_root())
    task_text = template.task_text(cfg.task or task)
    phash = short(sha256_json({"prompt": template.prompt_hash(cfg.output_format, cfg.overgenerate, task_text),
                               "selection": SELECTION_RULE, "ranking": ranking_spec(cfg)}))
    fp = llm_source.fingerprint(source, model_dir)
    key = generation_key(fp["fingerprint"], phash, cfg.num_neighbors)
    return GenerationIdentity(source, fp, template, phash, task_text, cfg.num_neighbors, key, model_dir)


def generation_key_for(cfg: NeighborsConfig, cache_dir: str | os.PathLike | None = None,
                       dataset: str | os.PathLike | None = None) -> str:
    """The store's generation key for this [neighbors] config and dataset (no torch, no engine)."""
    return resolve_generation(cfg, cache_dir, dataset_task(dataset)).key
