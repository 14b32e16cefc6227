"""The semantic-structure diagnostic SEPT rests on (docs/method.md): does the prompt keep each class
close to its own neighbors and away from other classes' neighbors?

For a pair of runs that differ only in SEPT (same dataset, method, protocol, shots, settings, seed), and for
the dataset's classes that have neighbors in the store, three [classes x neighbors] cosine-similarity
matrices (columns grouped by class):
  template        frozen embeddings, mean over the T hand-crafted templates (what the store holds)
  no SEPT         class names and neighbors through the learned prompt of the run without SEPT
  SEPT            ... through the learned prompt of the run with SEPT
Neighbors go through the same prompt as class names, as in training (CoCoOp: the context without the
instance bias). Numbers: mean own-neighbor similarity (class i vs its own neighbors), mean other-neighbor
similarity (class i vs every other class's neighbors), and their gap; for base-to-new runs also on the
base and on the new classes alone. The columns are the stored neighbors of every class, the same for both
runs of a pair: a training run's class-boundary view (metrics.json `neighbor_selection`) is a choice of
what to train on, not of what to look at.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cache.atomic import atomic_write_json
from cache.errors import UserError
from cache.unit_vectors import unit_rows
from pipeline.protocols.table import BASE2NEW
from pipeline.report.collect import collect_runs
from pipeline.report.tables import method_label
from stages.tuning.methods import uses_neighbors

CONDITIONS = ("template", "no SEPT", "SEPT")


def similarity(z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """[C, P] cosine similarity between class embeddings z [C, D] and neighbor embeddings p [P, D]."""
    return unit_rows(z) @ unit_rows(p).T


def own_other(sim: np.ndarray, owner: np.ndarray, rows: np.ndarray | None = None) -> dict:
    """Mean similarity of each class (row) to its own neighbors and to the other classes' neighbors.

    `owner[n]` is the row of the class neighbor column n belongs to. `rows` restricts both the classes
    and the neighbors to a subset (e.g. the new classes). Means are over (class, neighbor) pairs.
    """
    owner = np.asarray(owner)
    rows = np.arange(sim.shape[0]) if rows is None else np.asarray(rows)
    cols = np.isin(owner, rows)
    block = sim[np.ix_(rows, np.flatnonzero(cols))]
    own_mask = owner[cols][None, :] == rows[:, None]
    own = float(block[own_mask].mean()) if own_mask.any() else float("nan")
    other = float(block[~own_mask].mean()) if (~own_mask).any() else float("nan")
    return {"own": own, "other": other, "gap": own - other}


@dataclass
class Pair:
    dataset: str
    method: str
    protocol: str
    shots: int
    variant: str
    seed: int
    without: Path           # run directory without SEPT
    with_sept: Path         # run directory with SEPT

    @property
    def slug(self) -> str:
        return f"{self.dataset}-{self.protocol}-{self.method}-{self.shots}shot-seed{self.seed}"


def pick_pairs(runs_dir: Path) -> list[Pair]:
    """For each (dataset, method, protocol, shots, settings), the lowest seed run both with and without SEPT."""
    collected = collect_runs(runs_dir)
    by_key: dict[tuple, dict[bool, dict[int, str]]] = {}
    for r in collected.runs:
        if not uses_neighbors(r["method"]):  # no learned prompt that neighbors go through
            continue
        key = (r["dataset"], r["method"], r["protocol"], r["shots"], r["variant"])
        by_key.setdefault(key, {False: {}, True: {}})[r["sept"]].setdefault(r["seed"], r["run"])
    pairs = []
    for (dataset, method, protocol, shots, variant), runs in sorted(by_key.items()):
        common = sorted(set(runs[False]) & set(runs[True]))
        if common:
            seed = common[0]
            pairs.append(Pair(dataset, method, protocol, shots, variant, seed,
                              runs_dir / runs[False][seed], runs_dir / runs[True][seed]))
    return pairs


@dataclass
class Diagnosis:
    pair: Pair
    classes: list[str]
    neighbors: list[str]
    owner: np.ndarray
    matrices: dict[str, np.ndarray] = field(default_factory=dict)
    numbers: dict[str, dict] = field(default_factory=dict)     # condition -> {"all": {...}, "base": ..., "new": ...}
    split_after: int | None = None                             # base classes come first in base-to-new
    omitted: list[str] = field(default_factory=list)           # classes without neighbors or embeddings


def _run_config(run: Path):
    from pipeline.config_loader import load_config

    if not (run / "config.toml").is_file():
        raise UserError(f"run {run}: no config.toml (expected a run directory written by `sept-pipeline tune`)")
    return load_config(run / "config.toml")


def learned_embeddings(run: Path, backbone, classes: list[str], phrases: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Unit class and neighbor embeddings through the run's learned prompt (no instance bias)."""
    import torch

    from pipeline.report.inspect import prompt_file
    from stages.tuning.checkpoint import load_prompt
    from stages.tuning.learners import build_learner

    cfg = _run_config(run)
    learner = build_learner(backbone, cfg.method, cfg.text.templates, cfg.data.seed).to(backbone.device)
    path, _ = prompt_file(run)
    learner.load_prompt_state(load_prompt(path, backbone.fingerprint, cfg.method.name))
    learner.eval()
    with torch.no_grad():
        learner.set_classnames(classes)
        z = learner.class_embeddings()
        ids, mask = learner.tokenize_phrases(phrases)
        p = learner.embed_phrases(ids, mask)
    return z.double().cpu().numpy(), p.double().cpu().numpy()


def diagnose(pair: Pair, cache_dir, backbones: dict) -> Diagnosis:
    """The three matrices and their numbers for one pair of runs; `backbones` caches loaded models by id."""
    from cache.fingerprint import cache_root
    from cache.store import NeighborStore
    from stages.backbones.factory import load_backbone
    from stages.data.specs import dataset_classnames
    from stages.data.splits import base_new_split
    from stages.neighbors.filters import template_mean
    from stages.neighbors.keys import generation_key_for
    from stages.tuning.neighbor_source import classes_lacking

    cfg = _run_config(pair.with_sept)
    cache = cache_root(cache_dir)
    if cfg.backbone.id not in backbones:
        backbones[cfg.backbone.id] = load_backbone(cfg.backbone.id, cfg.backbone)
    backbone = backbones[cfg.backbone.id]
    store = NeighborStore.in_cache(cache)
    gkey = cfg.sept.generation_key or generation_key_for(cfg.neighbors, cache, pair.dataset)
    templates = list(cfg.text.templates)

    all_classes = dataset_classnames(pair.dataset)
    base, new = base_new_split(all_classes, cfg.data.base_fraction) if pair.protocol == BASE2NEW else (
        sorted(all_classes), [])
    ordered = base + new
    lacking = set(classes_lacking(store, ordered, gkey, templates, backbone.fingerprint))
    phrases = store.get_phrases([c for c in ordered if c not in lacking], gkey)
    classes = [c for c in ordered if c not in lacking and phrases[c]]
    omitted = [c for c in ordered if c not in classes]
    if len(classes) < 2:
        raise UserError(f"diagnostic for {pair.with_sept}: the store at {store.root} holds neighbors and embeddings "
                        f"for {len(classes)} of the classes of {pair.dataset} under generation key {gkey}; "
                        f"it needs at least 2 (run `sept-pipeline generate-neighbors --dataset {pair.dataset}`)")
    neighbors = [p for c in classes for p in phrases[c]]
    owner = np.array([i for i, c in enumerate(classes) for _ in phrases[c]])
    frozen = store.get_embeddings(classes + neighbors, templates, backbone.fingerprint)   # [n, T, D]
    frozen = template_mean(frozen)
    d = Diagnosis(pair, classes, neighbors, owner, omitted=omitted,
                  split_after=sum(c in base for c in classes) if new else None)
    d.matrices["template"] = similarity(frozen[: len(classes)], frozen[len(classes):])
    for condition, run in (("no SEPT", pair.without), ("SEPT", pair.with_sept)):
        z, p = learned_embeddings(run, backbone, classes, neighbors)
        d.matrices[condition] = similarity(z, p)
    for condition, sim in d.matrices.items():
        d.numbers[condition] = {"all": own_other(sim, owner)}
        if d.split_after is not None:
            d.numbers[condition]["base"] = own_other(sim, owner, np.arange(d.split_after))
            d.numbers[condition]["new"] = own_other(sim, owner, np.arange(d.split_after, len(classes)))
    return d


def _num(value: float | None, sign: str = "") -> str:
    return "–" if value is None or np.isnan(value) else f"{value:{sign}.4f}"


def _markdown(diagnoses: list[Diagnosis]) -> str:
    from pipeline.report.render import markdown_table

    rows = []
    for d in diagnoses:
        p = d.pair
        for condition in CONDITIONS:
            n = d.numbers[condition]
            cells = []
            for part in ("all", "new"):
                values = n.get(part, {})
                cells += [_num(values.get("own")), _num(values.get("other")), _num(values.get("gap"), "+")]
            rows.append([p.dataset, method_label(p.method, False, p.variant), p.seed, condition, *cells])
    table = markdown_table(["Dataset", "Method", "Seed", "Prompt", "Own", "Other", "Gap", "Own (new)",
                            "Other (new)", "Gap (new)"], rows, right_from=4)
    pictures = "\n\n".join(f"![semantic structure {d.pair.slug}](semantic_structure-{d.pair.slug}.png)"
                           + (f"\n\nClasses without stored neighbors, left out: {', '.join(d.omitted)}."
                              if d.omitted else "") for d in diagnoses)
    return "\n\n".join([
        "## Semantic structure (diagnostic)",
        "Cosine similarity between each class's embedding and the neighbors of every class, under the "
        "hand-crafted templates (frozen, mean over templates), the learned prompt without SEPT, and the learned "
        "prompt with SEPT (same dataset, method and seed). Own = mean over each class's own neighbors; Other = "
        "mean over other classes' neighbors; Gap = Own − Other. The columns on new classes (base-to-new runs) "
        "show what the prompt does to classes it never trained on.",
        table, pictures,
    ])


def diagnostic_sections(runs_dir, out_dir, cache_dir=None, progress: bool = True) -> tuple[list[str], list[Path]]:
    """Compute every pair's diagnostic, write the pictures and diagnostic.json; (Markdown, files written)."""
    from tqdm.auto import tqdm

    from pipeline.report import figures

    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    pairs = pick_pairs(runs_dir) if runs_dir.is_dir() else []
    if not pairs:
        return ["## Semantic structure (diagnostic)",
                "No pair of runs with and without SEPT (same dataset, method, protocol, shots and seed) was "
                "found, so there is nothing to compare."], []
    backbones: dict = {}
    diagnoses, files = [], []
    for pair in tqdm(pairs, desc="diagnostic", disable=not progress):
        d = diagnose(pair, cache_dir, backbones)
        diagnoses.append(d)
        counts = [int((d.owner == i).sum()) for i in range(len(d.classes))]
        all_ = {c: d.numbers[c]["all"] for c in CONDITIONS}
        panels = [(f"{c}: own {_num(all_[c]['own'])}, other {_num(all_[c]['other'])}", d.matrices[c])
                  for c in CONDITIONS]
        files += figures.semantic_structure(
            panels, d.classes, counts, out_dir / f"semantic_structure-{pair.slug}",
            title=f"{pair.dataset}, {method_label(pair.method, False, pair.variant)}, seed {pair.seed}: "
                  f"class x neighbor cosine similarity (red boxes: own neighbors"
                  + ("; dashed line: base | new" if d.split_after and d.split_after < len(d.classes) else "") + ")",
            split_after=d.split_after)
    files.append(out_dir / "diagnostic.json")
    atomic_write_json(files[-1], [
        {"dataset": d.pair.dataset, "method": d.pair.method, "protocol": d.pair.protocol, "shots": d.pair.shots,
         "variant": d.pair.variant, "seed": d.pair.seed, "run_without_sept": str(d.pair.without),
         "run_with_sept": str(d.pair.with_sept), "classes": d.classes, "omitted_classes": d.omitted,
         "num_neighbors": len(d.neighbors), "base_classes": d.split_after, "numbers": d.numbers}
        for d in diagnoses])
    return [_markdown(diagnoses)], files
