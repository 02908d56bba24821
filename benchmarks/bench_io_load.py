"""How long geo.io.load_dataset takes on a large household CSV, against plain pandas.read_csv;
what the allow-listed readers cost per format; and what refusing a zip bomb costs.

    cd /work/main && /work/venv/bin/python benchmarks/bench_io_load.py [--rows 1000000] [--coords gcj02]
    ... bench_io_load.py --formats 932791     # read_table per format vs pyogrio/GDAL on the same points
    ... bench_io_load.py --bomb               # a <= 200 KB zip of >= 50 MB: seconds and RSS growth

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
from gridplan.geo.coords import from_wgs84  # noqa: E402
from gridplan.geo.io import load_dataset  # noqa: E402


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


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_bomb() -> None:
    """A zip of a 60 MB CSV (deflated to well under 200 KB) given as households: refused from the
    central directory. Peak RSS is measured before and after (run this first in its process)."""
    import zipfile

    from gridplan.geo.io import read_table

    with tempfile.TemporaryDirectory() as d:
        bomb = Path(d) / "households.zip"
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z, z.open("h.csv", "w") as out:
            block = b"110.005,19.505\n" * (1 << 16)
            out.write(b"lon,lat\n")
            for _ in range(60 * 1024 * 1024 // len(block)):
                out.write(block)
        with zipfile.ZipFile(bomb) as z:
            inflated = sum(i.file_size for i in z.infolist())
        rss0 = _rss_mb()
        t0 = time.perf_counter()
        frame, problems = read_table(bomb, role="households")
        dt = time.perf_counter() - t0
        print(f"zip bomb: {bomb.stat().st_size / 1024:,.0f} KB -> {inflated / 2**20:,.0f} MB; refused={frame is None} "
              f"in {dt:.3f} s; peak RSS growth {_rss_mb() - rss0:,.1f} MB")
        for p in problems:
            print(" ", str(p)[:160])


def bench_formats(rows: int, seed: int = 0) -> None:
    """read_table (the allow-listed readers) against pyogrio/GDAL reading the same file."""
    import pyogrio

    from gridplan.geo.io import read_table

    rng = np.random.default_rng(seed)
    g = gpd.GeoDataFrame({"id": [f"H{i:07d}" for i in range(rows)], "households": rng.integers(1, 4, rows)},
                         geometry=gpd.points_from_xy(rng.uniform(110, 110.2, rows), rng.uniform(19.5, 19.7, rows)),
                         crs=4326)
    print(f"{'format':<12}{'MB':>8}{'read_table s':>14}{'pyogrio s':>11}")
    with tempfile.TemporaryDirectory() as d:
        for ext, write in ((".parquet", lambda p: g.to_parquet(p)), (".gpkg", lambda p: g.to_file(p)),
                           (".fgb", lambda p: g.to_file(p)), (".geojson", lambda p: g.to_file(p)),
                           (".csv", lambda p: pd.DataFrame({"id": g["id"], "lon": g.geometry.x,
                                                            "lat": g.geometry.y}).to_csv(p, index=False))):
            p = Path(d) / f"h{ext}"
            write(p)
            t0 = time.perf_counter()
            frame, problems = read_table(p, role="households")
            ours = time.perf_counter() - t0
            assert frame is not None and len(frame) == rows, problems
            t0 = time.perf_counter()
            if ext == ".parquet":
                gpd.read_parquet(p)
            else:
                pyogrio.read_dataframe(p, use_arrow=True)
            gdal = time.perf_counter() - t0
            print(f"{ext:<12}{p.stat().st_size / 2**20:>8.1f}{ours:>14.2f}{gdal:>11.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--coords", default="wgs84")
    ap.add_argument("--formats", type=int, default=0, help="rows for the per-format reader table (0: skip)")
    ap.add_argument("--bomb", action="store_true", help="only the zip-bomb refusal")
    a = ap.parse_args()
    if a.bomb:
        return bench_bomb()
    if a.formats:
        return bench_formats(a.formats)
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
    print(f"{'gridplan.geo.io.load_dataset':<36}{load:>10.2f}{load / base:>12.2f}")
    for p in ds.problems:
        print(" ", str(p)[:160])
    record("bench_io_load", {"rows": a.rows, "coords": a.coords, "units": len(ds.units), "kept": len(ds.households),
                             "problems": len(ds.problems), "pandas_read_csv_s": round(base, 3),
                             "naive_s": round(naive, 3), "load_dataset_s": round(load, 3),
                             "x_read_csv": round(load / base, 2)}, notes="each step timed once, cold, same file")


if __name__ == "__main__":
    main()
