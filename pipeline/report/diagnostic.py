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

Reads records and arrays only: each run wrote the embeddings while its learner was in memory
(diagnostic.npz, stages/tuning/diagnostic_arrays.py); no model, learner or store is loaded here. A pair
whose runs wrote no arrays is named with the reason and left out.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cache.atomic import atomic_write_json
from cache.unit_vectors import unit_rows
from pipeline.report.collect import collect_runs
from pipeline.report.tables import method_label

CONDITIONS = ("template", "no SEPT", "SEPT")
DIAGNOSTIC_FILE = "diagnostic.npz"  # written by each run (stages/tuning/diagnostic_arrays.py)


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
    variant: str            # the SEPT run's report label (its settings that vary)
    seed: int
    without: Path           # run directory without SEPT
    with_sept: Path         # run directory with SEPT
    eval_split: str = "test"

    @property
    def slug(self) -> str:
        base = f"{self.dataset}-{self.protocol}-{self.method}-{self.shots}shot-seed{self.seed}"
        if self.eval_split != "test":
            base += f"-{self.eval_split}"
        return base + (f"-{hashlib.sha256(self.variant.encode()).hexdigest()[:8]}" if self.variant else "")


def pick_pairs(runs_dir: Path) -> list[Pair]:
    """For each pair of settings that differ only in SEPT (report --paired's pairing), the lowest seed (and its
    first fold) run both with and without SEPT."""
    from pipeline.report.paired import group_pairs

    collected = collect_runs(runs_dir)
    pairs = []
    for without, with_sept in group_pairs(collected):
        common = sorted({(r["seed"], r["fold"]) for r in without} & {(r["seed"], r["fold"]) for r in with_sept})
        if not common:
            continue
        seed, fold = common[0]
        off = next(r for r in sorted(without, key=lambda r: r["run"]) if (r["seed"], r["fold"]) == (seed, fold))
        on = next(r for r in sorted(with_sept, key=lambda r: r["run"]) if (r["seed"], r["fold"]) == (seed, fold))
        pairs.append(Pair(on["dataset"], on["method"], on["protocol"], on["shots"], on["variant"], seed,
                          runs_dir / off["run"], runs_dir / on["run"], on["eval_split"]))
    return sorted(pairs, key=lambda p: (p.dataset, p.method, p.protocol, p.shots, p.variant, p.eval_split))


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


class NoArrays(Exception):
    """A run of a pair wrote no diagnostic arrays; the message says why."""


def read_arrays(run: Path) -> dict[str, np.ndarray]:
    """A run's diagnostic.npz, or NoArrays with the reason its record gives."""
    path = run / DIAGNOSTIC_FILE
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError) as e:
            raise NoArrays(f"{path}: unreadable ({e})") from None
    from pipeline.protocols.record import RecordError, RunRecord

    try:
        why = RunRecord.read(run / "metrics.json").diagnostic.get("skipped", "")
    except RecordError as e:
        why = str(e)
    raise NoArrays(f"{run}: no {DIAGNOSTIC_FILE}" + (f" ({why})" if why else ""))


def diagnose(pair: Pair) -> Diagnosis:
    """The three matrices and their numbers for one pair of runs, from the arrays both runs wrote. Classes and
    neighbors are those both runs hold (the same store gives the same ones), in the SEPT run's order."""
    off, on = read_arrays(pair.without), read_arrays(pair.with_sept)

    def keyed(a):
        classes = a["classes"].tolist()
        return classes, [(classes[o], n) for o, n in zip(a["owner"].tolist(), a["neighbors"].tolist())]

    off_classes, off_items = keyed(off)
    on_classes, on_items = keyed(on)
    classes = [c for c in on_classes if c in set(off_classes)]
    items = [it for it in on_items if it[0] in set(classes) and it in set(off_items)]
    classes = [c for c in classes if any(it[0] == c for it in items)]
    if len(classes) < 2:
        raise NoArrays(f"{pair.without} and {pair.with_sept}: {len(classes)} classes with neighbors in common "
                       f"(at least 2 are needed)")
    base_count = int(on["base_count"])
    base = set(on_classes[:base_count]) if base_count >= 0 else set()
    owner = np.array([classes.index(c) for c, _ in items])
    d = Diagnosis(pair, classes, [n for _, n in items], owner,
                  omitted=sorted(set(on["omitted"].tolist()) | (set(on_classes) - set(classes)),
                                 key=lambda c: c.lower()),
                  split_after=sum(c in base for c in classes) if base_count >= 0 else None)

    def rows(a, which):
        cls_index = {c: i for i, c in enumerate(a["classes"].tolist())}
        item_index = {it: i for i, it in enumerate(keyed(a)[1])}
        return (a[f"{which}_classes"][[cls_index[c] for c in classes]].astype(np.float64),
                a[f"{which}_neighbors"][[item_index[it] for it in items]].astype(np.float64))

    d.matrices["template"] = similarity(*rows(on, "template"))
    d.matrices["no SEPT"] = similarity(*rows(off, "prompt"))
    d.matrices["SEPT"] = similarity(*rows(on, "prompt"))
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


def diagnostic_sections(runs_dir, out_dir, progress: bool = True) -> tuple[list[str], list[Path]]:
    """Every pair's diagnostic from the runs' own arrays: pictures and diagnostic.json; (Markdown, files)."""
    from tqdm.auto import tqdm

    from pipeline.report import figures

    runs_dir, out_dir = Path(runs_dir), Path(out_dir)
    pairs = pick_pairs(runs_dir) if runs_dir.is_dir() else []
    if not pairs:
        return ["## Semantic structure (diagnostic)",
                "No pair of runs with and without SEPT (same dataset, method, protocol, shots and seed) was "
                "found, so there is nothing to compare."], []
    diagnoses, files, missing = [], [], []
    for pair in tqdm(pairs, desc="diagnostic", disable=not progress):
        try:
            d = diagnose(pair)
        except NoArrays as e:
            missing.append(str(e))
            continue
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
    if not diagnoses:
        return ["## Semantic structure (diagnostic)",
                "No pair of runs with and without SEPT has the diagnostic's arrays: "
                + "; ".join(missing) + "."], files
    files.append(out_dir / "diagnostic.json")
    atomic_write_json(files[-1], [
        {"dataset": d.pair.dataset, "method": d.pair.method, "protocol": d.pair.protocol, "shots": d.pair.shots,
         "variant": d.pair.variant, "seed": d.pair.seed, "run_without_sept": str(d.pair.without),
         "run_with_sept": str(d.pair.with_sept), "classes": d.classes, "omitted_classes": d.omitted,
         "num_neighbors": len(d.neighbors), "base_classes": d.split_after, "numbers": d.numbers}
        for d in diagnoses])
    sections = [_markdown(diagnoses)]
    if missing:
        sections.append("Pairs left out, without the diagnostic's arrays: " + "; ".join(missing) + ".")
    return sections, files
