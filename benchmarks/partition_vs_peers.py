"""The same units through gridplan and its peers, in one run; the table goes to benchmarks/README.md.

    python benchmarks/partition_vs_peers.py [--houses 2208] [--k 10] [--spopt-cap 60] [--write]

Instance: one seeded single-house unit (a concave village of ``--houses`` houses, one house per
point, clustered hamlets), k grids. Methods:
  gridplan          optimize.partition.partition_unit (tolerance ±5%, like GerryChain's run)
  kmeans+voronoi    weighted k-means of the points, grids = union of each cluster's Voronoi cells
  gerrychain        recursive_tree_part on the same cell graph (same k, ±5%)
  spopt RKM         RegionKMeansHeuristic (same k) on the same cell graph
  spopt MaxP        MaxPHeuristic, floor = target households, under a time cap (own process)
Figures: share of grids within ±10% and ±5% of the mean, max deviation, Polsby-Popper mean /
p10 of the dissolved grid polygons, disconnected grids, seconds.
"""
from __future__ import annotations

import argparse
import datetime
import multiprocessing as mpr
import os
import platform
import sys
import time

import numpy as np
import shapely

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from geo.cells import build_cells  # noqa: E402
from geo.grids import dissolve_cells, polsby_popper  # noqa: E402


def village(houses: int, seed: int):
    r = np.random.default_rng(seed)
    ang = np.sort(r.uniform(0, 2 * np.pi, 14))
    rad = r.uniform(900, 1500, 14)
    unit = shapely.Polygon(np.c_[rad * np.cos(ang), rad * np.sin(ang)] + [4.5e5, 2.1e6]).buffer(0)
    centres = r.uniform(unit.bounds[:2], unit.bounds[2:], size=(12, 2))
    pts = []
    while len(pts) < houses:
        c = centres[r.integers(len(centres))]
        p = c + r.normal(0, 180, 2) if r.random() < 0.8 else r.uniform(unit.bounds[:2], unit.bounds[2:])
        if unit.contains(shapely.Point(p)):
            pts.append(p)
    return unit, np.array(pts)


def score(name, polys, labels_h, k, secs, notes=""):
    h = np.asarray(labels_h, float)
    mean = h.sum() / k
    dev = np.abs(h - mean) / mean
    pp = polsby_popper(polys)
    multi = sum(p.geom_type != "Polygon" for p in polys)
    return dict(method=name, k=k, within10=float(np.mean(dev <= 0.10 + 1e-9)), within5=float(np.mean(dev <= 0.05 + 1e-9)),
                max_dev=float(dev.max()), pp_mean=float(pp.mean()), pp_p10=float(np.quantile(pp, 0.1)),
                disconnected=int(multi), seconds=secs, notes=notes)


def cell_frame(g):
    import geopandas as gpd
    return gpd.GeoDataFrame({"households": g.households.astype(float)}, geometry=list(g.polygons), crs="EPSG:4546")


def run_gridplan(unit, xy, k, target, tol):
    from optimize.options import PlanOptions
    from optimize.partition import partition_unit
    t = time.perf_counter()
    r = partition_unit(unit, xy, np.ones(len(xy), int), target, PlanOptions(tolerance=tol))
    return score(f"gridplan (±{tol:.0%})", r.polygons, r.households, r.k, time.perf_counter() - t, r.status)


def run_kmeans(unit, xy, g, mp, k, seed):
    from sklearn.cluster import KMeans
    t = time.perf_counter()
    km = KMeans(k, n_init=4, random_state=seed).fit(mp.xy, sample_weight=mp.households)
    lab = np.zeros(g.n, int)
    # empty cells (none here: one cell per point) follow the nearest labelled point
    lab[g.point_cell] = km.labels_
    polys = dissolve_cells(g.polygons, lab, k)
    h = np.bincount(km.labels_, weights=mp.households, minlength=k)
    return score("weighted k-means + Voronoi", polys, h, k, time.perf_counter() - t)


def run_gerrychain(g, k, seed, eps=0.05):
    import random

    import networkx as nx
    from gerrychain import Graph
    from gerrychain.tree import recursive_tree_part
    t = time.perf_counter()
    G = nx.Graph()
    for i in range(g.n):
        G.add_node(i, pop=float(g.households[i]))
    G.add_edges_from((int(a), int(b)) for a, b in g.edges)
    random.seed(seed)
    tot = float(g.households.sum())
    part = recursive_tree_part(Graph.from_networkx(G), range(k), tot / k, "pop", eps)
    lab = np.array([part[i] for i in range(g.n)])
    polys = dissolve_cells(g.polygons, lab, k)
    h = np.bincount(lab, weights=g.households, minlength=k)
    return score(f"GerryChain recursive_tree_part (±{eps:.0%})", polys, h, k, time.perf_counter() - t)


def _spopt_worker(kind, g_polys, hh, edges, k, floor, q):
    import geopandas as gpd
    import libpysal
    from spopt.region import MaxPHeuristic, RegionKMeansHeuristic
    t = time.perf_counter()
    gdf = gpd.GeoDataFrame({"households": hh, "x": [p.centroid.x for p in g_polys], "y": [p.centroid.y for p in g_polys]},
                           geometry=list(g_polys))
    neigh = {i: [] for i in range(len(hh))}
    for a, b in edges:
        neigh[int(a)].append(int(b))
        neigh[int(b)].append(int(a))
    w = libpysal.weights.W(neigh, silence_warnings=True)
    if kind == "rkm":
        m = RegionKMeansHeuristic(gdf[["x", "y"]].to_numpy(), k, w)
        m.solve()
        lab = np.asarray(m.labels_)
    else:
        m = MaxPHeuristic(gdf, w, ["x", "y"], "households", floor, top_n=2, max_iterations_construction=20)
        m.solve()
        lab = np.asarray(m.labels_)
    q.put((lab, time.perf_counter() - t))


def run_spopt(kind, g, k, floor, cap):
    ctx = mpr.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_spopt_worker, args=(kind, g.polygons, g.households.astype(float), g.edges, k, floor, q))
    t = time.perf_counter()
    p.start()
    p.join(cap)
    name = "spopt RegionKMeansHeuristic" if kind == "rkm" else f"spopt MaxPHeuristic (floor {floor:.0f})"
    if p.is_alive():
        p.terminate()
        p.join()
        return dict(method=name, k=k, within10=float("nan"), within5=float("nan"), max_dev=float("nan"),
                    pp_mean=float("nan"), pp_p10=float("nan"), disconnected=0, seconds=time.perf_counter() - t,
                    notes=f"did not finish in {cap:.0f} s")
    lab, secs = q.get()
    _, lab = np.unique(lab, return_inverse=True)
    kk = int(lab.max()) + 1
    polys = dissolve_cells(g.polygons, lab, kk)
    h = np.bincount(lab, weights=g.households, minlength=kk)
    return score(name, polys, h, kk, secs)


def table(rows):
    out = ["| method | k | within ±10% | within ±5% | max dev | PP mean | PP p10 | disconnected | seconds | notes |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda v, d=3: "—" if v != v else f"{v:.{d}f}"  # noqa: E731
        out.append(f"| {r['method']} | {r['k']} | {f(r['within10'], 2)} | {f(r['within5'], 2)} | {f(r['max_dev'])} | "
                   f"{f(r['pp_mean'])} | {f(r['pp_p10'])} | {r['disconnected']} | {r['seconds']:.2f} | {r['notes']} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--houses", type=int, default=2208)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spopt-cap", type=float, default=60.0)
    ap.add_argument("--write", action="store_true", help="replace the table in benchmarks/README.md")
    a = ap.parse_args()
    unit, xy = village(a.houses, a.seed)
    target = a.houses / a.k
    mp, g = build_cells(unit, xy)          # one cell per house: the peers' input graph
    rows = [run_gridplan(unit, xy, a.k, target, 0.05), run_gridplan(unit, xy, a.k, target, 0.10),
            run_kmeans(unit, xy, g, mp, a.k, a.seed), run_gerrychain(g, a.k, a.seed),
            run_spopt("rkm", g, a.k, target, a.spopt_cap), run_spopt("maxp", g, a.k, target, a.spopt_cap)]
    t = table(rows)
    print(t)
    gc = next(r for r in rows if r["method"].startswith("GerryChain"))
    gp = rows[0]
    print(f"\ngridplan ±5% vs GerryChain: PP mean ratio {gp['pp_mean'] / gc['pp_mean']:.2f}x, "
          f"time ratio {gp['seconds'] / gc['seconds']:.1f}x")
    if a.write:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
        text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
        head = "## Partition vs peers"
        body = (f"{head}\n\n`python benchmarks/partition_vs_peers.py --houses {a.houses} --k {a.k} --write` — "
                f"{datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores (shared), Python "
                f"{platform.python_version()}. One seeded concave village of {a.houses} single houses "
                f"(one cell per house), k = {a.k}; spopt runs in its own process under a {a.spopt_cap:.0f} s cap.\n\n"
                f"{t}\n\ngridplan ±5% vs GerryChain: PP mean {gp['pp_mean'] / gc['pp_mean']:.2f}×, "
                f"time {gp['seconds'] / gc['seconds']:.1f}×.\n")
        if head in text:
            pre, rest = text.split(head, 1)
            nxt = rest.find("\n## ")
            text = pre + body + (rest[nxt + 1:] if nxt >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + body
        open(path, "w").write(text)


if __name__ == "__main__":
    main()
