"""Deprecated: ``from optimize import plan`` — use ``import gridplan; gridplan.plan(...)``.

Kept for one release as a re-export of ``gridplan.optimize``; it will be removed in the next one.
"""
import warnings

from gridplan.optimize import Plan, PlanOptions  # noqa: F401 - re-exported

warnings.warn("the top-level 'optimize' package is deprecated; use 'import gridplan' "
              "(gridplan.plan, gridplan.read_plan) instead", DeprecationWarning, stacklevel=2)

__all__ = ["plan", "plan_dataset", "Plan", "PlanOptions"]


def __getattr__(name):
    if name in ("plan", "plan_dataset"):
        from gridplan.optimize import pipeline
        return getattr(pipeline, name)
    raise AttributeError(f"module 'optimize' has no attribute {name!r}")
