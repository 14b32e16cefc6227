"""Evaluation protocols of stage two (base2new, cross, fewshot), the runner of one `tune` run, and the
fold loop over PALM's cross-validation folds."""
from pipeline.protocols.folds import folds_to_run, run_folds
from pipeline.protocols.plans import PROTOCOLS, EvalSet, Plan, make_plan
from pipeline.protocols.runner import TuneRequest, run_tune

__all__ = ["PROTOCOLS", "EvalSet", "Plan", "TuneRequest", "folds_to_run", "make_plan", "run_folds", "run_tune"]
