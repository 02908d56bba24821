"""geo.summary: the typed Summary reads every summary the pipeline writes and gives it back unchanged;
a figure the summary lacks is None and shows as — in both the CLI and the report."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, strategies as st

from gridplan.geo.output import summary_json
from gridplan.geo.summary import UNKNOWN, Balance, Coverage, Partition, ProblemRecord, Summary, fmt_num, fmt_pct

# --- round trip on real plans ------------------------------------------------------------------


def test_pipeline_summary_round_trips_and_is_well_typed(small_plan):
    d = small_plan.summary
    s = Summary.from_dict(d)
    assert s.as_dict() == d
    assert list(s.as_dict()) == list(d)                       # key order kept: summary.json unchanged
    assert summary_json(s.as_dict()) == summary_json(d)
    assert s.misfits() == []                                  # every known key has the type the record says
    # the typed fields hold the dict's values (not defaults)
    assert s.bal.within_tolerance_share == d["balance"]["within_tolerance_share"]
    assert s.bal.excluding_failed.grids == d["balance"]["excluding_failed"]["grids"]
    assert s.cov.minutes == d["coverage"]["minutes"] and s.cov.mode == d["coverage"]["mode"]
    assert s.cov.share == d["coverage"]["share"]
    assert s.households == d["households"] and s.grids == d["grids"] == len(small_plan.grids)
    assert s.part.units_by_balance == d["partition"]["units_by_balance"]
    assert len(s.problem_list) == len(d["problems"])
    assert all(isinstance(p, ProblemRecord) and p.kind for p in s.problem_list)
    assert s.runtime_total == d["runtime_s"]["total"]
    # what the records know is not also in extra; what they do not know is
    assert not set(s.extra) & {"households", "coverage", "balance", "problems"}


def test_summary_json_on_disk_round_trips_byte_for_byte(small_plan_dir):
    text = (small_plan_dir / "summary.json").read_text(encoding="utf-8")
    s = Summary.from_dict(json.loads(text))
    assert summary_json(s.as_dict()) == text
    assert s.misfits() == []


# --- round trip on generated dicts -------------------------------------------------------------

json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                          max_leaves=8)


def _section(names):
    """A dict holding some of ``names`` (any JSON values, right type or not) and some unknown keys."""
    known = st.dictionaries(st.sampled_from(sorted(names)), json_value, max_size=len(names))
    return st.tuples(known, st.dictionaries(st.text(max_size=6), json_value, max_size=2)).map(
        lambda kv: {**kv[1], **kv[0]})


problem = st.one_of(st.text(max_size=8), _section({"source", "row", "kind", "message", "fatal", "count", "text"}))
summaries = st.fixed_dictionaries({}, optional={
    "households": json_value, "units": st.integers(0, 100), "grids": json_value,
    "coverage": st.one_of(_section({"minutes", "mode", "share", "target", "travel", "speed_kmh"}), json_value),
    "balance": _section({"max_abs_dev", "within_tolerance_share", "tolerance", "failed_grids",
                         "excluding_failed", "uncertified_miss_share"}).flatmap(
        lambda b: st.one_of(st.just(b), _section({"grids", "within_tolerance_share"}).map(
            lambda e: {**b, "excluding_failed": e}))),
    "partition": _section({"units_by_balance", "grid_count_mismatches", "jobs"}),
    "problems": st.one_of(st.lists(problem, max_size=3), json_value),
    "runtime_s": json_value, "baseline": json_value, "output_coords": json_value, "keys": json_value,
    "extra": json_value})


@given(summaries)
@example({"problems": ["a plain string problem", {}], "balance": {"tolerance": "bad", "keys": 1}})
@example({"coverage": None, "partition": {"grid_count_mismatches": [{"unit": 1, "grids": "2"}, "x"]}})
@example({"units": 3, "extra": {"a": 1}, "keys": [1]})
def test_any_summary_dict_round_trips(d):
    s = Summary.from_dict(d)
    back = s.as_dict()
    assert back == d
    assert list(back) == list(d)
    assert json.dumps(back, sort_keys=False) == json.dumps(d, sort_keys=False)
    for name in ("households", "grids", "units"):
        v = getattr(s, name)
        assert v is None or (isinstance(v, int) and not isinstance(v, bool))   # a typed field holds its type
    assert s.cov.share is None or isinstance(s.cov.share, (int, float))
    # rendering never fails on it
    from gridplan.geo.report import _summary_rows
    _summary_rows(s)


def test_unknown_and_ill_typed_keys_are_kept_and_read_as_none():
    d = {"grids": 4, "future_figure": {"x": [1, 2]},
         "coverage": {"share": 0.9, "minutes": 15, "mode": "walk", "isochrone_quality": "good"},
         "balance": {"within_tolerance_share": "high", "tolerance": 0.1}}
    s = Summary.from_dict(d)
    assert s.extra == {"future_figure": {"x": [1, 2]}}
    assert s.cov.extra == {"isochrone_quality": "good"} and s.cov.share == 0.9
    assert s.bal.within_tolerance_share is None                 # not a number: unknown, not 0
    assert s.misfits() == ["balance.within_tolerance_share"]
    assert s.as_dict() == d


def test_records_built_directly_give_the_pipeline_shape():
    s = Summary(grids=2, coverage=Coverage(minutes=15, mode="walk", share=None), balance=Balance(tolerance=0.1),
                partition=Partition.from_dict({"jobs": 1}))
    d = s.as_dict()
    assert list(d)[:6] == ["households", "units", "grids", "workers", "stations", "coverage"]
    assert d["coverage"]["share"] is None and d["partition"] == {"jobs": 1}
    assert Summary.from_dict(d).as_dict() == d


def test_missing_sections_read_as_empty_records():
    s = Summary.from_dict({})
    assert s.cov.share is None and s.bal.within_tolerance_share is None and s.problem_list == ()
    assert s.tolerance is None and s.output_coords == "wgs84" and s.runtime_total is None
    assert Summary.from_dict({"options": {"tolerance": 0.15}}).tolerance == 0.15
    assert Summary.from_dict({"balance": {"tolerance": 0.2}, "options": {"tolerance": 0.15}}).tolerance == 0.2


def test_one_formatting_rule_for_unknown():
    for v in (None, float("nan"), math.inf):
        assert fmt_num(v) == UNKNOWN and fmt_pct(v) == UNKNOWN
    assert fmt_pct("n/a") == UNKNOWN
    assert fmt_pct(0.0) == "0.0%" and fmt_pct(0.12345, 2) == "12.35%"
    assert fmt_num(0) == "0" and fmt_num(1234567) == "1,234,567" and fmt_num(1.23456, 2) == "1.23"


# --- missing figures are — in both CLI and report ------------------------------------------------

SPARSE = {"households": 1200, "units": 1, "grids": 4,
          "coverage": {"minutes": 15, "mode": "walk"},             # no share: nothing was measured
          "balance": {"tolerance": 0.1, "max_abs_dev": 0.05}}        # no within_tolerance_share, no p95


def _cli_text(summary, monkeypatch) -> str:
    from rich.console import Console

    from gridplan.api import cli
    rec = Console(record=True, width=200)
    monkeypatch.setattr(cli, "console", rec)
    rec.print(cli._summary_table(summary))
    cli._print_problems(summary)
    return rec.export_text()


def _row(text: str, label: str) -> str:
    return next(ln for ln in text.splitlines() if label in ln)


def test_missing_figures_show_as_unknown_in_the_cli(monkeypatch):
    text = _cli_text(SPARSE, monkeypatch)
    assert UNKNOWN in _row(text, "of their unit mean") and "0.0%" not in _row(text, "of their unit mean")
    assert _row(text, "coverage (15 min, walk)").rstrip(" │|").endswith(UNKNOWN)
    assert "5.0% / " + UNKNOWN in _row(text, "max / p95 deviation")
    assert UNKNOWN in _row(text, "contiguous grids") and UNKNOWN in _row(text, "runtime")
    assert "0.0%" not in text                                  # no zero stands in for a missing figure
    assert "1,200" in _row(text, "households")
    full = _cli_text({**SPARSE, "coverage": {**SPARSE["coverage"], "share": 0.0}}, monkeypatch)
    assert "0.0%" in _row(full, "coverage (15 min, walk)")      # a real zero is shown as one


def test_missing_figures_show_as_unknown_in_the_report():
    from gridplan.geo.report import _summary_rows, render_report
    rows = dict(_summary_rows(Summary.from_dict(SPARSE)))
    assert rows["Coverage"].startswith(UNKNOWN + " of households within 15 min")
    assert rows["Grids within tolerance (±10.0%)"] == UNKNOWN
    assert rows["Balance: 95th percentile |deviation|"] == UNKNOWN
    assert rows["Balance: max |deviation|"] == "5.0%"
    html = render_report({}, SPARSE)
    assert f"({UNKNOWN} within ±10%)" in html and f"coverage {UNKNOWN}" in html


@pytest.mark.parametrize("summary", [{}, {"problems": "not a list"}, {"coverage": [], "balance": 3}])
def test_readers_take_hostile_summaries(summary, monkeypatch):
    from gridplan.geo.report import render_report
    text = _cli_text(summary, monkeypatch)
    assert UNKNOWN in _row(text, "of their unit mean")
    assert "<html" in render_report({}, summary).lower()


# --- partition notes as (kind, message) --------------------------------------------------------

@pytest.mark.parametrize("notes", [["k reduced from 3 to 2: too few points"],
                                   [("k_reduced", "k reduced from 3 to 2: too few points")]])
def test_grid_count_reason_comes_from_the_notes_in_either_form(notes):
    from types import SimpleNamespace

    import pandas as pd

    from gridplan.optimize.summary import note_parts, unit_review
    assert note_parts(notes[0]) == ("k_reduced", "k reduced from 3 to 2: too few points")
    units = pd.DataFrame({"unit_code": ["469025100001"]})
    grids = pd.DataFrame({"unit_idx": [0, 0], "deviation": [0.02, -0.02]})
    part = SimpleNamespace(balance="", status="optimal", k=2, notes=notes, best_band=None)
    status, mismatches, problems = unit_review(units, grids, {0: part}, {0: 900.0}, [300.0], 0.1)
    assert status == {0: "within"}
    assert mismatches == [{"unit": "469025100001", "grids": 2, "expected": 3,
                           "reason": "k reduced from 3 to 2: too few points"}]
    kinds = [p.kind for p in problems]
    assert kinds == ["grid_count", "partition_note"]
    assert problems[1].message == "k reduced from 3 to 2: too few points"     # the message, never the pair
