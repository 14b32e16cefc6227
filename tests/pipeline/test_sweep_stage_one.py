"""The sweep's stage-one check on a real store: which classes each group of SEPT cells still lacks."""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from cache.store import ClassNeighbors, NeighborStore, Provenance
from pipeline.sweep.grid import expand
from pipeline.sweep.spec import parse_sweep
from pipeline.sweep.stage_one import fill_store, find_missing

TEMPLATES = ["a sound of a {}.", "the sound of {}."]


@torch.no_grad()
def test_find_missing_names_exactly_the_lacking_classes_once_for_all_sept_cells(tmp_path: Path, tiny_backbone,
                                                                                tiny_clap_dir):
    from stages.data.specs import dataset_classnames

    classes = dataset_classnames("demo")
    cache = tmp_path / "cache"
    prov = Provenance("t", "0", "stage-one-test", "none", "0", "p", "1", 8)
    neighbors = {c: [f"{c} sound", f"loud {c}"] for c in classes}
    neighbors["animal"] = []                 # stage one tried and got nothing usable: not lacking
    del neighbors["tabla"]                   # never generated: lacking
    store = NeighborStore.in_cache(cache)
    store.put_phrases([ClassNeighbors(c, p, prov, {}, 0) for c, p in neighbors.items()])
    texts = [t for c, ps in neighbors.items() for t in (c, *ps) if t != "loud cymbal"]  # one phrase not encoded
    flat = [t.format(x) for x in texts for t in TEMPLATES]
    e = F.normalize(tiny_backbone.encode_text(flat).float(), dim=-1).view(len(texts), len(TEMPLATES), -1)
    store.put_embeddings(texts, TEMPLATES, tiny_backbone.fingerprint, e.numpy())

    sweep = tmp_path / "s.toml"
    sweep.write_text(f"""
[sweep]
runs_dir = "{tmp_path / 'runs'}"
data_root = "{tmp_path / 'data'}"
backbone = "{tiny_clap_dir}"
cache_dir = "{cache}"
[grid]
dataset = ["demo"]
method = ["zeroshot", "coop"]
sept = [false, true]
seed = [1, 2]
[set]
"text.templates" = {json.dumps(TEMPLATES)}
"sept.generation" = "{prov.generation_key}"
""")
    spec = parse_sweep(sweep)
    needs = find_missing(spec, expand(spec))
    assert len(needs) == 1
    need = needs[0]
    assert sorted(need.missing) == ["cymbal", "tabla"]
    assert need.cells == ["demo-base2new-coop-sept-16shot-seed1", "demo-base2new-coop-sept-16shot-seed2"]
    # sept.generation names a stored generation: the sweep cannot generate into it, and says so.
    result = fill_store(spec, needs, tmp_path / "state", echo=lambda m: None)
    assert result[0]["rc"] is None and "sept.generation" in result[0]["message"]
    # Without SEPT cells there is nothing to check.
    no_sept = [c for c in expand(spec) if not c.sept]
    assert find_missing(spec, no_sept) == []
