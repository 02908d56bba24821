"""Province scale: the whole plan on the generated Hainan province, end to end, measured and checked.

    python benchmarks/province.py --data /work/bench/province --configs 2            # Python API, jobs=2
    python benchmarks/province.py --data /work/bench/province --via cli --configs 2  # `gridplan plan --jobs 2`
    python benchmarks/province.py --data D --counties 469029 --configs 1,2,dask --lookup
    python benchmarks/province.py --data D --configs 2 --profile                     # cProfile, top functions

Input: ``benchmarks/make_province.py``'s output (``--data``; generated first if missing):
boundaries.gpkg, households.parquet, facilities.csv, roster.csv. ``--counties`` plans a subset (the
same files cut to those counties, written under ``--out``/subsets/). Each configuration runs in a
fresh child process so that its figures are its own:

* ``--via python`` (default): ``plan(..., jobs=N)`` then ``Plan.to_dir(DIR)`` — plan.gpkg,
  summary.json and report.html — inside the timed span; ``dask`` = the same with ``scheduler=`` a
  ``dask.distributed.LocalCluster`` of 2 single-threaded worker processes started in the child;
* ``--via cli``: ``python -m api.cli plan --boundaries … --households … --facilities … --jobs N
  --out DIR --quiet`` as the measured process (what the issue measured), wall time from spawn to exit.

The parent samples the resident memory of the child and all its descendants (pool workers, Dask
workers) every 0.2 s with psutil: ``peak RSS`` is the largest sum seen. After each run, the
independent checker ``/work/shared/tools/check_plan.py --certify --target-households T`` (``--checker``)
reads the written directory (outside the timed span): strict within-tolerance share, uncertified
misses (grids outside the tolerance in units whose points could be split within it), units with a
wrong grid count, Polsby-Popper mean. Targets (issue "Every figure true"): end to end including
outputs and report <= 10 min, peak RSS <= 6 GB, uncertified misses <= 0.5% of grids.

Also: stage seconds, households/s, speed-up over jobs=1, Dask grids identical to local ones;
``--lookup``: ``GridIndex.from_plan_dir`` load and lookups/s on the first run's plan (fresh child).
Results: benchmarks/results/province-*.json (``benchmarks/record.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
TARGETS = {"end_to_end_s": 600.0, "peak_rss_gb": 6.0, "uncertified_miss_share": 0.005}

from benchmarks.plan_check import DEFAULT_CHECKER, run_checker, same_grids, targets_met  # noqa: E402


# --------------------------------------------------------------------------- input
def ensure_data(data: Path) -> dict:
    if not (data / "manifest.json").exists():
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import make_province
        print(f"generating the province into {data} ...", flush=True)
        make_province.generate(data, jobs=2, verbose=False)
    return json.loads((data / "manifest.json").read_text(encoding="utf-8"))


def subset(data: Path, codes: list[str], root: Path) -> Path:
    """The province's files cut to ``codes`` (ids carry the county code: H/F/W + 6 digits), under ``root``."""
    import geopandas as gpd
    import pandas as pd

    out = root / f"{data.name}_{'_'.join(codes)}"
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

    from gridplan.optimize import plan

    d = Path(cfg["data"])
    kwargs = dict(cfg["options"])
    cluster = None
    if cfg["config"] == "dask":
        from dask.distributed import Client, LocalCluster
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
    plan_s = time.perf_counter() - t0
    t = time.perf_counter()
    p.to_dir(Path(cfg["result_dir"]) / "plan", report=True)     # plan.gpkg, summary.json, report.html
    write_s = time.perf_counter() - t
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
    s = p.summary
    runtime = dict(s.get("runtime_s") or {})
    runtime["output"] = round(write_s, 3)
    return {"config": cfg["config"], "via": "python", "wall_s": round(wall, 2), "plan_s": round(plan_s, 2),
            "runtime_s": runtime, "households": s.get("households"), "units": s.get("units"),
            "grids": s.get("grids"), "stations": s.get("stations"), "coverage": s.get("coverage"),
            "balance": s.get("balance"), "problems": len(s.get("problems", [])),
            "grid_households_total": int(np.asarray(g["households"]).sum())}


def child_lookup(cfg: dict) -> dict:
    import numpy as np
    import pandas as pd
    import psutil

    from gridplan.geo.index import GridIndex

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
class RunFailed(Exception):
    """A measured process failed or ran past its timeout; the figures so far travel with it."""

    def __init__(self, message: str, wall_s: float, peak_gb: float):
        super().__init__(message)
        self.wall_s, self.peak_gb = wall_s, peak_gb


def run_measured(cmd: list[str], log: Path, env: dict | None = None,
                 timeout_s: float | None = None) -> tuple[int, float, float]:
    """Run ``cmd``, sampling the RSS of its whole process tree every 0.2 s.

    Past ``timeout_s`` the process and its descendants (all started here) are killed and
    :class:`RunFailed` is raised. Returns (exit code, wall seconds from spawn to exit, peak RSS in GB)."""
    import psutil

    with open(log, "a", encoding="utf-8") as lf:
        lf.write(f"\n$ {' '.join(cmd)}\n")
        lf.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=lf, stderr=subprocess.STDOUT, env=env)
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
            if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
                _kill_tree(ps)
                proc.wait()
                raise RunFailed(f"killed after the {timeout_s:g} s timeout", time.perf_counter() - t0, peak / 2**30)
            time.sleep(0.2)
        wall = time.perf_counter() - t0
    return proc.returncode, wall, peak / 2**30


def _kill_tree(ps) -> None:
    """Kill a process we started and its descendants, each by pid."""
    import psutil
    try:
        kids = ps.children(recursive=True)
    except psutil.Error:
        kids = []
    for q in [ps, *kids]:
        try:
            q.kill()
        except psutil.Error:
            pass


def run_child(kind: str, cfg: dict, log: Path, timeout_s: float | None = None) -> tuple[dict, float]:
    """Run ``kind`` (plan / lookup) in a fresh interpreter; returns its figures (with ``process_wall_s``,
    spawn to exit) and peak RSS (GB)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cfg, f)
    out = Path(f.name).with_suffix(".out.json")
    rc, wall, peak = run_measured([sys.executable, str(Path(__file__).resolve()), "--child", kind, f.name, str(out)],
                                  log, timeout_s=timeout_s)
    if rc != 0:
        raise RunFailed(f"{kind} {cfg.get('config', '')} failed (exit {rc}); see {log}", wall, peak)
    res = json.loads(out.read_text(encoding="utf-8"))
    res["process_wall_s"] = round(wall, 2)
    os.unlink(f.name)
    os.unlink(out)
    return res, peak


def cli_command(data: Path, out_dir: Path, jobs: str, options: dict, facilities: bool, roster: bool) -> list[str]:
    """``gridplan plan`` on the province's files as a ``python -m api.cli`` command line."""
    cmd = [sys.executable, "-m", "gridplan.api.cli", "plan", "--boundaries", str(data / "boundaries.gpkg"),
           "--households", str(data / "households.parquet"), "--out", str(out_dir), "--jobs", str(jobs), "--quiet"]
    if facilities:
        cmd += ["--facilities", str(data / "facilities.csv")]
    if roster:
        cmd += ["--roster", str(data / "roster.csv")]
    flags = {"time_limit_per_unit": "--time-limit"}
    for k, v in options.items():
        cmd += [flags.get(k, "--" + k.replace("_", "-")), str(v)]
    return cmd


def run_cli(cfg: dict, log: Path, timeout_s: float | None = None) -> tuple[dict, float]:
    """The CLI as the measured process; figures from the summary.json it wrote."""
    import pandas as pd
    import pyogrio

    if cfg["config"] == "dask":
        raise SystemExit("--via cli measures local --jobs N only (no 'dask' config)")
    rd = Path(cfg["result_dir"])
    out_dir = rd / "plan"
    cmd = cli_command(Path(cfg["data"]), out_dir, cfg["config"], cfg["options"], cfg["facilities"], cfg["roster"])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rc, wall, peak = run_measured(cmd, log, env, timeout_s)
    if rc != 0:
        raise RunFailed(f"gridplan plan --jobs {cfg['config']} failed (exit {rc}); see {log}", wall, peak)
    s = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
    g = pyogrio.read_dataframe(out_dir / "plan.gpkg", layer="grids", columns=["grid_code", "village_code",
                                                                              "households"], read_geometry=False)
    pd.DataFrame(g).to_parquet(rd / "grids.parquet", index=False)
    return {"config": cfg["config"], "via": "cli", "command": " ".join(cmd), "wall_s": round(wall, 2),
            "runtime_s": s.get("runtime_s"), "households": s.get("households"), "units": s.get("units"),
            "grids": s.get("grids"), "stations": s.get("stations"), "coverage": s.get("coverage"),
            "balance": s.get("balance"), "problems": len(s.get("problems", [])),
            "grid_households_total": int(g["households"].sum())}, peak


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="working dir: plans, log, subsets (not committed)")
    ap.add_argument("--counties", default="", help="comma-separated county codes (default: the whole province)")
    ap.add_argument("--configs", default="2", help="comma-separated: a number of jobs, or 'dask' (LocalCluster)")
    ap.add_argument("--via", choices=("python", "cli"), default="python",
                    help="python: plan() + Plan.to_dir in a child; cli: `python -m api.cli plan --jobs N`")
    ap.add_argument("--target-households", type=float, default=300.0)
    ap.add_argument("--time-limit-per-unit", type=float, default=None)
    ap.add_argument("--coverage-target", type=float, default=0.9)
    ap.add_argument("--no-facilities", action="store_true", help="plan without the candidate stations file")
    ap.add_argument("--roster", action="store_true", help="also assign the roster")
    ap.add_argument("--lookup", action="store_true", help="measure the lookup index on the first run's plan")
    ap.add_argument("--profile", action="store_true", help="cProfile each plan (profile.txt; --via python only)")
    ap.add_argument("--checker", default=str(DEFAULT_CHECKER), help="check_plan.py ('' to skip)")
    ap.add_argument("--timeout", type=float, default=1800.0,
                    help="kill a configuration's process tree after this many seconds (recorded as failed)")
    return ap.parse_args(argv)


def print_table(rows: list[dict]) -> None:
    stages = sorted({k for r in rows for k in (r["runtime_s"] or {}) if k != "total"})
    head = ["config", "units", "households", "grids", *[f"{s} s" for s in stages], "end to end s", "hh/s",
            "peak RSS GB", "within ±tol", "uncertified", "PP mean", "speed-up", "identical"]
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        rt, chk = r["runtime_s"] or {}, r.get("check") or {}
        name = ("gridplan plan --jobs " if r["via"] == "cli" else "plan(jobs=") + r["config"] + \
            ("" if r["via"] == "cli" else ")") if r["config"] != "dask" else "dask LocalCluster(2)"
        cells = [name, r["units"], f"{r['households']:,}", r["grids"], *[rt.get(s, "") for s in stages],
                 r["wall_s"], f"{r['households_per_s']:,}", r["peak_rss_gb"], chk.get("within_tolerance_share", ""),
                 chk.get("uncertified_miss_share", ""), chk.get("polsby_popper_mean", ""),
                 r.get("speedup_vs_1", ""), r.get("identical_to_local", "")]
        print("| " + " | ".join(str(c) for c in cells) + " |")


def run_config(args, c: str, data: Path, options: dict, log: Path) -> dict:
    """One configuration measured (fresh process), then checked; raises RunFailed."""
    rd = args.out / f"run_{args.via}_{c}"
    if (rd / "plan").exists():
        shutil.rmtree(rd / "plan")      # a stale plan must not be checked as this run's
    rd.mkdir(parents=True, exist_ok=True)
    cfg = {"config": c, "data": str(data), "options": options, "result_dir": str(rd),
           "facilities": not args.no_facilities, "roster": args.roster, "profile": args.profile}
    res, peak = run_cli(cfg, log, args.timeout) if args.via == "cli" else run_child("plan", cfg, log, args.timeout)
    res["peak_rss_gb"] = round(peak, 2)
    res["result_dir"] = str(rd)
    if args.checker:
        print("  checking with check_plan.py ...", flush=True)
        res["check"] = run_checker(Path(args.checker), rd / "plan", data, args.out / "checker_inputs", options,
                                   args.target_households, log, TARGETS["uncertified_miss_share"])
    res["targets_met"] = targets_met(res, TARGETS)
    print(f"  {c}: {res['wall_s']} s end to end, peak RSS {peak:.2f} GB, {res['runtime_s']}", flush=True)
    return res


def compare(rows: list[dict]) -> None:
    """Households/s, speed-up over jobs=1, and the Dask run's identity with the first local run, in place."""
    base = next((r for r in rows if r["config"] == "1"), None)
    first_local = next((r for r in rows if r["config"] != "dask"), None)
    for r in rows:
        r["households_per_s"] = round(r["households"] / r["wall_s"]) if r["wall_s"] else None
        if base is not None and r is not base:
            r["speedup_vs_1"] = round(base["wall_s"] / r["wall_s"], 2)
            bp, rp = (base["runtime_s"] or {}).get("partition"), (r["runtime_s"] or {}).get("partition")
            if bp and rp:
                r["partition_speedup_vs_1"] = round(bp / rp, 2)
        if r["config"] == "dask" and first_local is not None:
            ok, msg = same_grids(Path(first_local["result_dir"]) / "grids.parquet",
                                 Path(r["result_dir"]) / "grids.parquet")
            r["identical_to_local"], r["identical_detail"] = ok, msg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, cfg_path, out_path = argv[1:4]
        cfg = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
        res = child_plan(cfg) if kind == "plan" else child_lookup(cfg)
        Path(out_path).write_text(json.dumps(res), encoding="utf-8")
        return 0

    from benchmarks.record import record

    args = parse_args(argv)
    manifest = ensure_data(args.data)
    codes = [c.strip() for c in args.counties.split(",") if c.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    data = subset(args.data, codes, args.out / "subsets") if codes else args.data
    log = args.out / "log.txt"
    options = {"coverage_target": args.coverage_target, "target_households": args.target_households}
    if args.time_limit_per_unit is not None:
        options["time_limit_per_unit"] = args.time_limit_per_unit
    scope = "province" if not codes else "counties " + ",".join(codes)
    print(f"{scope}: {data}  (log: {log})", flush=True)

    rows, failed = [], []
    for c in [c.strip() for c in args.configs.split(",") if c.strip()]:
        print(f"running {args.via} {c} ...", flush=True)
        try:
            rows.append(run_config(args, c, data, options, log))
        except RunFailed as e:
            failed.append({"config": c, "via": args.via, "error": str(e), "wall_s": round(e.wall_s, 1),
                           "peak_rss_gb": round(e.peak_gb, 2)})
            print(f"  {c}: FAILED — {e}", flush=True)
    compare(rows)

    lookup = None
    if args.lookup and rows:
        print("lookup index ...", flush=True)
        try:
            lookup, peak = run_child("lookup", {"plan_dir": str(Path(rows[0]["result_dir"]) / "plan"),
                                                "data": str(data)}, log, args.timeout)
            lookup["peak_rss_gb"] = round(peak, 2)
        except RunFailed as e:
            lookup = {"error": str(e)}
    print_table(rows)
    if lookup:
        print(f"\nlookup: {lookup}")
    record("province", {"scope": scope, "counties": codes or None, "data": str(data), "via": args.via,
                        "input_totals": manifest.get("totals") if not codes else None, "options": options,
                        "targets": TARGETS, "runs": rows, "failed_runs": failed, "lookup": lookup},
           notes=["wall_s is end to end: --via python from the plan() call to plan.gpkg, summary.json and "
                  "report.html written (process_wall_s adds interpreter start and imports); --via cli from "
                  "spawning `python -m api.cli plan` to its exit",
                  "quality figures (check.*) from the independent check_plan.py --certify on the written directory"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
