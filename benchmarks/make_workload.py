"""Generate a seeded county where a fifth of the households carry three times the workload.

    python benchmarks/make_workload.py                   # -> benchmarks/out/workload/ (~30k households)
    python benchmarks/make_workload.py --out /tmp/w --seed 5 --households 20000

Built on ``benchmarks/make_province.py`` (one real county outline, Sanya 460200 by default, with
synthetic townships, units and household points). Then, in every unit, an "old quarter" — the rows
nearest a random point of the unit — gets ``elderly_alone = households`` (every household there is
an elderly person living alone), so that with ``--workload "households + 2*elderly_alone"`` those
households weigh 3 each and the others 1 (only rows of at most 40 households: a block of flats is
never all elderly living alone). Each unit's old quarter is sized by a share drawn from
U(0.02, 0.4); rows are taken in order of their depth in their quarter until 20% of the county's
households are heavy: clustered within units, which is what makes household-only balance leave
an unequal workload.

Writes ``boundaries.gpkg``, ``households.parquet`` / ``households.csv`` (``id, lon, lat,
households, population, weight, elderly_alone``) and ``manifest.json`` (with a ``workload`` section:
seed, heavy share, expression).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import make_province as mp  # noqa: E402

SEED = 13
COUNTY = "460200"
HOUSEHOLDS = 30_000
UNIT_SCALE = 0.08          # units of ~6 grids, as in the tower county
HEAVY_SHARE = 0.20
MAX_HEAVY_ROW = 40         # households: bigger rows (blocks of flats) are never all-elderly
EXPRESSION = "households + 2*elderly_alone"
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "workload"


def mark_heavy(hh, unit_of: np.ndarray, rng: np.random.Generator, share: float = HEAVY_SHARE) -> np.ndarray:
    """Return ``elderly_alone`` per row: the households of each unit's old quarter (see the module docstring)."""
    h = hh["households"].to_numpy(np.int64)
    xy = np.column_stack([hh["lon"].to_numpy(float) * np.cos(np.radians(18.3)), hh["lat"].to_numpy(float)])
    priority = np.full(len(h), np.inf)
    for u in np.unique(unit_of[unit_of >= 0]):
        rows = np.flatnonzero(unit_of == u)
        centre = xy[rows[rng.integers(len(rows))]]
        order = rows[np.argsort(np.hypot(*(xy[rows] - centre).T), kind="stable")]
        before = (np.cumsum(h[order]) - h[order]) / h[rows].sum()    # share of the unit nearer the centre
        priority[order] = before / rng.uniform(0.02, 0.4)             # < 1: inside the unit's old quarter
    priority[h > MAX_HEAVY_ROW] = np.inf                               # blocks of flats: mixed, not heavy
    ranked = np.argsort(priority, kind="stable")
    upto = np.searchsorted(np.cumsum(h[ranked]), share * h.sum(), side="left") + 1
    heavy = np.zeros(len(h), dtype=bool)
    heavy[ranked[:upto]] = True
    return np.where(heavy, h, 0)


def generate(out: Path, seed: int = SEED, households: int = HOUSEHOLDS, county: str = COUNTY,
             unit_scale: float = UNIT_SCALE, verbose: bool = True) -> dict:
    """Generate the county into ``out``; returns the manifest."""
    import geopandas as gpd
    import pandas as pd
    base = mp._households_per_county([c for c in mp.COUNTIES if c.code == county], 1.0)[county]
    manifest = mp.generate(out, seed=seed, counties=[county], hh_scale=households / base,
                           unit_scale=unit_scale, verbose=False)
    hh = pd.read_parquet(out / "households.parquet")
    units = gpd.read_file(out / "boundaries.gpkg")
    pts = gpd.GeoDataFrame(hh[["lon", "lat"]], geometry=gpd.points_from_xy(hh.lon, hh.lat), crs=4326)
    j = gpd.sjoin(pts, units[["geometry"]].reset_index(names="u"), predicate="within", how="left")
    unit_of = j.groupby(level=0)["u"].first().reindex(hh.index).fillna(-1).to_numpy(np.int64)
    hh["elderly_alone"] = mark_heavy(hh, unit_of, np.random.default_rng([seed, 3]))
    hh.to_parquet(out / "households.parquet", index=False, compression="zstd")
    hh.to_csv(out / "households.csv", index=False, float_format="%.7f")
    info = {"seed": seed, "households": int(hh["households"].sum()), "rows": int(len(hh)), "units": int(len(units)),
            "heavy_share": round(float(hh["elderly_alone"].sum() / hh["households"].sum()), 4),
            "expression": EXPRESSION}
    manifest["workload"] = info
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if verbose:
        print(json.dumps(info, ensure_ascii=False))
        print(f"wrote {out}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Parse the command line (every default above can be changed) and generate."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--out", DEFAULT_OUT), ("--seed", SEED), ("--households", HOUSEHOLDS),
                          ("--county", COUNTY), ("--unit-scale", UNIT_SCALE)):
        ap.add_argument(flag, type=Path if isinstance(default, Path) else type(default), default=default)
    a = ap.parse_args(argv)
    generate(a.out, a.seed, a.households, a.county, a.unit_scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
