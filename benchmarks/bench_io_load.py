"""How long geo.io.load_dataset takes on a large household CSV, against plain pandas.read_csv.

    cd /work/main && /work/venv/bin/python benchmarks/bench_io_load.py [--rows 1000000] [--coords gcj02]

Builds a synthetic county (20 x 20 village rectangles near Haikou) and N household points in a
temporary directory (with 1% rows having bad coordinates, 0.5% swapped, 0.5% outside), then
prints a table: the baseline (pandas.read_csv of the same file, no validation), a naive loader
(read_csv + points_from_xy, no checks, no projection, no point-in-unit) and load_dataset.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geopandas as gpd  # noqa: E402
import shapely  # noqa: E402

from benchmarks.record import record  # noqa: E402
from geo.coords import from_wgs84  # noqa: E402
from geo.io import load_dataset  # noqa: E402


def build(tmp: Path, rows: int, coords: str, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    x0, y0, step, k = 110.0, 19.5, 0.01, 20
    boxes, codes = [], []
    for i in range(k):
        for j in range(k):
            boxes.append(shapely.box(x0 + i * step, y0 + j * step, x0 + (i + 1) * step, y0 + (j + 1) * step))
            codes.append(f"4601061{i:02d}{j:03d}")
    b = gpd.GeoDataFrame({"village_code": codes}, geometry=boxes, crs=4326)
    bpath = tmp / "boundaries.gpkg"
    b.to_file(bpath)
    lon = rng.uniform(x0, x0 + k * step, rows)
    lat = rng.uniform(y0, y0 + k * step, rows)
    lon, lat = from_wgs84(lon, lat, coords)
    lon = lon.round(7).astype(object)
    lat = lat.round(7)
    bad = rng.choice(rows, rows // 100, replace=False)
    lon[bad[: len(bad) // 2]] = ""
    lon[bad[len(bad) // 2:]] = "n/a"
    sw = rng.choice(rows, rows // 200, replace=False)
    lat = lat.astype(object)
    lon[sw], lat[sw] = lat[sw], lon[sw]
    out = rng.choice(rows, rows // 200, replace=False)
    lon[out] = 111.5
    df = pd.DataFrame({"id": [f"H{i:07d}" for i in range(rows)], "lon": lon, "lat": lat,
                       "households": rng.integers(1, 4, rows)})
    hpath = tmp / "households.csv"
    df.to_csv(hpath, index=False)
    return bpath, hpath


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--coords", default="wgs84")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bpath, hpath = build(Path(d), a.rows, a.coords)
        t0 = time.perf_counter()
        pd.read_csv(hpath)
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        df = pd.read_csv(hpath)
        gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(pd.to_numeric(df["lon"], errors="coerce"),
                                                         pd.to_numeric(df["lat"], errors="coerce")), crs=4326)
        naive = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = load_dataset(bpath, hpath, coords=a.coords, strict=False)
        load = time.perf_counter() - t0
    print(f"rows={a.rows:,} coords={a.coords} units={len(ds.units)} kept={len(ds.households):,} "
          f"problems={len(ds.problems)}")
    print(f"{'step':<36}{'seconds':>10}{'x baseline':>12}")
    print(f"{'pandas.read_csv (baseline)':<36}{base:>10.2f}{1.0:>12.2f}")
    print(f"{'read_csv + points_from_xy (naive)':<36}{naive:>10.2f}{naive / base:>12.2f}")
    print(f"{'geo.io.load_dataset':<36}{load:>10.2f}{load / base:>12.2f}")
    for p in ds.problems:
        print(" ", str(p)[:160])
    record("bench_io_load", {"rows": a.rows, "coords": a.coords, "units": len(ds.units), "kept": len(ds.households),
                             "problems": len(ds.problems), "pandas_read_csv_s": round(base, 3),
                             "naive_s": round(naive, 3), "load_dataset_s": round(load, 3),
                             "x_read_csv": round(load / base, 2)}, notes="each step timed once, cold, same file")


if __name__ == "__main__":
    main()
