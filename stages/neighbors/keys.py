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


@dataclass(frozen=True)
class GenerationIdentity:
    source: llm_source.LLMSource
    llm: dict  # {'id', 'revision', 'fingerprint'}
    template: prompt.PromptTemplate
    prompt_hash: str  # template file, answer format, count asked, and SELECTION_RULE
    num_neighbors: int
    key: str
    model_dir: Path


def resolve_generation(cfg: NeighborsConfig, cache_dir: str | os.PathLike | None = None) -> GenerationIdentity:
    """Check the LLM and the prompt named by `cfg` and compute the generation key (UserError if bad)."""
    cache = cache_root(cache_dir)
    source = llm_source.resolve(cfg.llm)
    model_dir = llm_source.model_dir_for(cfg.model_dir, cache)
    template = prompt.load(cfg.prompt, shipped.package_root())
    phash = short(sha256_json({"prompt": template.prompt_hash(cfg.output_format, cfg.overgenerate),
                               "selection": SELECTION_RULE}))
    fp = llm_source.fingerprint(source, model_dir)
    key = generation_key(fp["fingerprint"], phash, cfg.num_neighbors)
    return GenerationIdentity(source, fp, template, phash, cfg.num_neighbors, key, model_dir)


def generation_key_for(cfg: NeighborsConfig, cache_dir: str | os.PathLike | None = None) -> str:
    """The store's generation key for this [neighbors] config (no torch, no engine)."""
    return resolve_generation(cfg, cache_dir).key
