"""`report --paired [--by KEY]`: per-seed differences between runs that differ only in KEY (default
sept.enabled), with their mean, standard deviation, a 95% interval and the sign count.

Pairing. Two groups of runs (the report's settings: same protocol, evaluation split, dataset, method, shots and
every setting of the manifest and config, seed and fold apart) are compared when they differ in KEY and in
nothing else. With SEPT off its own settings do not touch a run, so a run without SEPT is the reference of
every SEPT setting it otherwise equals (one comparison per sept.lam, say). The reference is the lower value
of KEY (false before true, the smaller number); each difference is other - reference.

Per seed. A seed's figure is the mean over its folds (the folds both groups ran at that seed), for each
headline number of the protocol (protocol table: base2new base, new, HM; fewshot acc, macro-F1; cross the
mean target accuracy); HM is each run's own 2BN/(B+N), averaged over folds. Runs at one seed share the
few-shot draw, the initialisation and the data order (stages/tuning/trainer.py), so the difference at a seed
is the effect of KEY on that draw. Seeds run by only one group are named, not used.

Statistics over the n paired seeds: mean difference, sample standard deviation (ddof 1), and the 95% interval
mean +/- t(0.975, n - 1) * sd / sqrt(n) with Student's t quantile (scipy.stats.t), so the interval assumes
roughly normal per-seed differences; with one seed there is no sd and no interval. The sign count says how
many seeds the difference was positive ("8 of 10 seeds better"), ties counted apart.
An Average comparison per setting averages, seed by seed, the per-dataset differences over the datasets that
ran every seed used; its interval is over seeds (datasets are not independent draws).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from cache.errors import UserError
from pipeline.protocols.table import PROTOCOLS
from pipeline.report.collect import SEPT_ONLY, Collected, relevant_setting
from pipeline.report.tables import AVERAGE, method_label

DEFAULT_KEY = "sept.enabled"
LEVEL = 0.95
METRIC_NAMES = {"base_acc": "Base", "new_acc": "New", "hm": "HM", "acc": "Acc", "macro_f1": "Macro-F1",
                "mean_acc": "Mean target acc"}
# What a run's row says besides its settings; KEY may be any of these or a setting.
_ROW_KEYS = {"method.name": "method", "sept.enabled": "sept", "data.shots": "shots", "data.eval_split": "eval_split"}
# Keys whose value follows from KEY's: they differ with it, so they do not stop a pairing by KEY (the store
# generation a run read follows from the generation it asked for: a real generation against its control).
_FOLLOWS = {"sept.generation": ("sept.generation_used",)}


@dataclass
class Stat:
    metric: str
    seeds: list[int]
    differences: list[float]                    # per seed, in `seeds` order
    mean: float
    sd: float | None
    t_quantile: float | None
    ci: tuple[float, float] | None
    better: int
    worse: int
    ties: int

    @property
    def n(self) -> int:
        return len(self.seeds)

    def sign_count(self) -> str:
        tie = f", {self.ties} tied" if self.ties else ""
        return f"{self.better} of {self.n} seeds better{tie}"


@dataclass
class Comparison:
    protocol: str
    eval_split: str
    dataset: str                                # a dataset, or AVERAGE
    method: str
    shots: int
    key: str
    reference: Any                              # KEY's value in the reference group
    other: Any
    reference_variant: str                      # the report's variant labels of both groups
    other_variant: str
    sept: tuple[bool, bool]                     # SEPT on in (reference, other)
    stats: list[Stat] = field(default_factory=list)
    unpaired: dict[str, list[int]] = field(default_factory=dict)  # "reference"/"other" -> seeds run by one only
    n_datasets: int = 1

    def label(self) -> str:
        return (f"{_value(self.reference)} → {_value(self.other)}"
                + (f" [{self.other_variant}]" if self.other_variant and self.other_variant != self.reference_variant
                   else ""))


def t_quantile(n: int, level: float = LEVEL) -> float:
    """Student's t quantile for a two-sided `level` interval of a mean of n values (n - 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


def stat(metric: str, seeds: list[int], differences: list[float]) -> Stat:
    n = len(differences)
    mean = sum(differences) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1)) if n > 1 else None
    q = t_quantile(n) if n > 1 else None
    ci = (mean - q * sd / math.sqrt(n), mean + q * sd / math.sqrt(n)) if n > 1 else None
    return Stat(metric, seeds, differences, mean, sd, q, ci, better=sum(d > 0 for d in differences),
                worse=sum(d < 0 for d in differences), ties=sum(d == 0 for d in differences))


def _value(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (bool, type(None))) else str(v)


def _view(row: dict, setting: dict) -> dict:
    """What tells a run apart from another, seed and fold aside: its row keys and the settings that touch it
    (with SEPT off, SEPT's own settings do not)."""
    return {"protocol": row["protocol"], "dataset": row["dataset"],
            **{key: row[column] for key, column in _ROW_KEYS.items()}, **relevant_setting(setting, row["sept"])}


def _pairable(a: dict, b: dict, key: str) -> bool:
    """Two group views differ in `key` and nothing else but what follows from it (_FOLLOWS); keys present on
    one side only are SEPT's own settings of the side that runs SEPT, where `key` is what switches SEPT on."""
    if key not in a or key not in b or a[key] == b[key]:
        return False
    for k in a.keys() | b.keys():
        if k == key or k in _FOLLOWS.get(key, ()):
            continue
        if k in a and k in b:
            if a[k] != b[k]:
                return False
        elif not (key == DEFAULT_KEY and k.startswith(SEPT_ONLY)):
            return False
    return True


def _order(v: Any) -> tuple:
    return (0, float(v), "") if isinstance(v, (bool, int, float)) else (1, 0.0, str(v))


def group_pairs(collected: Collected, key: str = DEFAULT_KEY) -> list[tuple[list[dict], list[dict]]]:
    """(reference runs, other runs) of every two groups of runs that differ only in `key`."""
    groups: dict[str, dict] = {}          # frozen view -> {"view", "rows"}
    for row in collected.runs:
        view = _view(row, collected.settings[row["run"]])
        ident = json.dumps(view, sort_keys=True, default=str)
        groups.setdefault(ident, {"view": view, "rows": []})["rows"].append(row)
    if groups and not any(key in g["view"] for g in groups.values()):
        known = sorted({k for g in groups.values() for k in g["view"]} - {"protocol", "dataset"})
        raise UserError(f"--by {key}: no run here has that key (keys of these runs: {', '.join(known)})")
    out = []
    for a in groups.values():
        for b in groups.values():
            va, vb = a["view"], b["view"]
            if _order(va.get(key)) < _order(vb.get(key)) and _pairable(va, vb, key):
                out.append((a["rows"], b["rows"]))
    return out


def paired(collected: Collected, key: str = DEFAULT_KEY) -> list[Comparison]:
    """Every comparison of groups that differ only in `key`, per dataset, then the Average over datasets."""
    comparisons = [_compare(collected, ref, other, key) for ref, other in group_pairs(collected, key)]
    comparisons = [c for c in comparisons if c.stats or c.unpaired]
    comparisons.sort(key=lambda c: (c.protocol, c.eval_split, c.dataset, c.method, c.shots, c.other_variant))
    return comparisons + _averages(comparisons)


def _per_seed(collected: Collected, rows: list[dict], metric: str, folds: dict[int, set[str]] | None = None
              ) -> dict[int, dict[str, float]]:
    """seed -> fold -> the metric (runs of one fold averaged); only `folds[seed]` where given."""
    out: dict[int, dict[str, list[float]]] = {}
    for row in rows:
        value = collected.records[row["run"]].headline()[metric]
        if value is None or (folds is not None and row["fold"] not in folds.get(row["seed"], ())):
            continue
        out.setdefault(row["seed"], {}).setdefault(row["fold"], []).append(value)
    return {s: {f: sum(v) / len(v) for f, v in by_fold.items()} for s, by_fold in out.items()}


def _compare(collected: Collected, ref_rows: list[dict], other_rows: list[dict], key: str) -> Comparison:
    first, second = ref_rows[0], other_rows[0]
    view_ref = _view(first, collected.settings[first["run"]])
    view_other = _view(second, collected.settings[second["run"]])
    comparison = Comparison(first["protocol"], first["eval_split"], first["dataset"], first["method"],
                            first["shots"], key, view_ref[key], view_other[key], first["variant"], second["variant"],
                            (first["sept"], second["sept"]))
    ref_seeds, other_seeds = {r["seed"] for r in ref_rows}, {r["seed"] for r in other_rows}
    unpaired = {"reference": sorted(ref_seeds - other_seeds), "other": sorted(other_seeds - ref_seeds)}
    comparison.unpaired = {k: v for k, v in unpaired.items() if v}
    common = {s: {r["fold"] for r in ref_rows if r["seed"] == s} & {r["fold"] for r in other_rows if r["seed"] == s}
              for s in ref_seeds & other_seeds}
    for metric in PROTOCOLS[first["protocol"]].headline:
        a = _per_seed(collected, ref_rows, metric, common)
        b = _per_seed(collected, other_rows, metric, common)
        seeds = sorted(s for s in a.keys() & b.keys() if set(a[s]) == set(b[s]) and a[s])
        if not seeds:
            continue
        diffs = [sum(b[s].values()) / len(b[s]) - sum(a[s].values()) / len(a[s]) for s in seeds]
        comparison.stats.append(stat(metric, seeds, diffs))
    return comparison


def _averages(comparisons: list[Comparison]) -> list[Comparison]:
    """Per setting over datasets: seed by seed, the mean of the per-dataset differences (seeds every dataset ran)."""
    by_setting: dict[tuple, list[Comparison]] = {}
    for c in comparisons:
        by_setting.setdefault((c.protocol, c.eval_split, c.method, c.shots, c.key, _value(c.reference),
                               _value(c.other), c.reference_variant, c.other_variant), []).append(c)
    out = []
    for members in by_setting.values():
        if len(members) < 2:
            continue
        head = members[0]
        avg = Comparison(head.protocol, head.eval_split, AVERAGE, head.method, head.shots, head.key, head.reference,
                         head.other, head.reference_variant, head.other_variant, head.sept,
                         n_datasets=len(members))
        for metric in PROTOCOLS[head.protocol].headline:
            per_dataset = [{s: d for s, d in zip(st.seeds, st.differences)}
                           for c in members for st in c.stats if st.metric == metric]
            if len(per_dataset) < len(members):
                continue
            seeds = sorted(set.intersection(*(set(p) for p in per_dataset)))
            if seeds:
                avg.stats.append(stat(metric, seeds, [sum(p[s] for p in per_dataset) / len(per_dataset)
                                                      for s in seeds]))
        if avg.stats:
            out.append(avg)
    return out


# ---- rendering -----------------------------------------------------------------------------------------

def _signed(v: float | None) -> str:
    return "–" if v is None else f"{v:+.2f}"


def rows(comparisons: list[Comparison]) -> list[dict]:
    """One flat row per comparison and metric (paired.csv, --json)."""
    out = []
    for c in comparisons:
        for st in c.stats:
            out.append({
                "protocol": c.protocol, "eval_split": c.eval_split, "dataset": c.dataset, "n_datasets": c.n_datasets,
                "method": c.method, "shots": c.shots, "key": c.key, "reference": _value(c.reference),
                "other": _value(c.other), "reference_variant": c.reference_variant, "other_variant": c.other_variant,
                "metric": st.metric, "n_seeds": st.n, "seeds": ",".join(map(str, st.seeds)),
                "differences": ";".join(f"{s}:{d:+.4f}" for s, d in zip(st.seeds, st.differences)),
                "mean": st.mean, "sd": st.sd, "t_quantile": st.t_quantile,
                "ci_low": st.ci[0] if st.ci else None, "ci_high": st.ci[1] if st.ci else None,
                "better": st.better, "worse": st.worse, "ties": st.ties,
                "unpaired_seeds": json.dumps(c.unpaired) if c.unpaired else "",
            })
    return out


NOTE = ("Δ = other − reference, seed by seed: each seed's figure is the mean over its folds (the folds both runs "
        "have), HM each run's own 2·B·N/(B+N). Mean and SD (sample, ddof = 1) over the paired seeds; 95% CI = mean "
        "± t(0.975, n − 1) · SD / √n, Student's t (it assumes roughly normal per-seed differences). Better = seeds "
        "with Δ > 0. Runs at one seed share the few-shot draw, the initialisation and the data order, so Δ at a "
        "seed is the effect of the key on that draw. Average rows: per seed, the mean of the per-dataset Δ over the "
        "datasets (seeds every dataset ran); their interval is over seeds.")


def markdown(comparisons: list[Comparison], key: str) -> str:
    from pipeline.report.render import markdown_table

    if not comparisons:
        return (f"No runs here differ only in {key} (same protocol, dataset, method, shots and every other "
                f"setting, at a common seed): nothing to pair.")
    table = []
    for c in comparisons:
        name = f"**{AVERAGE} ({c.n_datasets} datasets)**" if c.dataset == AVERAGE else c.dataset
        method = method_label(c.method, c.sept[0], c.reference_variant, c.eval_split)
        for st in c.stats:
            per_seed = ", ".join(f"{s}: {d:+.2f}" for s, d in zip(st.seeds, st.differences))
            ci = f"[{st.ci[0]:+.2f}, {st.ci[1]:+.2f}]" if st.ci else "–"
            table.append([name, method, c.label(), METRIC_NAMES.get(st.metric, st.metric), st.n, per_seed,
                          _signed(st.mean), "–" if st.sd is None else f"{st.sd:.2f}", ci, st.sign_count()])
    unpaired = [f"{c.dataset} {method_label(c.method, c.sept[0], c.reference_variant, c.eval_split)} "
                f"({c.label()}): seeds run by one side only, not paired: "
                + "; ".join(f"{side} {', '.join(map(str, seeds))}" for side, seeds in c.unpaired.items())
                for c in comparisons if c.unpaired]
    text = markdown_table(["Dataset", "Method (reference)", f"{key}", "Metric", "Seeds", "Per-seed Δ", "Mean Δ",
                           "SD", "95% CI (Student t)", "Sign"], table, right_from=4)
    return text + "\n\n" + NOTE + ("\n\n" + "\n".join(f"- {u}" for u in unpaired) if unpaired else "")
