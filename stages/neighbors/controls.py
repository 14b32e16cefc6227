"""Control neighbor sources: generations that look like a real one but carry no semantics of their own.

Each control is stored like any other generation (a key, a name, frozen embeddings for the backbone), so
`tune --set sept.generation=NAME`, sweeps, reports and the diagnostic treat it as they treat the real one.
For every class of the real generation (`--like`), as many phrases as the real list holds for that class:
- random-words: each phrase has as many words as the real phrase in its place, drawn from a fixed English
  word list (configs/controls/english-words.txt; WaffleCLIP's sanity baseline for LLM descriptions). The
  class's own words are never drawn. Seeded per (seed, class): a class's phrases depend on it alone.
- class-name: the class name alone under the first n templates of configs/controls/class_name_templates.txt.
The third control of the efficacy benchmark, the real neighbors without the class boundary, is a setting:
`--set sept.boundary_filter=false` with the real generation.
No cleaning runs on controls (it would change the counts); provenance says "control:<kind>" with the
parameters, and the real generation they copy the shape of.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from cache.errors import UserError
from cache.fingerprint import sha256_file, sha256_json, short

KINDS = ("random-words", "class-name")
# Version of the control rules: part of a control's generation key (a changed rule is another generation).
CONTROL_RULE = "controls-v1"


def _controls_dir() -> Path:
    from stages.shipped import configs_dir

    return configs_dir() / "controls"


def word_list_path() -> Path:
    return _controls_dir() / "english-words.txt"


def templates_path() -> Path:
    return _controls_dir() / "class_name_templates.txt"


def _lines(path: Path) -> list[str]:
    return [x.strip() for x in path.read_text(encoding="utf-8").splitlines() if x.strip() and not x.startswith("#")]


def _class_rng(seed: int, class_name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}\x00{class_name}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def random_words(real: dict[str, list[str]], words: list[str], seed: int) -> dict[str, list[str]]:
    """Per class, one phrase of random words per real phrase, as many words as it has; distinct within a class."""
    out = {}
    for c, phrases in real.items():
        own = set(re.split(r"[\s\-/]+", c.lower()))
        pool = [w for w in words if w not in own]
        rng = _class_rng(seed, c)
        made: list[str] = []
        for p in phrases:
            length = max(1, len(p.split()))
            while True:
                phrase = " ".join(pool[i] for i in rng.choice(len(pool), size=length, replace=False))
                if phrase not in made:
                    break
            made.append(phrase)
        out[c] = made
    return out


def class_names(real: dict[str, list[str]], templates: list[str]) -> dict[str, list[str]]:
    """Per class, its name under the first n templates, n = its number of real phrases."""
    most = max((len(v) for v in real.values()), default=0)
    if most > len(templates):
        worst = max(real, key=lambda c: len(real[c]))
        raise UserError(f"control class-name: class {worst!r} has {most} neighbors in the real generation; "
                        f"{templates_path()} holds {len(templates)} templates (add templates, or use a "
                        f"generation with fewer neighbors)")
    out = {}
    for c, phrases in real.items():
        made = list(dict.fromkeys(t.replace("{}", c) for t in templates))[: len(phrases)]
        if len(made) < len(phrases):
            raise UserError(f"control class-name: class {c!r} gives only {len(made)} distinct phrases")
        out[c] = made
    return out


def make_control(kind: str, cfg, cache_dir, backbone: str | None, like: str, name: str, seed: int = 0,
                 force_name: bool = False) -> dict:
    """`neighbors control KIND --like GENERATION --name NAME`: store the control and embed it for the backbone."""
    from cache.fingerprint import cache_root
    from cache.store import ClassNeighbors, NeighborStore, Provenance
    from cache.store.generations import check_name
    from stages.backbones.fingerprint import encoder_fingerprint
    from stages.neighbors.lists import cached_embeddings, sept_pipeline_version, store_generation

    if kind not in KINDS:
        raise UserError(f"control {kind!r}: one of {', '.join(KINDS)}")
    check_name(name)
    cache = cache_root(cache_dir)
    store = NeighborStore.in_cache(cache)
    backbone_id = backbone or cfg.backbone.id
    encoder_fp = encoder_fingerprint(cfg.backbone, cache, spec=backbone_id)
    chosen = store.resolve_generation(like, [], list(cfg.text.templates), encoder_fp, where="--like")
    row = next(r for r in store.generation_keys() if r["generation_key"] == chosen.key)
    if row["engine"].startswith("control:"):
        raise UserError(f"--like {like}: generation {chosen.key} is itself a control ({row['engine']}); give the "
                        f"real generation")
    real = store.get_phrases(row["class_names"], chosen.key)
    if kind == "random-words":
        source = word_list_path()
        words = _lines(source)
        phrases = random_words(real, words, seed)
        params = {"seed": seed, "word_list": "configs/controls/english-words.txt", "words": len(words),
                  "word_list_sha256": sha256_file(source), "words_per_phrase": "as the real phrase in its place"}
    else:
        source = templates_path()
        templates = _lines(source)
        phrases = class_names(real, templates)
        params = {"templates": "configs/controls/class_name_templates.txt", "templates_sha256": sha256_file(source)}
    params = {"control": kind, "like": chosen.key, "rule": CONTROL_RULE, **params}
    prov = Provenance(llm_id=f"control:{kind}", llm_revision="", llm_fingerprint=f"control:{kind}",
                      engine=f"control:{kind}", engine_version=sept_pipeline_version(),
                      prompt_hash=short(sha256_json(params)), prompt_version="control",
                      num_neighbors=int(row["num_neighbors"]))
    params["like_names"] = list(chosen.names)  # recorded, not keyed: renaming the real one changes nothing
    store.check_name_free(name, prov.generation_key, force_name)
    items = [ClassNeighbors(c, phrases[c], prov, params, seed, rounds=0) for c in row["class_names"]]
    vectors = cached_embeddings(store, backbone_id, cfg, cache, encoder_fp)
    stored = store_generation(store, items, vectors, name, force_name)
    return {"store": str(store.root), "generation_key": prov.generation_key, "generation_name": name,
            "control": kind, "like": chosen.key, "parameters": params, "classes": len(items),
            "phrases": sum(len(i.phrases) for i in items), "encoder_fingerprint": encoder_fp, **stored}
