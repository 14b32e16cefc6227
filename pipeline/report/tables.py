"""The field's tables as polars frames: mean and standard deviation over seeds, then averages over datasets.

Conventions (stated again in every rendered report):
- std is the sample standard deviation over seeds (ddof = 1); with one seed there is none.
- base-to-new: each run's HM is its own 2BN/(B+N); a dataset's HM is the mean of its runs' HM. The average
  row's base and new are means over datasets of the per-dataset means, and its HM is the mean over datasets
  of the per-dataset HM (not the HM of the averaged base and new).
- cross-dataset: the average is over target datasets (the source is shown beside it, not averaged in).
- few-shot: the average is over datasets of the per-dataset mean accuracy.
"""
from __future__ import annotations

import polars as pl

from pipeline.report.collect import Collected
from stages.tuning.methods import method_label as method_label_of, method_names

METHOD_ORDER = method_names()                       # the method table's order and labels
METHOD_NAMES = {m: method_label_of(m) for m in METHOD_ORDER}
SETTING = ["method", "sept", "shots", "variant"]  # what a row of results is, besides the dataset
STD_DDOF = 1
AVERAGE = "Average"

_RUN_SCHEMA = {
    "run": pl.String, "protocol": pl.String, "dataset": pl.String, "method": pl.String, "sept": pl.Boolean,
    "seed": pl.Int64, "shots": pl.Int64, "variant": pl.String, "base_acc": pl.Float64, "new_acc": pl.Float64,
    "hm": pl.Float64, "acc": pl.Float64, "macro_f1": pl.Float64,
}


def method_label(method: str, sept: bool, variant: str = "") -> str:
    """'CoOp', 'CoOp+SEPT', 'KgCoOp+SEPT [sept.lam=0.5]'."""
    label = METHOD_NAMES.get(method, method) + ("+SEPT" if sept else "")
    return f"{label} [{variant}]" if variant else label


def runs_frame(collected: Collected) -> pl.DataFrame:
    return pl.DataFrame(collected.runs, schema=_RUN_SCHEMA)


def _order(df: pl.DataFrame, first: list[str]) -> pl.DataFrame:
    """Rows in the field's order: datasets by name, methods in the method table's order, SEPT after."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return (
        df.with_columns(pl.col("method").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_rank"))
        .sort([*first, "_rank", "method", "variant", "shots", "sept"])
        .drop("_rank")
    )


def _mean_std(column: str, name: str | None = None) -> list[pl.Expr]:
    name = name or column
    return [pl.col(column).mean().alias(f"{name}_mean"), pl.col(column).std(ddof=STD_DDOF).alias(f"{name}_std")]


def _seed_list() -> list[pl.Expr]:
    return [pl.len().alias("n_seeds"), pl.col("seed").sort().cast(pl.String).str.join(",").alias("seeds")]


def base2new_table(runs: pl.DataFrame) -> pl.DataFrame:
    """Per dataset and setting: base/new/HM mean and std over seeds; then one average row per setting."""
    b2n = runs.filter(pl.col("protocol") == "base2new")
    per_dataset = b2n.group_by(["dataset", *SETTING]).agg(
        *_seed_list(), *_mean_std("base_acc", "base"), *_mean_std("new_acc", "new"), *_mean_std("hm"),
    )
    average = per_dataset.group_by(SETTING).agg(
        pl.lit(AVERAGE).alias("dataset"),
        pl.len().alias("n_datasets"),
        pl.col("base_mean").mean(), pl.col("new_mean").mean(), pl.col("hm_mean").mean(),
    )
    per_dataset = per_dataset.with_columns(pl.lit(1, dtype=pl.UInt32).alias("n_datasets"))
    table = pl.concat([_order(per_dataset, ["dataset"]), _order(average, [])], how="diagonal_relaxed")
    return table.select(
        "dataset", *SETTING, "n_datasets", "n_seeds", "seeds",
        "base_mean", "base_std", "new_mean", "new_std", "hm_mean", "hm_std",
    )


def cross_table(collected: Collected) -> pl.DataFrame:
    """Per source dataset and setting: source accuracy and each target's accuracy (mean, std over seeds),
    and the average over targets. Long format: one row per (source, setting, column)."""
    runs = runs_frame(collected).filter(pl.col("protocol") == "cross")
    if runs.is_empty():
        return pl.DataFrame(schema={"source": pl.String, **{k: _RUN_SCHEMA[k] for k in SETTING},
                                    "column": pl.String, "n_seeds": pl.UInt32, "seeds": pl.String,
                                    "acc_mean": pl.Float64, "acc_std": pl.Float64})
    targets = pl.DataFrame(collected.cross, schema={"run": pl.String, "target": pl.String, "acc": pl.Float64})
    keyed = runs.select("run", pl.col("dataset").alias("source"), *SETTING, "seed")
    per_target = (
        keyed.join(targets, on="run")
        .group_by(["source", *SETTING, pl.col("target").alias("column")])
        .agg(*_seed_list(), *_mean_std("acc"))
    )
    source = (
        keyed.join(runs.select("run", "acc"), on="run").drop_nulls("acc")
        .group_by(["source", *SETTING]).agg(*_seed_list(), *_mean_std("acc"))
        .with_columns(pl.lit("source").alias("column"))
    )
    average = (
        per_target.group_by(["source", *SETTING])
        .agg(pl.col("acc_mean").mean(), pl.col("n_seeds").min())
        .with_columns(pl.lit(AVERAGE).alias("column"))
    )
    table = pl.concat([source, per_target, average], how="diagonal_relaxed")
    return _order(table, ["source"]).select("source", *SETTING, "column", "n_seeds", "seeds", "acc_mean", "acc_std")


def fewshot_table(runs: pl.DataFrame) -> pl.DataFrame:
    """Per dataset and setting (shots included): accuracy and macro-F1 mean/std over seeds; then averages."""
    fs = runs.filter(pl.col("protocol") == "fewshot")
    per_dataset = fs.group_by(["dataset", *SETTING]).agg(*_seed_list(), *_mean_std("acc"), *_mean_std("macro_f1"))
    average = per_dataset.group_by(SETTING).agg(
        pl.lit(AVERAGE).alias("dataset"), pl.len().alias("n_datasets"),
        pl.col("acc_mean").mean(), pl.col("macro_f1_mean").mean(),
    )
    per_dataset = per_dataset.with_columns(pl.lit(1, dtype=pl.UInt32).alias("n_datasets"))
    table = pl.concat([_order(per_dataset, ["dataset"]), _order(average, [])], how="diagonal_relaxed")
    return table.select("dataset", *SETTING, "n_datasets", "n_seeds", "seeds",
                        "acc_mean", "acc_std", "macro_f1_mean", "macro_f1_std")


def duplicate_seeds(runs: pl.DataFrame) -> list[str]:
    """Cells where one seed was run more than once (both are averaged in; say so rather than hide it)."""
    dup = (
        runs.group_by(["protocol", "dataset", *SETTING, "seed"])
        .agg(pl.col("run").sort())
        .filter(pl.col("run").list.len() > 1)
        .sort(["protocol", "dataset", "method", "seed"])
    )
    return [
        f"{r['protocol']} {r['dataset']} {method_label(r['method'], r['sept'], r['variant'])} seed {r['seed']}: "
        f"{len(r['run'])} runs ({', '.join(r['run'])}), all averaged in"
        for r in dup.iter_rows(named=True)
    ]
