"""One top-level package: the wheel holds ``gridplan`` (and, for one release, the ``optimize`` shim),
``import gridplan`` is the front door, and the old ``from optimize import plan`` still works, warning."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_one_top_level_package_and_the_deprecated_shim(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("gridplan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith((".dist-info", ".data"))}
    assert top == {"gridplan", "optimize"}
    # the repository's folders install under gridplan, with their data files
    for path in ("gridplan/geo/io.py", "gridplan/optimize/pipeline.py", "gridplan/api/cli.py",
                 "gridplan/api/routes/lookup.py", "gridplan/data/sample/boundaries.geojson",
                 "gridplan/geo/templates/report.html.j2", "gridplan/geo/static/gridmap.js",
                 "gridplan/api/templates/map.html.j2", "optimize/__init__.py"):
        assert path in names, path
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "gridplan = gridplan.api.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # outside the checkout, so that only the installed packages can be imported
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300)


def test_the_front_door_and_the_deprecated_shim(tmp_path):
    r = _python("import gridplan, gridplan.optimize as o; "
                "assert gridplan.plan is o.plan and gridplan.PlanOptions is o.PlanOptions; "
                "from gridplan.optimize.result import read_plan; assert gridplan.read_plan is read_plan; "
                "import importlib.util as u; assert u.find_spec('geo') is None and u.find_spec('api') is None", tmp_path)
    assert r.returncode == 0, r.stderr
    r = _python("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
                "try:\n    import optimize\nexcept DeprecationWarning as e:\n    print('warned:', e)", tmp_path)
    assert r.returncode == 0 and "warned:" in r.stdout and "import gridplan" in r.stdout, r.stderr
    r = _python("import warnings; warnings.simplefilter('ignore')\n"
                "import gridplan; from optimize import plan, Plan; assert plan is gridplan.plan and Plan is gridplan.Plan",
                tmp_path)
    assert r.returncode == 0, r.stderr


def test_read_plan_gives_back_what_to_dir_wrote(small_plan, small_plan_dir):
    import gridplan

    back = gridplan.read_plan(small_plan_dir)
    assert back.summary == small_plan.summary or back.summary["grids"] == small_plan.summary["grids"]
    for name in ("grids", "stations", "households", "units"):
        a, b = getattr(small_plan, name), getattr(back, name)
        assert len(a) == len(b), name
    assert sorted(back.grids["grid_code"]) == sorted(small_plan.grids["grid_code"])
    assert back.grids["households"].sum() == small_plan.grids["households"].sum()
