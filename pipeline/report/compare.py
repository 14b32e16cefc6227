"""`report --compare`: published numbers (published.py) beside our Average rows made under their conditions.

A published row sits beside one of our settings (an Average row of a table: method, SEPT, shots, variant, test
runs) only when every run of that setting has a manifest meeting all of the row's conditions. Otherwise the
report lists the published row with what our runs differ in, and the recipe that would run under its
conditions. Validation runs are never compared.
"""
from __future__ import annotations

from typing import Any

import polars as pl

from pipeline.report.collect import Collected
from pipeline.report.published import NUM_DATASETS, Published, published_for
from pipeline.report.render import fmt, fmt_delta, markdown_table
from pipeline.report.tables import AVERAGE, METHOD_NAMES, SETTING, method_label

_SHORT = {"base_acc": "base", "new_acc": "new", "hm": "hm", "acc": "acc"}
_HEADS = {"base_acc": "Base", "new_acc": "New", "hm": "HM", "acc": "Acc"}


def _group_manifests(collected: Collected, protocol: str, row: dict) -> list[dict[str, Any]]:
    """The manifests of the runs behind one Average row (its setting, every dataset)."""
    return [collected.records[r["run"]].manifest for r in collected.runs
            if r["protocol"] == protocol and all(r[k] == row[k] for k in SETTING)]


def _unmet(pub: Published, manifests: list[dict[str, Any]]) -> dict[str, tuple[Any, list]]:
    """Condition -> (required, the distinct values our runs have) for conditions some run misses."""
    out: dict[str, tuple[Any, list]] = {}
    for m in manifests:
        for key, (need, have) in pub.unmet(m).items():
            seen = out.setdefault(key, (need, []))[1]
            if have not in seen:
                seen.append(have)
    return out


def compare(table: pl.DataFrame, collected: Collected, protocol: str) -> tuple[pl.DataFrame, list[str]]:
    """(our Average rows beside the published rows whose conditions they meet, with deltas; for the published
    rows that no setting here meets, one line per set of conditions: what our runs differ in, which recipe
    would run under them)."""
    rows = []
    unmatched: dict[tuple, dict] = {}    # (recipe, conditions) -> {"labels": [...], "differ": [...]}
    averages = [r for r in table.filter((pl.col("dataset") == AVERAGE) & (pl.col("eval_split") == "test"))
                .iter_rows(named=True)]
    for pub in published_for(protocol):
        candidates = [r for r in averages if r["method"] == pub.method and r["sept"] == pub.sept]
        differences = []
        matched = False
        for r in candidates:
            unmet = _unmet(pub, _group_manifests(collected, protocol, r))
            if unmet:
                differences.append(f"{method_label(r['method'], r['sept'], r['variant'])} ({r['shots']} shots): "
                                   + ", ".join(f"{k} = {' / '.join(_text(v) for v in have)}"
                                               for k, (_need, have) in unmet.items()))
                continue
            matched = True
            ours = {k: r[f"{_SHORT[k]}_mean"] for k in pub.numbers}
            rows.append({**{k: r[k] for k in SETTING}, "n_datasets": r["n_datasets"], "recipe": pub.recipe,
                         **{f"ours_{_SHORT[k]}": v for k, v in ours.items()},
                         **{f"published_{_SHORT[k]}": v for k, v in pub.numbers.items()},
                         **{f"delta_{_SHORT[k]}": ours[k] - v for k, v in pub.numbers.items()}})
        if not matched:
            entry = unmatched.setdefault((pub.recipe, pub.command(), tuple(pub.conditions.items())),
                                         {"labels": [], "differ": []})
            label = METHOD_NAMES.get(pub.method, pub.method) + ("+SEPT" if pub.sept else "")
            entry["labels"].append(f"{label} " + "/".join(f"{v:.2f}" for v in pub.numbers.values()))
            entry["differ"] += differences
    lines = []
    for (recipe, command, conditions), entry in unmatched.items():
        line = (f"Not shown, no run here was made under their conditions ("
                + ", ".join(f"{k} = {_text(v)}" for k, v in conditions) + f"): {'; '.join(entry['labels'])}. "
                f"The recipe `{recipe}` runs under them (`{command}`).")
        if entry["differ"]:
            line += " Ours instead: " + "; ".join(entry["differ"]) + "."
        lines.append(line)
    return pl.DataFrame(rows), lines


def _text(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def markdown(frame: pl.DataFrame, lines: list[str], protocol: str) -> str:
    pubs = published_for(protocol)
    parts = []
    if not frame.is_empty():
        keys = list(pubs[0].numbers)
        header = ["Method", "Shots", "Our datasets"]
        for k in keys:
            header += [f"{_HEADS[k]} (ours)", f"{_HEADS[k]} (published)", f"Δ {_HEADS[k].lower()}"]
        table = []
        for r in frame.iter_rows(named=True):
            cells = [method_label(r["method"], r["sept"], r["variant"]), r["shots"], r["n_datasets"]]
            for k in keys:
                s = _SHORT[k]
                cells += [fmt(r[f"ours_{s}"]), fmt(r[f"published_{s}"]), fmt_delta(r[f"delta_{s}"])]
            table.append(cells)
        parts.append(markdown_table(header, table))
    else:
        parts.append("No setting here was run under the conditions of a published number: none is shown.")
    sources = sorted({p.source for p in pubs})
    parts.append(f"Published = {'; '.join(sources)}. Δ = ours − published. A published number is shown only "
                 f"beside runs whose manifests meet every condition recorded for it (docs/method.md, \"Published "
                 f"numbers and their conditions\"). Ours averages the datasets found here; the published figures "
                 f"average {NUM_DATASETS}, so the two agree in kind only when ours covers the same "
                 f"{NUM_DATASETS} datasets.")
    if lines:
        parts.append("\n".join(f"- {line}" for line in lines))
    return "\n\n".join(parts)
