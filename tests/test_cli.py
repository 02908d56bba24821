"""The `gridplan` command line as users run it: real processes, real exit codes, no tracebacks."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT


def gridplan(*args, cwd=None, timeout=600):
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "gridplan.api.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=env, timeout=timeout)


def test_validate_sample_is_clean(sample_full):
    r = gridplan("validate", "--boundaries", sample_full["boundaries"], "--households", sample_full["households"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_validate_broken_copy_names_every_problem(sample_small, tmp_path):
    hh = pd.read_csv(sample_small["households"])
    hh.loc[3, ["lon", "lat"]] = hh.loc[3, ["lat", "lon"]].to_numpy()   # swapped
    hh.loc[5, "lon"] = float("nan")                                       # NaN coordinate
    hh.loc[7, "id"] = hh.loc[8, "id"]                                     # duplicate id
    hh.loc[9, ["lon", "lat"]] = [120.0, 30.0]                             # far outside
    p = tmp_path / "hh.csv"
    hh.to_csv(p, index=False)
    r = gridplan("validate", "--boundaries", sample_small["boundaries"], "--households", p, "--json")
    assert r.returncode == 1, r.stdout + r.stderr          # the duplicate id is fatal
    out = json.loads(r.stdout)
    kinds = {q["kind"] for q in out["problems"]}
    text = json.dumps(out["problems"], ensure_ascii=False)
    assert len(kinds) >= 4, kinds
    assert "hh.csv" in text and "row" in text
    assert "Traceback" not in r.stderr


def test_validate_empty_file_is_fatal(sample_small, tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("id,lon,lat\n")
    r = gridplan("validate", "--boundaries", sample_small["boundaries"], "--households", p)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "empty.csv" in r.stderr


def test_missing_file_and_usage_errors():
    r = gridplan("plan", "--boundaries", "nope.geojson", "--households", "nope.csv", "--out", "x")
    assert r.returncode == 1 and "nope.geojson" in r.stderr
    r = gridplan("plan", "--boundaries", "x")
    assert r.returncode == 2
    r = gridplan("frobnicate")
    assert r.returncode == 2


@pytest.mark.parametrize("flag,value", [("--tolerance", "3"), ("--minutes", "inf"), ("--minutes", "nan"),
                                        ("--speed-kmh", "-1"), ("--workers-budget", "0"), ("--jobs", "0"),
                                        ("--seed", "abc"), ("--max-stations", "1.5"), ("--mode", "teleport"),
                                        ("--output-coords", "cgcs2000"), ("--coverage-target", "1.5"),
                                        ("--time-limit", "1e9"), ("--target-households", "1e300")])
def test_bad_option_value_is_a_usage_error_naming_the_flag(sample_small, tmp_path, flag, value):
    r = gridplan("plan", "--boundaries", sample_small["boundaries"], "--households", sample_small["households"],
                 flag, value, "--out", tmp_path / "o")
    assert r.returncode == 2, r.stderr
    assert flag in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_help_shows_the_schemas_defaults_and_the_vocabularys_choices():
    from gridplan.geo.vocabulary import MODES
    from gridplan.optimize.options import option_default
    r = gridplan("plan", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "|".join(MODES) in text.replace(" ", "")
    for name in ("tolerance", "minutes", "mode", "coverage_target"):
        assert f"(default: {option_default(name)})" in text, name


def test_plan_then_lookup(sample_small, tmp_path, small_plan):
    out = tmp_path / "plan"
    r = gridplan("plan", "--boundaries", sample_small["boundaries"], "--households", sample_small["households"],
                 "--facilities", sample_small["facilities"], "--time-limit", "2", "--jobs", "2", "--out", out,
                 "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["grids"] >= 1 and (out / "plan.gpkg").exists() and (out / "report.html").exists()
    # the worker processes really ran the units (a worker that dies on start-up fails its units)
    assert summary["partition"]["units_by_balance"]["failed"] == 0 and summary["partition"]["jobs"] == 2
    g = small_plan.grids.iloc[0]
    pt = g.geometry.representative_point()
    r = gridplan("lookup", "--plan", out, pt.x, pt.y)
    assert r.returncode == 0, r.stderr
    ans = json.loads(r.stdout)
    assert ans["village_code"] == g.village_code
    # batch lookup of the household file itself: every point inside a unit gets a grid
    dest = tmp_path / "looked.csv"
    r = gridplan("lookup", "--plan", out, "--points", sample_small["households"], "--out", dest)
    assert r.returncode == 0, r.stderr
    looked = pd.read_csv(dest)
    assert looked["grid_code"].notna().mean() > 0.99


def test_keys_create_prints_the_key_last(tmp_path):
    r = gridplan("keys", "create", "--role", "reader", "--data-dir", tmp_path / "srv")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip().splitlines()[-1]
    assert len(key) >= 24 and " " not in key
    r = gridplan("keys", "create", "--role", "admin", "--data-dir", tmp_path / "srv")
    assert r.returncode == 2
