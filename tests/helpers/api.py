"""Helpers for the HTTP service tests: tiny inputs, a tiny plan directory, stand-in job runners.

The runners are imported by the job runner *subprocess* (``settings.runner = "tests.helpers.api:…"``),
so they read their knobs from environment variables, which the subprocess inherits.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import box

ROOT = Path(__file__).resolve().parents[2]   # the repository root

# two villages side by side near Hangzhou, each split into a 2 x 2 block of grids
VILLAGES = {"330110001001": (120.00, 30.00, 120.02, 30.02), "330110001002": (120.02, 30.00, 120.04, 30.02)}


def write_inputs(d: Path, n_households: int = 40, seed: int = 0) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    b = gpd.GeoDataFrame({"village_code": list(VILLAGES), "village_name": ["East", "West"],
                          "township_code": ["330110001"] * 2, "county_code": ["330110"] * 2},
                         geometry=[box(*v) for v in VILLAGES.values()], crs=4326)
    bp = d / "boundaries.geojson"
    b.to_file(bp, driver="GeoJSON")
    rng = np.random.default_rng(seed)
    xy = rng.uniform([120.001, 30.001], [120.039, 30.019], (n_households, 2))
    hp = d / "households.csv"
    pd.DataFrame({"id": np.arange(1, n_households + 1), "lon": xy[:, 0], "lat": xy[:, 1]}).to_csv(hp, index=False)
    return {"boundaries": bp, "households": hp}


def tiny_layers() -> tuple[dict[str, gpd.GeoDataFrame], dict]:
    grids, codes = [], []
    for v, (x0, y0, x1, y1) in VILLAGES.items():
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
        for k, bb in enumerate([(x0, ym, xm, y1), (xm, ym, x1, y1), (x0, y0, xm, ym), (xm, y0, x1, ym)]):
            grids.append(box(*bb))
            codes.append((v + f"{k + 1:03d}", v))
    g = gpd.GeoDataFrame({"grid_code": [c for c, _ in codes], "village_code": [v for _, v in codes],
                          "township_code": "330110001", "county_code": "330110", "households": 10,
                          "population": 26.0, "workers": [1, 2] * 4, "area_km2": 1.0, "polsby_popper": 0.78},
                         geometry=grids, crs=4326)
    st = gpd.GeoDataFrame({"station_id": ["S1", "S2"], "name": ["East hall", "West hall"], "existing": [True, False],
                           "village_code": list(VILLAGES), "households_covered": [40, 40]},
                          geometry=shapely.points([[120.005, 30.015], [120.035, 30.005]]), crs=4326)
    w = gpd.GeoDataFrame({"worker_id": ["W1", "W2", "W3"], "grid_code": [codes[0][0], codes[1][0], codes[1][0]],
                          "role": ["full", "full", "part"]},
                         geometry=shapely.points([[120.001, 30.019]] * 3), crs=4326)
    sa = gpd.GeoDataFrame({"station_id": ["S1", "S2"], "minutes": 20.0, "mode": "walk"},
                          geometry=[p.buffer(0.01) for p in st.geometry], crs=4326)
    hh = gpd.GeoDataFrame({"id": ["1"], "grid_code": [codes[0][0]], "station_id": ["S1"], "minutes": [3.0]},
                          geometry=shapely.points([[120.004, 30.016]]), crs=4326)
    units = gpd.GeoDataFrame({"village_code": list(VILLAGES), "households": 40, "grids": 4, "workers": 6,
                              "coverage": 1.0}, geometry=[box(*v) for v in VILLAGES.values()], crs=4326)
    summary = {"households": 80, "units": 2, "grids": 8, "workers": 12, "stations": 2,
               "coverage": {"minutes": 20.0, "mode": "walk", "share": 1.0, "speed_kmh": 4.0}}
    return {"grids": g, "stations": st, "service_areas": sa, "households": hh, "units": units, "workers": w}, summary


def write_tiny_plan(out: Path, tag: str | None = None) -> Path:
    from gridplan.geo.output import write_plan_dir

    layers, summary = tiny_layers()
    if tag:
        summary["tag"] = tag
    return write_plan_dir(out, layers, summary, report=False)


def fake_runner(inputs, params, out_dir, progress) -> dict:
    """A stand-in for the pipeline: stages with progress, optional sleep, then the tiny plan."""
    sleep = float(os.environ.get("GRIDPLAN_TEST_RUNNER_SLEEP", "0"))
    slow_target = os.environ.get("GRIDPLAN_TEST_SLOW_TARGET")  # only jobs with this target are slow
    if slow_target and str(params.get("target_households")) == slow_target:
        sleep = 120.0
    marker = os.environ.get("GRIDPLAN_TEST_RUNNER_MARKER")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    if os.environ.get("GRIDPLAN_TEST_RUNNER_FAIL"):
        from gridplan.geo.problems import DataError, Problem
        raise DataError([Problem("households.csv", "row 3", "bad_point", "the point has no coordinates", True)])
    steps = 10
    for i in range(steps):
        progress("partition", i / steps)
        time.sleep(sleep / steps)
    write_tiny_plan(Path(out_dir), tag=json.dumps(params, sort_keys=True))
    return json.loads((Path(out_dir) / "summary.json").read_text())


# ---------------------------------------------------------------------------------- real server processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, env_extra: dict | None = None, database_url: str | None = None,
                 log: Path | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "gridplan.api.server", "--port", str(port), "--data-dir", str(data_dir)]
    if database_url:
        cmd += ["--database-url", database_url]
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_healthy(port, p)
    return p


def wait_healthy(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server on port {port} did not become healthy in {timeout} s")


def wait_job(get, job_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 60.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        j = get(f"/v1/jobs/{job_id}").json()
        if j["status"] in statuses:
            return j
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} did not reach {statuses} in {timeout} s (last: {j})")
