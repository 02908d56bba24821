"""Shared fixtures: the bundled samples, and one small plan made once per test process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK_PLAN = ROOT.parent / "shared" / "tools" / "check_plan.py"

# Hypothesis profiles. "ci" is the default (README's test command, CI=true): derandomized, so the suite
# gives the same answer on every run and every machine; a counterexample it ever finds is kept in
# the test as an @example. "dev": random search, as hypothesis runs by default. "long": random search
# with many examples for an on-demand hunt (HYPOTHESIS_PROFILE=long, ~30 minutes); it also scales the
# max_examples a test sets in its own @settings, so every property searches longer.
LONG_FACTOR = int(os.environ.get("HYPOTHESIS_LONG_FACTOR", "40"))
try:
    from hypothesis import HealthCheck, Phase, settings
    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large]
    settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True,
                              suppress_health_check=_quiet)
    settings.register_profile("dev", deadline=None, suppress_health_check=_quiet)
    settings.register_profile("long", deadline=None, max_examples=100 * LONG_FACTOR, print_blob=True,
                              suppress_health_check=_quiet,
                              phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])
    HYPOTHESIS_PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or "ci"
    settings.load_profile(HYPOTHESIS_PROFILE)
except ImportError:  # pragma: no cover
    HYPOTHESIS_PROFILE = None


def pytest_collection_modifyitems(config, items):
    """Under the "long" profile, multiply each property's own max_examples by LONG_FACTOR (a test's
    @settings(max_examples=...) would otherwise cap the search at the CI size)."""
    if HYPOTHESIS_PROFILE != "long":
        return
    from hypothesis import settings as _settings
    seen = set()
    for item in items:
        fn = getattr(item, "obj", None)
        cur = getattr(fn, "_hypothesis_internal_use_settings", None)
        if cur is None or id(fn) in seen or not hasattr(fn, "hypothesis"):
            continue
        seen.add(id(fn))
        fn._hypothesis_internal_use_settings = _settings(
            cur, max_examples=max(cur.max_examples * LONG_FACTOR, 100 * LONG_FACTOR // 4), derandomize=False)


def pytest_report_header(config):
    return f"hypothesis profile: {HYPOTHESIS_PROFILE} (HYPOTHESIS_PROFILE=ci|dev|long)"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def sample_small() -> dict:
    from gridplan.geo.samples import sample_paths
    return sample_paths("sample_small")


@pytest.fixture(scope="session")
def sample_full() -> dict:
    from gridplan.geo.samples import sample_paths
    return sample_paths("sample")


@pytest.fixture(scope="session")
def small_plan(sample_small):
    """The whole pipeline on the one-township sample (made once per test process)."""
    from gridplan.optimize import plan
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
