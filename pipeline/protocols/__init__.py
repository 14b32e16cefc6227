"""Evaluation protocols of stage two (the protocol table: base2new, cross, fewshot), the run record, the run
object of one `tune` run, what it is given (config and request, from `tune`'s flags), and the fold loop over
PALM's cross-validation folds."""
from pipeline.protocols.folds import folds_to_run, run_folds
from pipeline.protocols.plans import EvalSet, Plan, make_plan
from pipeline.protocols.record import RunRecord
from pipeline.protocols.runner import TuneOutcome, TuneRequest, run_tune
from pipeline.protocols.table import PROTOCOLS
from pipeline.protocols.tune_inputs import TuneFlags, tune_inputs

__all__ = ["PROTOCOLS", "EvalSet", "Plan", "RunRecord", "TuneFlags", "TuneOutcome", "TuneRequest", "folds_to_run",
           "make_plan", "run_folds", "run_tune", "tune_inputs"]
