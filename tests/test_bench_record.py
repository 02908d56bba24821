"""benchmarks/record.py and benchmarks/timing.py: what every benchmark run writes, and how it is timed."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import record as rec
from benchmarks.timing import measure

ROOT = Path(__file__).resolve().parents[1]


def test_record_writes_provenance_and_figures(tmp_path, capsys):
    figures = {"rate": np.float64(1.5e6), "n": np.int64(3), "rows": [{"a": np.arange(3)}], "bad": float("nan"),
               "where": tmp_path}
    path = rec.record("demo", figures, run=rec.begin(), notes="a note", out_dir=tmp_path)
    assert path is not None and path.parent == tmp_path
    assert path.name.startswith("demo-") and path.suffix == ".json"
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["script"] == "demo" and d["date"].endswith("+00:00")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    if head:
        assert d["git"]["revision"] == head
        assert isinstance(d["git"]["dirty"], bool)
        assert d["git"]["changed_during_run"] is False
    for key in ("platform", "cpu_model", "logical_cores", "memory_gb"):
        assert key in d["machine"]
    assert len(d["load"]["before"]) == 3 and len(d["load"]["after"]) == 3
    for lib in ("numpy", "shapely", "geopandas", "ortools", "pyogrio", "fastapi"):
        assert d["libraries"][lib], lib
    assert d["command"] and d["notes"] == ["a note"]
    assert d["figures"] == {"rate": 1.5e6, "n": 3, "rows": [{"a": [0, 1, 2]}], "bad": None, "where": str(tmp_path)}
    out = capsys.readouterr().out
    assert "| rate | 1.5e+06 |" in out and str(path) in out


def test_record_output_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(rec.ENV_DIR, str(tmp_path / "dry"))
    a = rec.record("demo", {"x": 1}, quiet=True)
    b = rec.record("demo", {"x": 2}, quiet=True)     # same second: both kept
    assert a.parent == tmp_path / "dry" and b.parent == a.parent and a != b
    assert json.loads(b.read_text(encoding="utf-8"))["figures"] == {"x": 2}
    monkeypatch.setenv(rec.ENV_DIR, "-")
    assert rec.record("demo", {"x": 3}, quiet=True) is None
    assert len(list((tmp_path / "dry").iterdir())) == 2


def test_measure_times_every_run_alike():
    calls = []
    t = measure(lambda: calls.append(1) or len(calls), repeat=3, warmup=2)
    assert len(calls) == 5 and len(t.runs) == 3 and t.result == 5
    assert t.best == min(t.runs) <= t.median <= max(t.runs)
    assert t.as_dict()["repeat"] == 3 and t.as_dict()["warmup"] == 2
    with pytest.raises(ZeroDivisionError):
        measure(lambda: 1 / 0, repeat=1, warmup=0)


def test_git_info_names_the_changed_files(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    git("init", "-q")
    (tmp_path / "a.txt").write_text("1")
    git("add", "a.txt")
    git("-c", "user.name=b", "-c", "user.email=b@example.org", "commit", "-qm", "one")
    clean = rec.git_info(tmp_path)
    assert clean["dirty"] is False and clean["changed_files"] == [] and len(clean["revision"]) == 40
    (tmp_path / "a.txt").write_text("2")
    (tmp_path / "untracked.txt").write_text("x")      # untracked files do not make a run dirty
    dirty = rec.git_info(tmp_path)
    assert dirty["dirty"] is True and dirty["changed_files"] == ["a.txt"]
    assert dirty["revision"] == clean["revision"]
