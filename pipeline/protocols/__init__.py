"""Evaluation protocols of stage two (base2new, cross, fewshot), the runner of one `tune` run, what it is given
(config and request, from `tune`'s flags), and the fold loop over PALM's cross-validation folds."""
from pipeline.protocols.folds import folds_to_run, run_folds
from pipeline.protocols.plans import PROTOCOLS, EvalSet, Plan, make_plan
from pipeline.protocols.runner import TuneRequest, run_tune
from pipeline.protocols.tune_inputs import TuneFlags, tune_inputs

__all__ = ["PROTOCOLS", "EvalSet", "Plan", "TuneFlags", "TuneRequest", "folds_to_run", "make_plan", "run_folds",
           "run_tune", "tune_inputs"]
