"""Province scale: the whole plan (``optimize.plan``) on the generated Hainan province, measured.

    python benchmarks/province.py                                  # all 18 counties, jobs=1 and jobs=2
    python benchmarks/province.py --counties 469029 --configs 1,2,dask --lookup
    python benchmarks/province.py --configs 2 --profile            # cProfile of the plan, top functions

Input: ``benchmarks/make_province.py``'s output (``--data``, default benchmarks/out/province/;
generated first if missing). ``--counties`` plans a subset (the same files cut to those counties,
written next to the data). Each configuration runs in a fresh child process so that its figures
are its own: ``1``/``2``/``N`` = ``plan(..., jobs=N)``, ``dask`` = the same pipeline with
``scheduler=`` a ``dask.distributed.LocalCluster`` of 2 single-threaded worker processes started
inside the child. The parent samples the resident memory of the child and all its descendants
(worker processes, Dask workers) every 0.2 s with psutil: ``peak RSS`` is the largest sum seen.

Figures: wall time per stage (``plan.summary["runtime_s"]``), households/s end to end, peak
RSS of the process tree, the speed-up of each local configuration over jobs=1, and whether the
Dask run's grids (code and households of every grid) are identical to the first local run's.
``--lookup``: ``plan.to_dir(...)`` then, in another fresh child, ``GridIndex.from_plan_dir`` —
load seconds, RSS delta, and lookups/s on 1M points (half jittered household points, half
uniform over the province's bounding box). Results: a table on stdout and JSON in
``--out`` (default benchmarks/out/province_bench/).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT / "benchmarks" / "out" / "province"
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "province_bench"


# --------------------------------------------------------------------------- input
def ensure_data(data: Path) -> dict:
    if not (data / "manifest.json").exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import make_province
        print(f"generating the province into {data} ...", flush=True)
        make_province.generate(data, jobs=2, verbose=False)
    return json.loads((data / "manifest.json").read_text(encoding="utf-8"))


def subset(data: Path, codes: list[str]) -> Path:
    """The province's files cut to ``codes`` (ids carry the county code: H/F/W + 6 digits)."""
    import geopandas as gpd
    import pandas as pd

    out = data.parent / f"{data.name}_{'_'.join(codes)}"
    if (out / "households.parquet").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("boundaries", "townships", "counties"):
        g = gpd.read_file(data / f"{name}.gpkg")
        g = g[g["county_code"].isin(codes)]
        if g.empty:
            raise SystemExit(f"no {name} for counties {codes} in {data}")
        g.to_file(out / f"{name}.gpkg", layer=name, driver="GPKG", engine="pyogrio")
    hh = pd.read_parquet(data / "households.parquet")
    hh[hh["id"].str[1:7].isin(codes)].to_parquet(out / "households.parquet", index=False)
    for name, col in (("facilities.csv", "id"), ("roster.csv", "worker_id")):
        f = pd.read_csv(data / name, dtype=str, keep_default_na=False)
        f[f[col].str[1:7].isin(codes)].to_csv(out / name, index=False)
    return out


# --------------------------------------------------------------------------- children
def child_plan(cfg: dict) -> dict:
    """Run one plan configuration (in a fresh process); returns the figures."""
    import numpy as np

    from optimize import plan

    d = Path(cfg["data"])
    kwargs = dict(cfg["options"])
    cluster = None
    if cfg["config"] == "dask":
        from dask.distributed import LocalCluster
        from dask.distributed import Client
        cluster = LocalCluster(n_workers=cfg.get("dask_workers", 2), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        # optimize.executors builds ``as_completed()`` before any future, which needs a *default*
        # client (its own is set_as_default=False): keep one here until that is fixed there
        default_client = Client(cluster)   # noqa: F841
        kwargs["scheduler"] = cluster.scheduler_address
    else:
        kwargs["jobs"] = int(cfg["config"])
    prof = None
    if cfg.get("profile"):
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    last = [None, -1.0]

    def progress(stage: str, share: float) -> None:   # to the log, at most every 2% or on a new stage
        if stage != last[0] or share - last[1] >= 0.02:
            last[0], last[1] = stage, share
            print(f"[{cfg['config']}] {time.perf_counter() - t0:8.1f} s  {stage:<10} {share:.3f}", flush=True)

    try:
        p = plan(d / "boundaries.gpkg", d / "households.parquet",
                 d / "facilities.csv" if cfg.get("facilities", True) else None,
                 d / "roster.csv" if cfg.get("roster") else None, progress=progress, **kwargs)
    finally:
        if cluster is not None:
            cluster.close()
    wall = time.perf_counter() - t0
    if prof is not None:
        import io
        import pstats
        prof.disable()
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(45)
        s2 = io.StringIO()
        pstats.Stats(prof, stream=s2).sort_stats("tottime").print_stats(30)
        Path(cfg["result_dir"], "profile.txt").write_text(s.getvalue() + "\n\n" + s2.getvalue(), encoding="utf-8")
    res = Path(cfg["result_dir"])
    g = p.grids
    g[["grid_code", "village_code", "households"]].to_parquet(res / "grids.parquet", index=False)
    if cfg.get("write_plan"):
        t = time.perf_counter()
        p.to_dir(res / "plan", report=False)
        write_s = time.perf_counter() - t
    else:
        write_s = None
    s = p.summary
    return {"config": cfg["config"], "wall_s": round(wall, 2), "runtime_s": s.get("runtime_s"),
            "households": s.get("households"), "units": s.get("units"), "grids": s.get("grids"),
            "stations": s.get("stations"), "coverage": s.get("coverage"), "balance": s.get("balance"),
            "problems": len(s.get("problems", [])), "write_s": write_s,
            "grid_households_total": int(np.asarray(g["households"]).sum())}


def child_lookup(cfg: dict) -> dict:
    import numpy as np
    import pandas as pd
    import psutil

    from geo.index import GridIndex

    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t = time.perf_counter()
    idx = GridIndex.from_plan_dir(cfg["plan_dir"])
    load_s = time.perf_counter() - t
    rss1 = proc.memory_info().rss
    hh = pd.read_parquet(Path(cfg["data"]) / "households.parquet", columns=["lon", "lat"])
    rng = np.random.default_rng(0)
    n = int(cfg.get("points", 1_000_000))
    pick = rng.integers(0, len(hh), n // 2)
    lon1 = hh["lon"].to_numpy()[pick] + rng.normal(0, 0.002, n // 2)
    lat1 = hh["lat"].to_numpy()[pick] + rng.normal(0, 0.002, n // 2)
    minx, miny, maxx, maxy = hh["lon"].min(), hh["lat"].min(), hh["lon"].max(), hh["lat"].max()
    lon2, lat2 = rng.uniform(minx, maxx, n - n // 2), rng.uniform(miny, maxy, n - n // 2)
    lon, lat = np.r_[lon1, lon2], np.r_[lat1, lat2]
    idx.grid_of(lon[:1000], lat[:1000])        # warm-up
    t = time.perf_counter()
    g = idx.grid_of(lon, lat)
    grid_s = time.perf_counter() - t
    t = time.perf_counter()
    out = idx.lookup(lon, lat)
    full_s = time.perf_counter() - t
    return {"grids": int(idx.n), "load_s": round(load_s, 2), "rss_delta_mb": round((rss1 - rss0) / 2**20, 1),
            "points": n, "found_share": round(float((g >= 0).mean()), 3),
            "grid_of_per_s": round(n / grid_s), "lookup_per_s": round(n / full_s),
            "same_as_lookup": bool(np.array_equal(g, out["grid"]))}


# --------------------------------------------------------------------------- parent
def run_child(kind: str, cfg: dict, log: Path) -> tuple[dict, float]:
    """Run ``kind`` in a fresh interpreter, sampling the RSS of its whole process tree."""
    import psutil

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    out = Path(f.name).with_suffix(".out.json")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, f.name, str(out)]
    with open(log, "a", encoding="utf-8") as lf:
        proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=lf, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            total = 0
            try:
                for q in [ps] + ps.children(recursive=True):
                    try:
                        total += q.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            peak = max(peak, total)
            time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} {cfg.get('config', '')} failed (exit {proc.returncode}); see {log}")
    res = json.loads(out.read_text(encoding="utf-8"))
    os.unlink(f.name)
    os.unlink(out)
    return res, peak / 2**30


def same_grids(a: Path, b: Path) -> tuple[bool, str]:
    import pandas as pd
    x = pd.read_parquet(a).sort_values("grid_code").reset_index(drop=True)
    y = pd.read_parquet(b).sort_values("grid_code").reset_index(drop=True)
    if len(x) != len(y):
        return False, f"{len(x)} vs {len(y)} grids"
    diff = (x["grid_code"] != y["grid_code"]) | (x["households"] != y["households"])
    return (not diff.any()), f"{int(diff.sum())} of {len(x)} grids differ"


def machine() -> str:
    import psutil
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{psutil.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GB RAM, " \
           f"Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, cfg_path, out_path = argv[1:4]
        cfg = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
        res = child_plan(cfg) if kind == "plan" else child_lookup(cfg)
        Path(out_path).write_text(json.dumps(res), encoding="utf-8")
        return 0

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--counties", default="", help="comma-separated county codes (default: the whole province)")
    ap.add_argument("--configs", default="1,2", help="comma-separated: a number of jobs, or 'dask' (LocalCluster)")
    ap.add_argument("--time-limit-per-unit", type=float, default=None)
    ap.add_argument("--coverage-target", type=float, default=0.9)
    ap.add_argument("--no-facilities", action="store_true", help="plan without the candidate stations file")
    ap.add_argument("--roster", action="store_true", help="also assign the roster")
    ap.add_argument("--lookup", action="store_true", help="write the first plan and measure the lookup index")
    ap.add_argument("--profile", action="store_true", help="cProfile each plan (profile.txt per configuration)")
    args = ap.parse_args(argv)

    manifest = ensure_data(args.data)
    codes = [c.strip() for c in args.counties.split(",") if c.strip()]
    data = subset(args.data, codes) if codes else args.data
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "log.txt"
    options = {"coverage_target": args.coverage_target}
    if args.time_limit_per_unit is not None:
        options["time_limit_per_unit"] = args.time_limit_per_unit
    scope = "province" if not codes else "counties " + ",".join(codes)
    print(f"{scope}: {data}  (log: {log})", flush=True)
    print(f"machine: {machine()}", flush=True)

    rows = []
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    for i, c in enumerate(configs):
        rd = args.out / f"run_{c}"
        rd.mkdir(parents=True, exist_ok=True)
        cfg = {"config": c, "data": str(data), "options": options, "result_dir": str(rd),
               "facilities": not args.no_facilities, "roster": args.roster, "profile": args.profile,
               "write_plan": args.lookup and i == 0}
        print(f"running {c} ...", flush=True)
        t = time.perf_counter()
        res, peak = run_child("plan", cfg, log)
        res["process_wall_s"] = round(time.perf_counter() - t, 1)
        res["peak_rss_gb"] = round(peak, 2)
        res["result_dir"] = str(rd)
        rows.append(res)
        print(f"  {c}: {res['wall_s']} s, peak RSS {peak:.2f} GB, {res['runtime_s']}", flush=True)

    base = next((r for r in rows if r["config"] == "1"), None)
    first_local = next((r for r in rows if r["config"] != "dask"), None)
    for r in rows:
        r["households_per_s"] = round(r["households"] / r["wall_s"]) if r["wall_s"] else None
        if base is not None and r is not base:
            r["speedup_vs_1"] = round(base["wall_s"] / r["wall_s"], 2)
            r["partition_speedup_vs_1"] = round(base["runtime_s"]["partition"] / r["runtime_s"]["partition"], 2)
        if r["config"] == "dask" and first_local is not None:
            ok, msg = same_grids(Path(first_local["result_dir"]) / "grids.parquet",
                                 Path(r["result_dir"]) / "grids.parquet")
            r["identical_to_local"] = ok
            r["identical_detail"] = msg

    lookup = None
    if args.lookup and rows:
        print("lookup index ...", flush=True)
        lookup, peak = run_child("lookup", {"plan_dir": str(Path(rows[0]["result_dir"]) / "plan"),
                                            "data": str(data)}, log)
        lookup["peak_rss_gb"] = round(peak, 2)

    stages = sorted({k for r in rows for k in (r["runtime_s"] or {}) if k != "total"})
    head = ["config", "units", "households", "grids", *[f"{s} s" for s in stages], "total s", "hh/s",
            "peak RSS GB", "speed-up", "identical"]
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        rt = r["runtime_s"] or {}
        cells = [f"jobs={r['config']}" if r["config"] != "dask" else "dask LocalCluster(2)", r["units"],
                 f"{r['households']:,}", r["grids"], *[rt.get(s, "") for s in stages], r["wall_s"],
                 f"{r['households_per_s']:,}", r["peak_rss_gb"],
                 r.get("speedup_vs_1", ""), r.get("identical_to_local", "")]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if lookup:
        print(f"\nlookup: {lookup}")
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "scope": scope, "data": str(data),
              "input_totals": manifest.get("totals") if not codes else None, "options": options,
              "runs": rows, "lookup": lookup, "load_average": os.getloadavg()}
    (args.out / "results.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"\nwrote {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
