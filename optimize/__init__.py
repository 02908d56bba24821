"""gridplan's optimization layer: partition, staffing, siting and the pipeline that runs them.

``from optimize import plan`` is the notebook entry point (see optimize.pipeline.plan).
"""
from gridplan.optimize.options import PlanOptions
from gridplan.optimize.result import Plan

__all__ = ["plan", "plan_dataset", "Plan", "PlanOptions"]


def __getattr__(name):  # lazy: importing the options or Plan class must not pull in OR-Tools
    if name in ("plan", "plan_dataset"):
        from gridplan.optimize import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module 'optimize' has no attribute {name!r}")
