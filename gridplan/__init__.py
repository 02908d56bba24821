"""gridplan: grid-governance plans — balanced grids, grid workers, service stations, point→grid lookup.

The front door for notebooks and scripts::

    import gridplan
    p = gridplan.plan("villages.gpkg", "homes.csv", target_households=300, coords="gcj02")
    p.to_dir("plan-2026/")
    q = gridplan.read_plan("plan-2026/")

The repository keeps its fixed layout (``geo/``, ``optimize/``, ``api/``, ``data/`` at the top); the
installed distribution maps them to ``gridplan.geo``, ``gridplan.optimize``, ``gridplan.api`` and
``gridplan.data`` (see ``[tool.setuptools.package-dir]`` in pyproject.toml). This folder holds only this
front door and the deprecated ``optimize`` shim.
"""
from __future__ import annotations

from pathlib import Path as _Path

# In a checkout (editable install, or PYTHONPATH pointing at it) the subpackages are the repository's
# top-level folders: let ``gridplan.geo`` etc. resolve to them even without the installer's path hook.
_ROOT = _Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and all((_ROOT / d / "__init__.py").is_file()
                                               for d in ("geo", "optimize", "api", "data")):
    __path__.append(str(_ROOT))  # noqa: F821 - the package's own __path__

__all__ = ["plan", "plan_dataset", "read_plan", "Plan", "PlanOptions", "__version__"]

try:
    from importlib.metadata import version as _version

    __version__ = _version("gridplan")
except Exception:  # pragma: no cover - running from a tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name):
    # lazy, like gridplan.optimize: importing gridplan must not pull in OR-Tools or GDAL
    if name in ("plan", "plan_dataset", "Plan", "PlanOptions"):
        from gridplan import optimize
        return getattr(optimize, name)
    if name == "read_plan":
        from gridplan.optimize.result import read_plan
        return read_plan
    raise AttributeError(f"module 'gridplan' has no attribute {name!r}")
