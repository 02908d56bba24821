"""Checking a benchmark's plan: the independent checker (``check_plan.py --certify``) on the written
plan, its facts kept; two runs' grids compared; a run held against its targets.

The checker is the project's outside referee (``/work/shared/tools/check_plan.py``): it re-derives
balance, uncertified misses, grid counts and compactness from the files alone. It reads CSV or what
GDAL reads; households.parquet is handed to it as CSV.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CHECKER = Path("/work/shared/tools/check_plan.py")


def checker_households(data: Path, cache: Path) -> Path:
    """The households as CSV (the checker reads CSV or what GDAL reads; this GDAL has no Parquet driver)."""
    import pandas as pd

    csv = cache / f"households_{data.name}.csv"
    src = data / "households.parquet"
    if not csv.exists() or csv.stat().st_mtime < src.stat().st_mtime:
        cache.mkdir(parents=True, exist_ok=True)
        pd.read_parquet(src).to_csv(csv, index=False)
    return csv


def run_checker(checker: Path, plan_dir: Path, data: Path, cache: Path, options: dict, target: float,
                log: Path, max_uncertified_share: float = 0.005) -> dict:
    """check_plan.py --certify --target-households T on a written plan; its JSON (last line) + seconds.

    Parameters
    ----------
    checker : Path
        check_plan.py.
    plan_dir : Path
        The written plan (plan.gpkg, summary.json, report.html).
    data : Path
        The input dir (boundaries.gpkg, households.parquet).
    cache : Path
        Where the households CSV for the checker is kept between runs.
    options : dict
        The plan options (``tolerance`` is passed on).
    target : float
        Households per grid (``--target-households``).
    log : Path
        The checker's output is appended here.
    max_uncertified_share : float
        Passed as ``--max-uncertified-share`` (the target shows in ``fails`` when missed).
    """
    if not checker.is_file():
        return {"error": f"no checker at {checker} (pass --checker PATH to check_plan.py)"}
    cmd = [sys.executable, str(checker), str(plan_dir), "--boundaries", str(data / "boundaries.gpkg"),
           "--households", str(checker_households(data, cache)), "--certify", "--target-households", str(target),
           "--tolerance", str(options.get("tolerance", 0.10)),
           "--max-uncertified-share", str(max_uncertified_share)]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    secs = time.perf_counter() - t
    with open(log, "a", encoding="utf-8") as lf:
        lf.write(f"\n$ {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    last = (r.stdout.strip().splitlines() or [""])[-1]
    try:
        res = json.loads(last)
    except ValueError:
        return {"error": f"checker exit {r.returncode}, no JSON; see {log}", "seconds": round(secs, 1)}
    f = res.get("facts", {})
    return {"ok": res.get("ok"), "fails": res.get("fails"), "seconds": round(secs, 1),
            "grids": f.get("grids"), "within_tolerance_share": f.get("within_tolerance_share"),
            "within_granular_tolerance_share": f.get("within_granular_tolerance_share"),
            "uncertified_miss_grids": f.get("uncertified_miss_grids"),
            "uncertified_miss_share": f.get("uncertified_miss_share"),
            "units_missing_tolerance": f.get("units_missing_tolerance"),
            "certify_undecided_units": f.get("certify_undecided_units"),
            "units_wrong_grid_count": f.get("units_wrong_grid_count"),
            "balance_max_abs_dev": f.get("balance_max_abs_dev"), "polsby_popper_mean": f.get("polsby_popper_mean"),
            "polsby_popper_p10": f.get("polsby_popper_p10"), "coverage_recomputed": f.get("coverage_recomputed"),
            "facts": f}


def same_grids(a: Path, b: Path) -> tuple[bool, str]:
    """Whether two runs' grids (parquet of grid_code, households) are identical, and how many differ."""
    import pandas as pd
    x = pd.read_parquet(a).sort_values("grid_code").reset_index(drop=True)
    y = pd.read_parquet(b).sort_values("grid_code").reset_index(drop=True)
    if len(x) != len(y):
        return False, f"{len(x)} vs {len(y)} grids"
    diff = (x["grid_code"] != y["grid_code"]) | (x["households"] != y["households"])
    return (not diff.any()), f"{int(diff.sum())} of {len(x)} grids differ"


def targets_met(r: dict, targets: dict) -> dict:
    """One run against ``targets`` (end_to_end_s, peak_rss_gb, uncertified_miss_share; None: not measured)."""
    chk = r.get("check") or {}
    u = chk.get("uncertified_miss_share")
    return {"end_to_end_s": r["wall_s"] <= targets["end_to_end_s"],
            "peak_rss_gb": r["peak_rss_gb"] <= targets["peak_rss_gb"],
            "uncertified_miss_share": None if u is None else u <= targets["uncertified_miss_share"]}
