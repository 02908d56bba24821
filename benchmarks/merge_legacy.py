"""Merging generated legacy layers back into one grid layer: agreement with the truth, contract, balance.

For each sample county (``sample_small``, and ``sample`` unless ``--small-only``): the truth is a
gridplan plan of it; three legacy layers are derived from the truth by one kind of change each
(``benchmarks/make_legacy.py``: merges, splits, shifted boundaries, on at most ``--share`` of the
grids); ``optimize.merge.merge_layers`` merges them. Measured: adjusted Rand index of household
labels (households weighted) merged vs truth, per-layer agreement (ARI, legacy boundary reused),
the balance figures (uncertified misses), the contract checker (``../shared/tools/check_plan.py
--certify``, when present), the crosswalk share sums, and the seconds.

Targets (issue 13): ARI with the truth >= 0.9, every contract rule holding, balance certified,
crosswalk shares summing to 1 per legacy grid and per new grid.

    python benchmarks/merge_legacy.py [--share 0.2] [--seed 1] [--small-only]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.make_legacy import legacy_layers  # noqa: E402
from benchmarks.record import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECKERS = [ROOT.parent / "shared" / "tools" / "check_plan.py", Path("/work/shared/tools/check_plan.py")]


def _check(out: Path, paths: dict) -> dict | None:
    checker = next((c for c in CHECKERS if c.exists()), None)
    if checker is None:
        return None
    r = subprocess.run([sys.executable, str(checker), str(out), "--boundaries", str(paths["boundaries"]),
                        "--households", str(paths["households"]), "--certify"], capture_output=True, text=True)
    last = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    return {"ok": bool(last.get("ok")), "fails": last.get("fails"),
            "uncertified_miss_grids": last.get("facts", {}).get("uncertified_miss_grids")}


def run(name: str, share: float, seed: int, tmp: Path) -> dict:
    """Plan the truth, derive the layers, merge them; return the figures of one county."""
    from gridplan import plan
    from gridplan.geo.samples import sample_paths
    from gridplan.optimize.agreement import adjusted_rand_index
    from gridplan.optimize.merge import merge_layers, write_merge
    p = sample_paths(name)
    t = time.perf_counter()
    truth = plan(p["boundaries"], p["households"], p.get("facilities"), p.get("roster"), time_limit_per_unit=3.0)
    truth_s = time.perf_counter() - t
    metric = truth.grids.to_crs(truth.grids.estimate_utm_crs())
    layers = {k: v.to_crs(4326) for k, v in legacy_layers(metric, share, seed).items()}
    t = time.perf_counter()
    merged, report = merge_layers(layers, p["boundaries"], p["households"], p.get("facilities"), p.get("roster"),
                                  time_limit_per_unit=3.0)
    merge_s = time.perf_counter() - t
    out = write_merge(merged, report, tmp / name)
    a = truth.households["grid_code"].to_numpy(object)
    b = merged.households["grid_code"].to_numpy(object)
    ok = pd.notna(a) & pd.notna(b)
    cw = report.crosswalk
    sums = [cw.groupby(["layer", key])[col].sum() for key, col in (("legacy_grid_id", "share_of_legacy"),
                                                                      ("grid_code", "share_of_new"))]
    bal = merged.summary["balance"]
    return {"county": name, "households": int(merged.summary["households"]), "grids": len(merged.grids),
            "truth_grids": len(truth.grids),
            "legacy_grids": {lay["layer"]: lay["legacy_grids"] for lay in report.layers},
            "ari_with_truth": round(adjusted_rand_index(a[ok], b[ok], truth.households["households"].to_numpy()[ok]), 6),
            "layers": [{k: lay[k] for k in ("layer", "ari", "boundary_reused_share")} for lay in report.layers],
            "balance": {k: bal.get(k) for k in ("within_tolerance_share", "max_abs_dev", "uncertified_miss_grids",
                                                "certified_miss_grids", "failed_grids")},
            "truth_balance": {k: truth.summary["balance"].get(k) for k in ("within_tolerance_share",
                                                                           "uncertified_miss_grids")},
            "partition_statuses": merged.summary["partition"]["statuses"],
            "crosswalk_share_sums_max_error": float(max(np.abs(s - 1).max() for s in sums)),
            "checker": _check(out, p), "truth_s": round(truth_s, 2), "merge_s": round(merge_s, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small-only", action="store_true")
    args = ap.parse_args()
    names = ["sample_small"] + ([] if args.small_only else ["sample"])
    with tempfile.TemporaryDirectory() as d:
        rows = [run(n, args.share, args.seed, Path(d)) for n in names]
    for r in rows:
        print(f"{r['county']}: ARI with truth {r['ari_with_truth']:.4f}, uncertified misses "
              f"{r['balance']['uncertified_miss_grids']} (truth {r['truth_balance']['uncertified_miss_grids']}), "
              f"checker {r['checker']}, merge {r['merge_s']} s")
    record("merge_legacy", {"share": args.share, "seed": args.seed, "counties": rows},
           notes="targets: ARI with the truth >= 0.9, contract checker ok, balance certified (no uncertified "
                 "miss), crosswalk shares sum to 1")


if __name__ == "__main__":
    main()
