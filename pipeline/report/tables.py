"""The field's tables as polars frames: mean and standard deviation over seeds, then averages over datasets.

Conventions (stated again in every rendered report):
- folds (PALM's cross-validation): the runs of one seed on several folds are averaged first, so a seed's
  figure is the mean over its folds; every number then is a mean (and std) over seeds of those per-seed
  figures. Each row says how many folds its seeds average (folds_min..folds_max; folds_declared = the
  dataset's official folds).
- std is the sample standard deviation over seeds (ddof = 1); with one seed there is none.
- base-to-new, two HM conventions, both given:
  hm_mean: each run's HM is its own 2BN/(B+N); a seed's HM is the mean over its folds; a dataset's HM is
  the mean over seeds (with std); the average row's is the mean over datasets of the per-dataset HM.
  hm_of_means: the HM of the row's own base and new (CoOp's tables): 2*B*N/(B+N) of the seed-averaged
  base and new for a dataset, of the dataset-averaged base and new for the average row.
- cross-dataset: the average is over target datasets (the source is shown beside it, not averaged in;
  targets that share data with the source are shown apart too, and never averaged in).
- few-shot: the average is over datasets of the per-dataset mean accuracy.
"""
from __future__ import annotations

import polars as pl

from pipeline.protocols.table import BASE2NEW, CROSS, FEWSHOT
from pipeline.report.collect import Collected
from stages.tuning.methods import method_label as method_label_of, method_names

METHOD_ORDER = method_names()                       # the method table's order and labels
METHOD_NAMES = {m: method_label_of(m) for m in METHOD_ORDER}
SETTING = ["method", "sept", "shots", "variant", "eval_split"]  # what a row of results is, besides the dataset
STD_DDOF = 1
AVERAGE = "Average"

_RUN_SCHEMA = {
    "run": pl.String, "protocol": pl.String, "dataset": pl.String, "method": pl.String, "sept": pl.Boolean,
    "seed": pl.Int64, "shots": pl.Int64, "variant": pl.String, "eval_split": pl.String, "fold": pl.String,
    "folds_declared": pl.Int64,
    "base_acc": pl.Float64, "new_acc": pl.Float64, "hm": pl.Float64, "acc": pl.Float64, "macro_f1": pl.Float64,
}
_CROSS_SCHEMA = {"run": pl.String, "target": pl.String, "acc": pl.Float64, "overlap": pl.Boolean}
FOLD_COLUMNS = ["folds_min", "folds_max", "folds_declared"]


VALIDATION = "val"


def method_label(method: str, sept: bool, variant: str = "", eval_split: str = "test") -> str:
    """'CoOp', 'CoOp+SEPT', 'KgCoOp+SEPT [sept.lam=0.5]', 'CoOp (validation)'."""
    label = METHOD_NAMES.get(method, method) + ("+SEPT" if sept else "")
    label = f"{label} [{variant}]" if variant else label
    return f"{label} (validation)" if eval_split == VALIDATION else label


def runs_frame(collected: Collected) -> pl.DataFrame:
    return pl.DataFrame(collected.runs, schema=_RUN_SCHEMA)


def _order(df: pl.DataFrame, first: list[str]) -> pl.DataFrame:
    """Rows in the field's order: datasets by name, methods in the method table's order, SEPT after."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return (
        df.with_columns(pl.col("method").replace_strict(rank, default=len(rank), return_dtype=pl.Int64).alias("_rank"))
        .sort([*first, "eval_split", "_rank", "method", "variant", "shots", "sept"])
        .drop("_rank")
    )


def _mean_std(column: str, name: str | None = None) -> list[pl.Expr]:
    name = name or column
    return [pl.col(column).mean().alias(f"{name}_mean"), pl.col(column).std(ddof=STD_DDOF).alias(f"{name}_std")]


def _seed_list() -> list[pl.Expr]:
    return [pl.len().alias("n_seeds"), pl.col("seed").sort().cast(pl.String).str.join(",").alias("seeds")]


def per_seed(frame: pl.DataFrame, keys: list[str], values: list[str]) -> pl.DataFrame:
    """One row per seed of each group: `values` averaged over the seed's folds (PALM averages folds first),
    with n_folds (distinct folds averaged) and folds_declared (the dataset's official folds, when known).
    A fold run twice (reported by duplicate_seeds) counts once: its runs are averaged first."""
    per_fold = frame.group_by([*keys, "seed", "fold"]).agg(
        *[pl.col(v).mean() for v in values], pl.col("folds_declared").max())
    return per_fold.group_by([*keys, "seed"]).agg(
        *[pl.col(v).mean() for v in values],
        pl.len().alias("n_folds"), pl.col("folds_declared").max(),
    )


def _fold_counts() -> list[pl.Expr]:
    return [pl.col("n_folds").min().alias("folds_min"), pl.col("n_folds").max().alias("folds_max"),
            pl.col("folds_declared").max()]


def _harmonic(base: str, new: str) -> pl.Expr:
    b, n = pl.col(base), pl.col(new)
    return pl.when(b + n > 0).then(2 * b * n / (b + n)).otherwise(0.0)


def base2new_table(runs: pl.DataFrame) -> pl.DataFrame:
    """Per dataset and setting: base/new/HM mean and std over seeds (each seed averaged over its folds) and
    the HM of the means; then one average row per setting (see the module docstring for both HMs)."""
    b2n = runs.filter(pl.col("protocol") == BASE2NEW)
    seeds = per_seed(b2n, ["dataset", *SETTING], ["base_acc", "new_acc", "hm"])
    per_dataset = seeds.group_by(["dataset", *SETTING]).agg(
        *_seed_list(), *_fold_counts(),
        *_mean_std("base_acc", "base"), *_mean_std("new_acc", "new"), *_mean_std("hm"),
    )
    average = per_dataset.group_by(SETTING).agg(
        pl.lit(AVERAGE).alias("dataset"),
        pl.len().alias("n_datasets"),
        pl.col("base_mean").mean(), pl.col("new_mean").mean(), pl.col("hm_mean").mean(),
        pl.col("folds_min").min(), pl.col("folds_max").max(),
    )
    per_dataset = per_dataset.with_columns(pl.lit(1, dtype=pl.UInt32).alias("n_datasets"))
    table = pl.concat([_order(per_dataset, ["dataset"]), _order(average, [])], how="diagonal_relaxed")
    return table.with_columns(_harmonic("base_mean", "new_mean").alias("hm_of_means")).select(
        "dataset", *SETTING, "n_datasets", "n_seeds", "seeds", *FOLD_COLUMNS,
        "base_mean", "base_std", "new_mean", "new_std", "hm_mean", "hm_std", "hm_of_means",
    )


def cross_table(collected: Collected, eval_split: str | None = None) -> pl.DataFrame:
    """Per source dataset and setting: source accuracy and each target's accuracy (mean, std over seeds of
    the per-seed means over folds), and the average over the targets that do not overlap the source.
    Long format: one row per (source, setting, column); `overlap` marks targets sharing clips with the source.
    `eval_split`: only the runs of that split (default: all)."""
    columns = ["source", *SETTING, "column", "overlap", "n_seeds", "seeds", *FOLD_COLUMNS, "acc_mean", "acc_std"]
    runs = runs_frame(collected).filter(pl.col("protocol") == CROSS)
    if eval_split is not None:
        runs = runs.filter(pl.col("eval_split") == eval_split)
    if runs.is_empty():
        return pl.DataFrame(schema={"source": pl.String, **{k: _RUN_SCHEMA[k] for k in SETTING},
                                    "column": pl.String, "overlap": pl.Boolean, "n_seeds": pl.UInt32,
                                    "seeds": pl.String, "folds_min": pl.UInt32, "folds_max": pl.UInt32,
                                    "folds_declared": pl.Int64, "acc_mean": pl.Float64, "acc_std": pl.Float64})
    targets = pl.DataFrame(collected.cross, schema=_CROSS_SCHEMA)
    keyed = runs.select("run", pl.col("dataset").alias("source"), *SETTING, "seed", "fold", "folds_declared")
    target_seeds = per_seed(keyed.join(targets, on="run").rename({"target": "column"}),
                            ["source", *SETTING, "column", "overlap"], ["acc"])
    per_target = target_seeds.group_by(["source", *SETTING, "column", "overlap"]).agg(
        *_seed_list(), *_fold_counts(), *_mean_std("acc"))
    source_seeds = per_seed(keyed.join(runs.select("run", "acc"), on="run").drop_nulls("acc"),
                            ["source", *SETTING], ["acc"])
    source = (
        source_seeds.group_by(["source", *SETTING]).agg(*_seed_list(), *_fold_counts(), *_mean_std("acc"))
        .with_columns(pl.lit("source").alias("column"), pl.lit(False).alias("overlap"))
    )
    average = (
        per_target.filter(~pl.col("overlap")).group_by(["source", *SETTING])
        .agg(pl.col("acc_mean").mean(), pl.col("n_seeds").min(), pl.col("folds_min").min(),
             pl.col("folds_max").max(), pl.col("folds_declared").max())
        .with_columns(pl.lit(AVERAGE).alias("column"), pl.lit(False).alias("overlap"))
    )
    table = pl.concat([source, per_target, average], how="diagonal_relaxed")
    return _order(table, ["source"]).select(columns)


def fewshot_table(runs: pl.DataFrame) -> pl.DataFrame:
    """Per dataset and setting (shots included): accuracy and macro-F1 mean/std over seeds; then averages."""
    fs = runs.filter(pl.col("protocol") == FEWSHOT)
    seeds = per_seed(fs, ["dataset", *SETTING], ["acc", "macro_f1"])
    per_dataset = seeds.group_by(["dataset", *SETTING]).agg(
        *_seed_list(), *_fold_counts(), *_mean_std("acc"), *_mean_std("macro_f1"))
    average = per_dataset.group_by(SETTING).agg(
        pl.lit(AVERAGE).alias("dataset"), pl.len().alias("n_datasets"),
        pl.col("acc_mean").mean(), pl.col("macro_f1_mean").mean(),
    )
    per_dataset = per_dataset.with_columns(pl.lit(1, dtype=pl.UInt32).alias("n_datasets"))
    table = pl.concat([_order(per_dataset, ["dataset"]), _order(average, [])], how="diagonal_relaxed")
    return table.select("dataset", *SETTING, "n_datasets", "n_seeds", "seeds", *FOLD_COLUMNS,
                        "acc_mean", "acc_std", "macro_f1_mean", "macro_f1_std")


def duplicate_seeds(runs: pl.DataFrame) -> list[str]:
    """Cells where one seed (and fold) was run more than once (both are averaged in; say so rather than hide it)."""
    dup = (
        runs.group_by(["protocol", "dataset", *SETTING, "seed", "fold"])
        .agg(pl.col("run").sort())
        .filter(pl.col("run").list.len() > 1)
        .sort(["protocol", "dataset", "method", "seed", "fold"])
    )
    return [
        f"{r['protocol']} {r['dataset']} {method_label(r['method'], r['sept'], r['variant'], r['eval_split'])} "
        f"seed {r['seed']}"
        f"{' ' + r['fold'] if r['fold'] else ''}: {len(r['run'])} runs ({', '.join(r['run'])}), all averaged in"
        for r in dup.iter_rows(named=True)
    ]


def uneven_folds(runs: pl.DataFrame) -> list[str]:
    """Cells whose seeds average different folds: their mean over seeds mixes unlike figures; say so."""
    seeds = runs.group_by(["protocol", "dataset", *SETTING, "seed"]).agg(pl.col("fold").unique().sort())
    lines = []
    for key, group in seeds.group_by(["protocol", "dataset", *SETTING], maintain_order=True):
        fold_sets = {tuple(f) for f in group["fold"].to_list()}
        if len(fold_sets) > 1:
            protocol, dataset, method, sept, _shots, variant, eval_split = key
            per_seed_folds = "; ".join(f"seed {r['seed']}: {', '.join(f or 'default split' for f in r['fold'])}"
                                       for r in group.sort("seed").iter_rows(named=True))
            lines.append(f"{protocol} {dataset} {method_label(method, sept, variant, eval_split)}: seeds average "
                         f"different folds ({per_seed_folds})")
    return sorted(lines)
