"""Content keys of the neighbor store: what makes two generations or two embeddings "the same".

A class is generated once per generation key; a text is encoded once per (template id, encoder
fingerprint). The keys are short hashes so they fit in file names and table cells.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from cache.fingerprint import sha256_bytes, sha256_json, short


def generation_key(llm_fingerprint: str, prompt_hash: str, num_neighbors: int) -> str:
    """Key of one generation setting: same LLM weights, same prompt template, same N."""
    return short(sha256_json({"llm": llm_fingerprint, "prompt": prompt_hash, "n": int(num_neighbors)}))


def template_id(template: str) -> str:
    """Short hash of a template string such as "a sound of a {}."; the exact text is the identity."""
    return short(sha256_bytes(template.encode("utf-8")), 12)


def template_set_id(template_ids: list[str] | tuple[str, ...]) -> str:
    """Key of a set of templates (order does not matter: the index averages over them)."""
    return short(sha256_json(sorted(set(template_ids))), 12)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def encoder_slug(encoder_fingerprint: str) -> str:
    """A folder name for one encoder: readable prefix plus a hash, so distinct fingerprints never collide."""
    readable = _UNSAFE.sub("_", encoder_fingerprint).strip("._-")[:40] or "encoder"
    return f"{readable}-{short(sha256_bytes(encoder_fingerprint.encode('utf-8')), 12)}"


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_part_stem() -> str:
    """A unique, time-sortable name for a new immutable file: two writers never pick the same one."""
    return f"part-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}-{secrets.token_hex(4)}"
