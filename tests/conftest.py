"""Shared fixtures: the bundled samples, and one small plan made once per test process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK_PLAN = ROOT.parent / "shared" / "tools" / "check_plan.py"

os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
try:
    from hypothesis import HealthCheck, settings
    settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ["HYPOTHESIS_PROFILE"])
except ImportError:  # pragma: no cover
    pass


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def sample_small() -> dict:
    from geo.samples import sample_paths
    return sample_paths("sample_small")


@pytest.fixture(scope="session")
def sample_full() -> dict:
    from geo.samples import sample_paths
    return sample_paths("sample")


@pytest.fixture(scope="session")
def small_plan(sample_small):
    """The whole pipeline on the one-township sample (made once per test process)."""
    from optimize import plan
    return plan(sample_small["boundaries"], sample_small["households"], sample_small.get("facilities"),
                sample_small.get("roster"), time_limit_per_unit=3.0)


@pytest.fixture(scope="session")
def small_plan_dir(small_plan, tmp_path_factory) -> Path:
    return small_plan.to_dir(tmp_path_factory.mktemp("plan") / "out")


def run_check_plan(out_dir, boundaries, households, *extra) -> dict:
    """Run ../shared/tools/check_plan.py (the contract's independent checker); skip when it is absent."""
    import json
    if not CHECK_PLAN.exists():
        pytest.skip(f"{CHECK_PLAN} not found (it lives in ../shared beside the checkout)")
    r = subprocess.run([sys.executable, str(CHECK_PLAN), str(out_dir), "--boundaries", str(boundaries),
                        "--households", str(households), *map(str, extra)], capture_output=True, text=True)
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
    res = json.loads(last)
    res["returncode"] = r.returncode
    res["stderr"] = r.stderr[-2000:]
    return res
