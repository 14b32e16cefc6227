"""Evaluation protocols of stage two (base2new, cross, fewshot) and the runner of one `tune` run."""
from pipeline.protocols.plans import PROTOCOLS, EvalSet, Plan, make_plan
from pipeline.protocols.runner import TuneRequest, run_tune

__all__ = ["PROTOCOLS", "EvalSet", "Plan", "TuneRequest", "make_plan", "run_tune"]
