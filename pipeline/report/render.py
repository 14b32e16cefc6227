"""Markdown and CSV renderings of the tables in tables.py (numbers formatted only here)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import polars as pl

from cache.atomic import atomic_write_text
from pipeline.report.tables import AVERAGE, SETTING, STD_DDOF, method_label

CONVENTIONS = (
    f"Accuracies in %, mean ± std over seeds (sample std, ddof = {STD_DDOF}; a single seed shows no ±). "
    "Folded datasets (PALM's cross-validation): a seed's figure is the mean over its folds, taken before the "
    "mean over seeds; the Folds column says how many folds each seed averages (\"1 of 5\": one of the "
    "dataset's 5 official folds; – : a dataset without folds)."
)
BASE2NEW_NOTE = (
    "Two HM conventions. **HM (mean of per-seed HM)**: each run's HM is its own 2·B·N/(B+N), a seed's HM the "
    "mean over its folds, a dataset's the mean ± std over seeds; in Average rows, the mean over datasets of the "
    "per-dataset HM. **HM of means** (CoOp's tables): 2·B·N/(B+N) of the Base and New shown in the same row "
    "(seed-averaged for a dataset; dataset-averaged in Average rows). Average rows: base and new are the means "
    "over datasets of the per-dataset means."
)


def fmt(mean: float | None, std: float | None = None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fmt_delta(value: float) -> str:
    return f"{value:+.2f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], right_from: int = 1) -> str:
    """A GitHub Markdown table; columns from `right_from` on are right-aligned (numbers)."""
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _label(row: dict) -> str:
    return method_label(row["method"], row["sept"], row["variant"], row.get("eval_split", "test"))


def fmt_folds(row: dict) -> str:
    """How many folds each seed's figure averages: '5', '1 of 5', '3–5' (seeds differ), '–' (no folds)."""
    lo, hi, declared = row.get("folds_min"), row.get("folds_max"), row.get("folds_declared")
    if lo is None:
        return ""
    if declared == 0 and hi == 1:
        return "–"
    if lo != hi:
        return f"{lo}–{hi}" + (f" of {declared}" if declared else "")
    return f"{lo} of {declared}" if declared and declared != lo else str(lo)


def base2new_markdown(table: pl.DataFrame) -> str:
    rows = []
    for r in table.iter_rows(named=True):
        is_avg = r["dataset"] == AVERAGE
        name = f"**{AVERAGE} ({plural(r['n_datasets'], 'dataset')})**" if is_avg else r["dataset"]
        rows.append([
            name, _label(r), r["shots"], "" if is_avg else r["seeds"], "" if is_avg else fmt_folds(r),
            fmt(r["base_mean"], r["base_std"]), fmt(r["new_mean"], r["new_std"]), fmt(r["hm_mean"], r["hm_std"]),
            fmt(r["hm_of_means"]),
        ])
    return markdown_table(["Dataset", "Method", "Shots", "Seeds", "Folds", "Base", "New",
                           "HM (mean of per-seed HM)", "HM of means"], rows, right_from=2)


def cross_markdown(table: pl.DataFrame, excluded: dict[str, dict[str, str]] | None = None,
                   class_overlaps: dict[str, dict[str, list[list[str]]]] | None = None) -> str:
    parts = []
    for source in table["source"].unique(maintain_order=True).to_list():
        sub = table.filter(pl.col("source") == source)
        overlapping = sorted(set(sub.filter(pl.col("overlap"))["column"].to_list()))
        targets = sorted(c for c in sub["column"].unique().to_list()
                         if c not in ("source", AVERAGE) and c not in overlapping)
        present = set(sub["column"].to_list())
        columns = [c for c in ("source", *targets, AVERAGE, *overlapping) if c in present]
        groups: dict[tuple, dict[str, str]] = {}
        for r in sub.iter_rows(named=True):
            key = (r["method"], _label(r), r["shots"], r["variant"], r["sept"], r["eval_split"])
            cells = groups.setdefault(key, {})
            cells[r["column"]] = fmt(r["acc_mean"], r["acc_std"])
            if r["seeds"]:
                cells["_seeds"], cells["_folds"] = r["seeds"], fmt_folds(r)
        header_cols = [f"{source} (source)" if c == "source" else f"{c} (overlaps source)" if c in overlapping
                       else c for c in columns]
        rows = [[key[1], key[2], cells.get("_seeds", ""), cells.get("_folds", ""),
                 *(cells.get(c, "–") for c in columns)] for key, cells in groups.items()]
        part = f"Source: **{source}**\n\n" + markdown_table(["Method", "Shots", "Seeds", "Folds", *header_cols], rows,
                                                              right_from=1)
        left_out = (excluded or {}).get(source, {})
        if left_out:
            part += "\n\nLeft out as sharing clips with the source (name one in `--targets` to evaluate it apart): " \
                    + "; ".join(f"{name} ({why})" for name, why in sorted(left_out.items())) + "."
        shared = {t: pairs for t, pairs in sorted((class_overlaps or {}).get(source, {}).items()) if pairs}
        if shared:
            part += ("\n\nClass names a target shares with the source (a common word; such classes stay in the "
                     "target, as CoCoOp's protocol keeps them): "
                     + "; ".join(f"{t}: " + ", ".join(f"{a} ~ {b}" for a, b in pairs) for t, pairs in shared.items())
                     + ".")
        parts.append(part)
    return "\n\n".join(parts) + ("\n\nAverage = mean over target datasets of the per-target mean accuracy "
                                 "(neither the source nor a target that overlaps it is averaged in).")


def fewshot_markdown(table: pl.DataFrame) -> str:
    datasets = sorted(d for d in table["dataset"].unique().to_list() if d != AVERAGE)
    groups: dict[tuple, dict[str, str]] = {}
    for r in table.iter_rows(named=True):
        key = (r["method"], _label(r), r["shots"], r["variant"], r["sept"], r["eval_split"])
        groups.setdefault(key, {})[r["dataset"]] = fmt(r["acc_mean"], r["acc_std"])
    folds: dict[str, set[str]] = {}
    for r in table.iter_rows(named=True):
        if r["dataset"] != AVERAGE and fmt_folds(r) not in ("", "–"):
            folds.setdefault(r["dataset"], set()).add(fmt_folds(r))
    rows = [[key[1], key[2], *(cells.get(c, "–") for c in (*datasets, AVERAGE))] for key, cells in groups.items()]
    folded = [f"{d}: {' / '.join(sorted(f))}" for d, f in sorted(folds.items())]
    return (markdown_table(["Method", "Shots", *datasets, AVERAGE], rows, right_from=1)
            + "\n\nAll classes, accuracy. Average = mean over datasets of the per-dataset mean accuracy "
              "(macro-F1 in fewshot.csv)."
            + (f" Folds averaged per seed: {', '.join(folded)}." if folded else ""))


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    atomic_write_text(path, frame.write_csv(float_precision=4))
    return path


def tensorboard_markdown(runs_dir: Path, runs: Sequence[str], out_dir: Path) -> str:
    """The command that opens every run's training curves, then each run's events files (`tune` writes them
    under <run>/tensorboard when train.log_to includes tensorboard), linked relative to the report in
    `out_dir`; '' when no run has any."""
    lines = []
    for run in sorted(runs):
        folder = runs_dir / run / "tensorboard"
        files = sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
        lines += [f"- [`{f.relative_to(runs_dir)}`]({Path(os.path.relpath(f, out_dir)).as_posix()})" for f in files]
    if not lines:
        return ""
    return (f"Training curves (losses, lr, accuracies): `tensorboard --logdir {runs_dir}` shows every run below.\n\n"
            + "\n".join(lines))

