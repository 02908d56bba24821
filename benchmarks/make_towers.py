"""Generate a seeded tower-block county: the kind of county where balance is hardest.

    python benchmarks/make_towers.py                      # -> benchmarks/out/towers/ (~125k households)
    python benchmarks/make_towers.py --out /tmp/t --seed 7 --households 60000

Like the hidden counties of issue "Every figure true": communities of up to ~20 grids full of
tower blocks of up to 260 households, most towers written as 2–4 *entrances* (one household row
each) 0.2–0.6 m apart, beside mid-rise blocks, shophouses and villages of single houses.

Built on ``benchmarks/make_province.py``: one real county outline (Sanya, 460200, by default) with
its synthetic townships, units and household points (``make_province.generate`` with a household
and unit scale chosen for ~125k households), then every point of 40 or more households becomes a
tower: split into towers of at most 260 households (a few tens of metres apart), each tower into
2–4 entrances along a line (gaps 0.2–0.6 m, ~5 cm of jitter across it), or — three towers in ten
— kept as one row of up to 260 households. Entrances keep their
households exactly (the county's total does not change) and share the population and weight of
the point they came from. Entrance coordinates are written unrounded
(float64), so the decimetre gaps survive.

Writes into ``--out`` what ``gridplan plan`` reads: ``boundaries.gpkg`` (``village_code`` ...),
``households.parquet`` and the same rows as ``households.csv`` (``id, lon, lat, households,
population, weight``; the checker reads CSV), ``facilities.csv``,
``roster.csv`` and ``manifest.json`` (make_province's, with a ``towers`` section: seed, counts,
the largest tower, the grid counts k the units get at 300 households per grid).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as ``python benchmarks/make_towers.py``
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import make_province as mp  # noqa: E402

SEED = 11
COUNTY = "460200"
HOUSEHOLDS = 125_000
UNIT_SCALE = 0.35         # a third of Sanya's communities: bigger ones, up to ~20 grids
TOWER_FROM = 40           # points of this many households or more become towers
TOWER_MAX = 260
SINGLE_ENTRANCE = 0.3     # share of towers written as one row (all households at one entrance)
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "towers"


def entrances(sizes: np.ndarray, rng: np.random.Generator) -> tuple[list[int], list[np.ndarray], list[int]]:
    """For each point (by index) of ``sizes``: towers of <= TOWER_MAX, each as 1–4 entrances.

    Returns (source point of each entrance row, metric offsets of each row from its point,
    households of each row)."""
    src, off, hh = [], [], []
    for i, h in enumerate(sizes.tolist()):
        n_t = math.ceil(h / TOWER_MAX)
        per = np.full(n_t, h // n_t) + (np.arange(n_t) < h % n_t)
        for t, ht in enumerate(per.tolist()):
            centre = np.zeros(2) if t == 0 else rng.normal(0, 25.0, 2)
            m = 1 if rng.random() < SINGLE_ENTRANCE else int(min(ht, rng.integers(2, 5)))
            split = rng.multinomial(ht - m, np.full(m, 1.0 / m)) + 1
            ang = rng.uniform(0, np.pi)
            along = np.r_[0.0, np.cumsum(rng.uniform(0.2, 0.6, m - 1))]
            along -= along.mean()
            across = rng.uniform(-0.05, 0.05, m)
            d = np.array([np.cos(ang), np.sin(ang)])
            n = np.array([-d[1], d[0]])
            for j in range(m):
                src.append(i)
                off.append(centre + along[j] * d + across[j] * n)
                hh.append(int(split[j]))
    return src, off, hh


def towerize(hh_df, rng: np.random.Generator):
    """The households table with every point of >= TOWER_FROM households replaced by tower entrances."""
    import pandas as pd
    from data import make_sample as ms
    big = hh_df["households"].to_numpy() >= TOWER_FROM
    rows = hh_df.loc[big].reset_index(drop=True)
    src, off, sizes = entrances(rows["households"].to_numpy(np.int64), rng)
    src = np.asarray(src, dtype=np.int64)
    off = np.asarray(off, dtype=float).reshape(-1, 2)
    sizes = np.asarray(sizes, dtype=np.int64)
    x, y = ms.to_metric_xy(rows["lon"].to_numpy(float), rows["lat"].to_numpy(float))
    lon, lat = ms.to_wgs_xy(np.asarray(x)[src] + off[:, 0], np.asarray(y)[src] + off[:, 1])
    share = sizes / rows["households"].to_numpy(float)[src]
    ent = pd.DataFrame({
        "id": [f"{rows['id'][s]}E{j}" for j, s in enumerate(src.tolist())],
        "lon": lon, "lat": lat, "households": sizes,
        # population and weight split in proportion, largest remainder so the totals stay exact
        "population": _split_exact(rows["population"].to_numpy(np.int64), src, share),
        "weight": _split_exact(rows["weight"].to_numpy(np.int64), src, share),
    })
    out = pd.concat([hh_df.loc[~big], ent], ignore_index=True)
    return out, {"towers_from_points": int(big.sum()), "entrance_rows": int(len(ent)),
                 "largest_row": int(sizes.max()) if len(sizes) else 0}


def _split_exact(total: np.ndarray, src: np.ndarray, share: np.ndarray) -> np.ndarray:
    raw = total[src] * share
    out = np.floor(raw).astype(np.int64)
    rest = total - np.bincount(src, weights=out, minlength=len(total)).astype(np.int64)
    order = np.lexsort((-(raw - out), src))
    rank = np.arange(len(src)) - np.searchsorted(src[order], src[order])
    out[order[rank < rest[src[order]]]] += 1
    return out


def generate(out: Path, seed: int = SEED, households: int = HOUSEHOLDS, county: str = COUNTY,
             unit_scale: float = UNIT_SCALE, verbose: bool = True) -> dict:
    """Generate the tower county into ``out``; returns the manifest."""
    import geopandas as gpd
    import pandas as pd
    base = mp._households_per_county([c for c in mp.COUNTIES if c.code == county], 1.0)[county]
    manifest = mp.generate(out, seed=seed, counties=[county], hh_scale=households / base,
                           unit_scale=unit_scale, verbose=False)
    rng = np.random.default_rng([seed, 260])
    hh = pd.read_parquet(out / "households.parquet")
    before = int(hh["households"].sum())
    hh, info = towerize(hh, rng)
    assert int(hh["households"].sum()) == before
    hh.to_parquet(out / "households.parquet", index=False, compression="zstd")
    hh.to_csv(out / "households.csv", index=False, float_format="%.9f")   # what check_plan.py reads
    # k per unit at 300 households per grid, for the manifest
    units = gpd.read_file(out / "boundaries.gpkg")
    pts = gpd.GeoDataFrame(hh, geometry=gpd.points_from_xy(hh.lon, hh.lat), crs=4326)
    j = gpd.sjoin(pts, units[["village_code", "geometry"]], predicate="within", how="inner")
    per_unit = j.groupby("village_code")["households"].sum()
    k = np.maximum(1, np.floor(per_unit / 300 + 0.5)).astype(int)
    info.update(seed=seed, households=int(hh["households"].sum()), rows=int(len(hh)),
                units=int(len(units)), k_max=int(k.max()), units_k_ge_5=int((k >= 5).sum()),
                grids_at_300=int(k.sum()))
    manifest["towers"] = info
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    if verbose:
        print(json.dumps(info, ensure_ascii=False))
        print(f"wrote {out}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--households", type=int, default=HOUSEHOLDS)
    ap.add_argument("--county", default=COUNTY, help="a make_province county code (its outline)")
    ap.add_argument("--unit-scale", type=float, default=UNIT_SCALE)
    a = ap.parse_args(argv)
    generate(a.out, a.seed, a.households, a.county, a.unit_scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
