"""PALM's cross-validation: which folds a `tune --fold` request runs, and where each fold's run goes.

A dataset with official folds (its config's `folds`) is evaluated fold by fold: fold k is the test split,
the other folds the train split. `--fold all` runs every fold, each in its own run folder OUT/<fold>/ (a
complete run: config.toml and metrics.json name the fold), so an interrupted fold resumes on its own and
`report` finds every fold. A seed's figure is the mean over its folds, then mean +/- std over seeds
(pipeline/report); this module only plans the runs.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pipeline.config_loader import Config
from pipeline.protocols.runner import TuneOutcome, TuneRequest, run_tune
from stages.data.config import ALL_FOLDS


def folds_to_run(dataset: str, fold: str) -> list[str]:
    """The folds one request covers: 'all' = every official fold of the dataset (a dataset without folds
    has one split: ['']); a fold name or '' = itself (checked against the dataset when it loads)."""
    from stages.data.specs import dataset_spec

    if fold != ALL_FOLDS:
        return [fold]
    return list(dataset_spec(dataset).folds) or [""]


def fold_out(out: Path, fold: str, every_fold: bool) -> Path:
    """Run folder of one fold: OUT/<fold>/ when a request covers several folds, else OUT itself."""
    return Path(out) / fold if every_fold and fold else Path(out)


def run_folds(cfg: Config, req: TuneRequest) -> list[TuneOutcome]:
    """One `run_tune` per fold of the request, in fold order; the outcome (run record) of each."""
    every_fold = cfg.data.fold == ALL_FOLDS
    results = []
    for fold in folds_to_run(req.dataset, cfg.data.fold):
        results.append(run_tune(cfg.replace("data", fold=fold), replace(req, out=fold_out(req.out, fold, every_fold))))
    return results
