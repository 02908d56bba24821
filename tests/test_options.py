"""Plan options: one strict schema for Python, the CLI and HTTP; one home per vocabulary; settings
read from the environment field by field."""
from __future__ import annotations

import ast
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from gridplan.optimize.options import (COORDS, MODES, OUTPUT_COORDS, SPEED_KMH, OptionsError, PlanOptions, option_default,
                              option_help, option_names)

# the values an attacker sent in issue 10, each accepted (202) before: option -> a hostile value
HOSTILE = [
    ("minutes", math.inf), ("minutes", math.nan), ("minutes", -5.0), ("minutes", 1e6), ("seed", "abc"),
    ("seed", 1.0), ("seed", 2**40), ("kind_targets", "x"), ("kind_targets", {"urban": -1}),
    ("kind_targets", {"urban": "400"}), ("kind_targets", {"": 400}), ("persons_per_household", -1),
    ("persons_per_household", 0), ("max_stations", 1.5), ("max_stations", -1), ("max_stations", True),
    ("speed_kmh", True), ("speed_kmh", "fast"), ("speed_kmh", math.inf), ("workers_budget", 1e300),
    ("workers_budget", 0), ("workers_budget", 10**30), ("target_households", 0), ("target_households", 1e300),
    ("tolerance", 1.0), ("tolerance", "0.1"), ("time_limit_per_unit", 1e9), ("jobs", 0), ("jobs", 2.0),
    ("mode", "teleport"), ("mode", 1), ("coords", "WGS84"), ("output_coords", "cgcs2000"), ("code_field", ""),
    ("code_field", 7), ("coverage_target", 1.5), ("coverage_target", -0.1), ("coverage_target", False),
    ("workers_per_10k", -3), ("baseline", ""),
]


@pytest.mark.parametrize("name,value", HOSTILE, ids=[f"{n}={v!r}" for n, v in HOSTILE])
def test_every_hostile_value_is_refused_naming_the_option(name, value):
    with pytest.raises(OptionsError) as info:
        PlanOptions.from_mapping({name: value})
    err = info.value
    assert isinstance(err, ValueError)
    assert err.fields == (name,)
    (field, message), = err.errors
    assert field == name and message and "got" in message
    assert name in str(err)
    with pytest.raises(OptionsError):   # the constructor and with_ check the same way
        PlanOptions(**{name: value})
    with pytest.raises(OptionsError):
        PlanOptions().with_(**{name: value})


def test_all_problems_are_reported_at_once_as_pairs():
    with pytest.raises(OptionsError) as info:
        PlanOptions.from_mapping({"tolerance": 5, "mode": "teleport", "frobnicate": 1, "seed": "abc"})
    assert set(info.value.fields) == {"tolerance", "mode", "frobnicate", "seed"}
    messages = dict(info.value.errors)
    assert "unknown plan option" in messages["frobnicate"] and "target_households" in messages["frobnicate"]
    assert all(m.count(";") == 0 for f, m in info.value.errors if f != "frobnicate")


def test_excluded_options_are_refused_and_not_advertised():
    with pytest.raises(OptionsError) as info:
        PlanOptions.from_mapping({"scheduler": "tcp://x:1", "nope": 1}, exclude={"scheduler", "jobs"})
    messages = dict(info.value.errors)
    assert set(messages) == {"scheduler", "nope"}
    assert "jobs" not in messages["nope"].split("known:")[1]


def test_good_values_pass_and_stay_plain():
    o = PlanOptions.from_mapping({"minutes": 15, "mode": "bike", "seed": np.int64(3), "tolerance": np.float64(0.2),
                                  "max_stations": 4, "kind_targets": {"urban": 400}, "baseline": Path("/x"),
                                  "speed_kmh": None})
    assert (o.minutes, o.mode, o.seed, o.tolerance, o.max_stations) == (15.0, "bike", 3, 0.2, 4)
    assert type(o.minutes) is float and type(o.seed) is int and type(o.mode) is str and o.baseline == "/x"
    assert o.target_for("urban", None) == 400.0 and o.target_for("rural", float("nan")) == 300.0
    assert o.target_for("urban", 250.0) == 250.0
    # enum members from the vocabulary are accepted and stored as their names
    from gridplan.geo.vocabulary import CoordSystem, Mode
    o2 = PlanOptions(mode=Mode.drive, coords=CoordSystem.gcj02)
    assert o2.mode == "drive" and type(o2.coords) is str and o2.effective_speed_kmh == SPEED_KMH["drive"]
    assert json.loads(json.dumps(o2.as_dict()))["coords"] == "gcj02"


def test_frozen_picklable_and_with_rechecks():
    o = PlanOptions()
    with pytest.raises(Exception):
        o.minutes = 5
    assert pickle.loads(pickle.dumps(o)) == o
    assert o.with_(minutes=5).minutes == 5.0 and o.minutes == 20.0
    with pytest.raises(OptionsError, match="unknown plan option"):
        o.with_(minuets=5)


def test_defaults_are_the_contracts_and_feed_the_cli_help():
    o = PlanOptions()
    assert (o.target_households, o.tolerance, o.minutes, o.mode, o.coverage_target, o.coords) == \
        (300.0, 0.10, 20.0, "walk", 0.9, "wgs84")
    assert o.speed_m_per_min == pytest.approx(4000 / 60)
    for name in option_names():
        assert option_default(name) == getattr(o, name)
    assert "(default: walk)" in option_help("mode") and "(default: 0.9)" in option_help("coverage_target")
    assert set(MODES) == set(SPEED_KMH) and set(OUTPUT_COORDS) < set(COORDS)


@pytest.mark.parametrize("value", [0, 0.0, None])
def test_coverage_target_zero_means_report_only(value):
    assert PlanOptions.from_mapping({"coverage_target": value}).coverage_target is None
    assert PlanOptions(coverage_target=value).coverage_target is None


def test_params_schema_is_derived_from_the_options():
    from gridplan.api.routes.jobs import FORBIDDEN_PARAMS, PARAMS_DESCRIPTION
    schema = PlanOptions.json_schema(exclude=FORBIDDEN_PARAMS)
    assert set(schema["properties"]) == set(option_names()) - FORBIDDEN_PARAMS
    assert schema["properties"]["mode"]["enum"] == list(MODES)
    assert schema["properties"]["seed"]["type"] == "integer"
    assert json.dumps(schema["properties"]["minutes"], separators=(",", ":")) in PARAMS_DESCRIPTION


# ------------------------------------------------------------------ one vocabulary, one home
COORD_NAMES = {"wgs84", "gcj02", "bd09", "cgcs2000"}
MODE_NAMES = {"walk", "bike", "ebike", "drive"}


def _vocabulary_lists(tree: ast.AST) -> list[int]:
    """Lines where two or more coordinate-system (or mode) names sit together as string literals:
    a tuple, list, set, dict's keys, Literal[...] or an Enum's members."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        elif isinstance(node, ast.ClassDef):
            items = [s.value for s in node.body if isinstance(s, ast.Assign)]
        else:
            continue
        names = {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}
        if len(names & COORD_NAMES) >= 2 or len(names & MODE_NAMES) >= 2:
            hits.append(node.lineno)
    return hits


def test_each_vocabulary_is_listed_in_one_module():
    found = {}
    for pkg in ("geo", "optimize", "api"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            lines = _vocabulary_lists(ast.parse(path.read_text(encoding="utf-8")))
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    assert list(found) == ["geo/vocabulary.py"], found


def test_the_vocabulary_is_what_every_surface_uses():
    from gridplan.api import cli
    from gridplan.api.routes import lookup
    from gridplan.geo import coords, vocabulary
    assert vocabulary.COORD_SYSTEMS == coords.SYSTEMS == lookup.COORDS == COORDS
    assert set(vocabulary.Mode) == set(MODES) == set(vocabulary.DEFAULT_SPEED_KMH)
    assert cli.Mode is vocabulary.Mode and cli.CoordSystem is vocabulary.CoordSystem
    assert [c.value for c in cli.OutputCoordSystem] == list(OUTPUT_COORDS)


# ------------------------------------------------------------------ settings from the environment
def test_settings_read_every_field_from_the_environment(monkeypatch):
    from dataclasses import fields

    from gridplan.api.settings import Settings
    monkeypatch.setenv("GRIDPLAN_INDEX_CACHE", "9")
    monkeypatch.setenv("GRIDPLAN_POLL_INTERVAL_S", "0.25")
    monkeypatch.setenv("GRIDPLAN_JOB_TIMEOUT_S", "120")
    monkeypatch.setenv("GRIDPLAN_MAX_BATCH_POINTS", "")          # empty: the default
    s = Settings.from_env(data_dir="d")
    assert (s.index_cache, s.poll_interval_s, s.job_timeout_s, s.data_dir) == (9, 0.25, 120.0, "d")
    assert s.max_batch_points == Settings.max_batch_points
    # every field is reachable through its variable, whatever fields are added later
    sample = {int: "7", float: "1.5", str: "x", bool: "true"}
    for f in fields(Settings):
        hint = Settings.__dataclass_fields__[f.name].type
        for kind, text in sample.items():
            if hint.split(" |")[0] == kind.__name__:
                got = getattr(Settings.from_env({f"GRIDPLAN_{f.name.upper()}": text}), f.name)
                assert got == kind(text) if kind is not bool else got is True, f.name


def test_settings_refuse_a_malformed_variable_by_name():
    from gridplan.api.settings import Settings
    with pytest.raises(ValueError, match="GRIDPLAN_JOB_WORKERS"):
        Settings.from_env({"GRIDPLAN_JOB_WORKERS": "two"})
    with pytest.raises(ValueError, match="GRIDPLAN_REQUEST_TIMEOUT_S"):
        Settings.from_env({"GRIDPLAN_REQUEST_TIMEOUT_S": "inf"})
    assert Settings.from_env({"GRIDPLAN_JOB_TIMEOUT_S": "none"}).job_timeout_s is None


# ------------------------------------------------------------------ coverage_target 0 on every surface
def _stations_of(features) -> list[tuple]:
    return sorted((f["station_id"], bool(f["existing"]), int(f["households_covered"])) for f in features)


def test_coverage_target_zero_gives_the_same_answer_on_every_surface(sample_small, tmp_path):
    """Python, the CLI and HTTP with coverage_target 0: the given stations only, the same share."""
    import geopandas as gpd
    from fastapi.testclient import TestClient

    from gridplan.api.app import create_app
    from gridplan.api.auth import create_key
    from gridplan.api.settings import Settings
    from gridplan.optimize import plan
    from test_cli import gridplan
    from tests.helpers.api import wait_job

    inputs = {r: sample_small[r] for r in ("boundaries", "households", "facilities")}
    answers = {}

    p = plan(*inputs.values(), coverage_target=0, time_limit_per_unit=3.0)
    answers["python"] = (p.summary["coverage"], _stations_of(p.stations.to_dict("records")))

    out = tmp_path / "cli"
    r = gridplan("plan", "--boundaries", inputs["boundaries"], "--households", inputs["households"],
                 "--facilities", inputs["facilities"], "--coverage-target", "0", "--time-limit", "3", "--out", out,
                 "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    stations = gpd.read_file(out / "plan.gpkg", layer="stations")
    answers["cli"] = (json.loads(r.stdout)["coverage"], _stations_of(stations.to_dict("records")))

    s = Settings(data_dir=str(tmp_path / "data"), poll_interval_s=0.1)
    planner, reader = create_key("planner", s.data_dir), create_key("reader", s.data_dir)
    with TestClient(create_app(s)) as c:
        files = {role: (path.name, path.read_bytes()) for role, path in inputs.items()}
        r = c.post("/v1/jobs", files=files, data={"params": json.dumps({"coverage_target": 0,
                                                                         "time_limit_per_unit": 3})},
                   headers={"X-API-Key": planner})
        assert r.status_code == 202, r.text
        get = lambda u: c.get(u, headers={"X-API-Key": reader})  # noqa: E731
        j = wait_job(get, r.json()["id"], timeout=240)
        assert j["status"] == "succeeded", j
        fc = get(f"/v1/jobs/{j['id']}/layers/stations").json()
        answers["http"] = (j["summary"]["coverage"], _stations_of(f["properties"] for f in fc["features"]))

    import pandas as pd
    fac = pd.read_csv(inputs["facilities"], dtype={"id": str})
    given = sorted(fac.loc[fac["existing"].astype(str).str.lower() == "true", "id"])
    for surface, (coverage, stations) in answers.items():
        assert coverage["model"] == "report" and coverage["added"] == 0 and coverage["target"] is None, surface
        assert coverage["share"] == answers["python"][0]["share"], surface
        assert stations == answers["python"][1], surface
    assert 0 < answers["python"][0]["share"] < 1
    assert [st[0] for st in answers["python"][1]] == given    # exactly the given existing stations
