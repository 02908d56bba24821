"""Speed of geo.coords on 1,000,000 points over Hainan, against named baselines in the same run.

    python benchmarks/coords_speed.py [--n 1000000] [--repeat 3]

Rows: forward (WGS-84 -> system) and inverse (system -> WGS-84) for gcj02 and bd09 through the
public ``from_wgs84`` / ``to_wgs84``, with the default thread count and with one thread.
Baselines:
  * "python loop": the published formula per point with ``math`` (the usual way it is written;
    the inverse as the same fixed-point iteration, 1e-10 deg), timed on a 20k subsample (best of
    the same ``--repeat`` as everything else) and extrapolated linearly to n;
  * "pyproj UTM": pyproj ``Transformer`` EPSG:4326 -> EPSG:32649 (UTM 49N) on the same n points,
    i.e. what one projection of the data costs.
Also prints the round-trip error (metres, WGS 84 geodesic) of the measured conversions.
Every row is timed the same way: best of ``--repeat`` runs (no separate warm-up for any row).
Results: benchmarks/results/coords_speed-*.json.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyproj import Geod, Transformer  # noqa: E402

from benchmarks.record import record  # noqa: E402
from gridplan.geo import coords  # noqa: E402
from gridplan.geo import coords_kernels  # noqa: E402  the kernels (thread settings)


from gridplan.geo.coords_reference import gcj_to_wgs as py_gcj_to_wgs  # noqa: E402  the per-point baseline
from gridplan.geo.coords_reference import wgs_to_gcj as py_wgs_to_gcj  # noqa: E402


def best_of(repeat: int, fn) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sub", type=int, default=20_000, help="subsample for the per-point Python loop")
    args = ap.parse_args(argv)
    n = args.n
    rng = np.random.default_rng(42)
    lon = rng.uniform(108.5, 111.2, n)
    lat = rng.uniform(18.1, 20.2, n)
    geod = Geod(ellps="WGS84")

    # the inputs of the inverses are real GCJ-02 / BD-09 points
    glon, glat = coords.from_wgs84(lon, lat, "gcj02")
    blon, blat = coords.from_wgs84(lon, lat, "bd09")

    rows: list[tuple[str, float]] = []
    errs: dict[str, float] = {}
    threads = coords_kernels._n_workers()
    saved = coords_kernels._THREAD_MIN
    for label, thread_min in ((f"{threads} thr", saved), ("1 thr", 10**18)):
        coords_kernels._THREAD_MIN = thread_min
        try:
            for system, ilon, ilat in (("gcj02", glon, glat), ("bd09", blon, blat)):
                t, _ = best_of(args.repeat, lambda: coords.from_wgs84(lon, lat, system))
                rows.append((f"{system} forward  ({label})", t))
                t, back = best_of(args.repeat, lambda: coords.to_wgs84(ilon, ilat, system))
                rows.append((f"{system} inverse  ({label})", t))
                errs[system] = float(np.max(geod.inv(back[0], back[1], lon, lat)[2]))
        finally:
            coords_kernels._THREAD_MIN = saved

    k = min(args.sub, n)
    sl, sa = lon[:k].tolist(), lat[:k].tolist()
    t, _ = best_of(args.repeat, lambda: [py_wgs_to_gcj(a, b) for a, b in zip(sl, sa)])
    py_fwd = t * n / k
    gl, ga = glon[:k].tolist(), glat[:k].tolist()
    t, _ = best_of(args.repeat, lambda: [py_gcj_to_wgs(a, b) for a, b in zip(gl, ga)])
    py_inv = t * n / k
    utm = Transformer.from_crs(4326, 32649, always_xy=True)
    t_utm, _ = best_of(args.repeat, lambda: utm.transform(lon, lat))

    print(f"geo.coords on {n:,} points over Hainan; best of {args.repeat}; {os.cpu_count()} CPUs, "
          f"{threads} worker threads; numpy {np.__version__}")
    print(f"{'conversion':28s} {'seconds':>9s} {'points/s':>12s} {'vs python loop':>15s} {'vs pyproj UTM':>14s}")
    for name, t in rows:
        base = py_inv if "inverse" in name else py_fwd
        print(f"{name:28s} {t:9.3f} {n / t:12.3e} {base / t:14.0f}x {t / t_utm:13.2f}x")
    print(f"{'python loop gcj02 forward':28s} {py_fwd:9.3f} {n / py_fwd:12.3e} {'(from ' + str(k) + ')':>15s}")
    print(f"{'python loop gcj02 inverse':28s} {py_inv:9.3f} {n / py_inv:12.3e} {'(from ' + str(k) + ')':>15s}")
    print(f"{'pyproj 4326->UTM 49N':28s} {t_utm:9.3f} {n / t_utm:12.3e}")
    print("('vs python loop' = loop time / ours: speed-up;  'vs pyproj UTM' = ours / projection time)")
    for system, e in errs.items():
        print(f"round trip wgs84 -> {system} -> wgs84: max error {e * 1000:.2e} mm")
    record("coords_speed", {
        "points": n, "repeat": args.repeat, "worker_threads": threads,
        "rows": [{"conversion": name, "best_s": round(t, 5), "points_per_s": round(n / t),
                  "x_python_loop": round((py_inv if "inverse" in name else py_fwd) / t, 1),
                  "x_pyproj_utm_time": round(t / t_utm, 3)} for name, t in rows],
        "python_loop": {"sample": k, "gcj02_forward_s_extrapolated": round(py_fwd, 3),
                        "gcj02_inverse_s_extrapolated": round(py_inv, 3)},
        "pyproj_utm_s": round(t_utm, 5), "round_trip_max_error_mm": {s: e * 1000 for s, e in errs.items()},
    }, notes="target: 1,000,000 points converted in well under a second")


if __name__ == "__main__":
    main()
