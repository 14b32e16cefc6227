"""Stage one is never repeated per run: before any cell starts, check that the neighbor store holds what
every SEPT cell will read, and run `generate-neighbors` once for what is missing.

What a cell reads is what `tune` checks (stages/tuning/neighbor_source.py): for each class it trains on,
phrases under its generation, and frozen embeddings of the class name and its phrases for its backbone
under its templates. Its generation: with `sept.generation = "auto"` (the default), the one its [neighbors]
config describes (stage one's identity, resolved here where the LLM is, and handed to the cell as
`--set sept.generation=KEY`, so the cell itself never looks at the LLM); a key or a name is the cell's own
choice, and stage one cannot generate into it. The check covers every class of the cell's dataset,
not only the base classes a base-to-new run trains on: the semantic-structure diagnostic reads the new
classes' neighbors too, and other protocols on the same dataset then find the store full.
Cells that share those settings share one `generate-neighbors --classes-file` call over all their
missing classes, across datasets: what is stored for a class depends on that class alone, so the
grouping cannot change it (the class boundary is drawn at tune time, among a run's training classes).
No torch here: the check reads the store, fingerprints are hashed from files.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cache.atomic import atomic_write_text
from cache.fingerprint import cache_root, sha256_json, short
from pipeline.sweep.child_env import SAFE_PATH_ENV, module_command
from pipeline.sweep.grid import Cell, cell_inputs, overrides
from pipeline.sweep.spec import SweepSpec, override_text
from stages.neighbors import leftovers, supervisor
from stages.tuning.methods import uses_neighbors

# Config keys that change what stage one writes or where tune looks for it.
_STAGE_ONE_PREFIXES = ("neighbors.", "text.", "backbone.id", "sept.generation")


@dataclass
class Need:
    """One group of cells with the same stage-one settings, and the classes the store lacks for them."""

    backbone: str
    overrides: dict
    cells: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # classes lacking phrases or embeddings, in first-seen order
    fixed_key: bool = False                             # sept.generation names a generation: nothing to generate
    task: str = ""                                      # the datasets' task, for prompts with {task}
    generation: str = ""                                # the generation key its cells read


def find_missing(spec: SweepSpec, cells: list[Cell]) -> list[Need]:
    """Groups of SEPT cells whose neighbors are not (all) in the store yet."""
    return [n for n in sept_groups(spec, cells) if n.missing]


def cell_generations(needs: list[Need]) -> dict[str, str]:
    """Cell name -> the generation key to hand it (`--set sept.generation=KEY`), for cells on "auto"."""
    return {cell: n.generation for n in needs if not n.fixed_key for cell in n.cells}


def sept_groups(spec: SweepSpec, cells: list[Cell]) -> list[Need]:
    """Every group of SEPT cells with the same stage-one settings: its generation and what the store lacks."""
    from cache.store import NeighborStore
    from cache.store.generations import AUTO, classes_lacking
    from stages.backbones.fingerprint import encoder_fingerprint
    from stages.data.specs import dataset_classnames
    from stages.neighbors.keys import dataset_task, resolve_generation

    cache = cache_root(spec.cache_dir)
    store = NeighborStore.in_cache(cache)
    needs: dict[str, Need] = {}
    checked: set[tuple] = set()
    for cell in cells:
        if not cell.sept or not uses_neighbors(cell.method):
            continue
        cfg, _ = cell_inputs(spec, cell)
        relevant = {k: v for k, v in overrides(spec, cell).items() if k.startswith(_STAGE_ONE_PREFIXES)}
        fixed = cfg.sept.generation.strip() != AUTO
        # A prompt with {task} keys each dataset's task apart: one generate-neighbors call per task.
        ident = None if fixed else resolve_generation(cfg.neighbors, cache, dataset_task(cell.dataset))
        task = ident.task if ident else ""
        group = short(sha256_json({"backbone": cfg.backbone.id, "set": relevant, **({"task": task} if task else {})}))
        need = needs.get(group)
        if need is None:
            encoder = encoder_fingerprint(cfg.backbone, cache)
            templates = list(cfg.text.templates)
            gkey = store.resolve_generation(cfg.sept.generation, [], templates, encoder).key if fixed else ident.key
            need = needs[group] = Need(cfg.backbone.id, relevant, fixed_key=fixed, task=task, generation=gkey)
        need.cells.append(cell.name)
        classes = dataset_classnames(cell.dataset)
        if (group, tuple(classes)) in checked:
            continue
        checked.add((group, tuple(classes)))
        encoder = encoder_fingerprint(cfg.backbone, cache)
        for c in classes_lacking(store, classes, need.generation, list(cfg.text.templates), encoder):
            if c not in need.missing:
                need.missing.append(c)
    return list(needs.values())


def generate_command(spec: SweepSpec, need: Need, classes_file: Path) -> list[str]:
    cmd = module_command("pipeline.cli", "generate-neighbors", "--classes-file", str(classes_file),
                         "--backbone", need.backbone, "--json")
    if spec.cache_dir:
        cmd += ["--cache-dir", str(spec.cache_dir)]
    if need.task:
        cmd += ["--task", need.task]
    if spec.config:
        cmd += ["--config", str(spec.config)]
    for key, value in need.overrides.items():
        cmd += ["--set", override_text(key, value)]
    return cmd


def fill_store(spec: SweepSpec, needs: list[Need], state_dir: Path, echo=print) -> list[dict]:
    """Run `generate-neighbors` once per group of missing classes; returns what happened per group."""
    results = []
    for i, need in enumerate(needs):
        if need.fixed_key:
            results.append({"classes": need.missing, "rc": None,
                            "message": f"sept.generation names the stored generation {need.generation}; nothing to "
                                       f"generate into it"})
            continue
        classes_file = state_dir / f"missing-classes-{i}.txt"
        atomic_write_text(classes_file, "".join(f"{c}\n" for c in need.missing))
        log = state_dir / "logs" / "generate-neighbors.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        cmd = generate_command(spec, need, classes_file)
        echo(f"stage one: {len(need.missing)} classes lack neighbors for {len(need.cells)} SEPT runs; "
             f"running generate-neighbors once (log: {log})")
        with open(log, "ab") as fh:
            fh.write(f"\n=== {' '.join(cmd)}\n".encode())
            fh.flush()
            # Supervised, so that a sweep killed meanwhile takes the whole stage-one run with it (the
            # CLI, its generation worker and the LLM engine); see docs/design.md, "Process lifetime".
            rc = supervisor.run(cmd, records=cache_root(spec.cache_dir) / "tmp" / leftovers.RECORDS,
                                env={**os.environ, **SAFE_PATH_ENV}, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        results.append({"classes": need.missing, "rc": rc, "log": str(log),
                        "message": "" if rc == 0 else f"generate-neighbors failed ({supervisor.describe_exit(rc)}); "
                                                      f"see {log}"})
    return results
