"""The raster pre-filter of ``geo.index.GridIndex``: which grid (or which few candidates) per cell.

A uniform raster of square cells covers the grids' extent (about ``cells_per_grid`` cells per
grid). Every polygon ring is densified to segments shorter than a cell; each segment marks the
(at most 2 x 2) cells its bounding box touches as *boundary* cells, together with its polygon; the
grid under each boundary cell's centre joins its candidates too (a grid covering the whole cell has
no segment in it). A cell that no ring passes through lies wholly inside one grid or outside all of
them, and so does every cell 4-connected to it without crossing a boundary cell: those components
are labelled with ``scipy.ndimage.label`` and one representative centre per component is looked up
exactly — the whole component takes that answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely


@dataclass
class Raster:
    x0: float
    y0: float
    inv: float          # 1 / cell size
    nx: int
    ny: int
    label: np.ndarray   # int32 per cell: >= 0 grid index, -1 outside every grid, -2 - k boundary cell k
    cand_ptr: np.ndarray  # CSR over boundary cells -> candidate grid indices (ascending)
    cand_idx: np.ndarray


def build_raster(polys: np.ndarray, exact, cells_per_grid: float) -> Raster:
    """The raster over ``polys`` (see the module docstring). ``exact(x, y)``: the lowest polygon
    index covering each point (-1 for none), used for cell centres and component representatives.
    """
    n_polys = len(polys)
    from scipy import ndimage

    if n_polys == 0:
        return Raster(0.0, 0.0, 1.0, 0, 0, np.full(0, -1, np.int32), np.zeros(1, np.int64), np.zeros(0, np.int64))
    minx, miny, maxx, maxy = shapely.total_bounds(polys)
    w, h = max(maxx - minx, 1e-9), max(maxy - miny, 1e-9)
    n_cells = min(max(cells_per_grid * n_polys, 256.0), 2.0e7)
    cs = math.sqrt(w * h / n_cells)
    cs = max(cs, max(w, h) / 8192.0, 1e-12)
    nx, ny = int(math.floor(w / cs)) + 1, int(math.floor(h / cs)) + 1
    inv = 1.0 / cs

    # boundary cells: densified ring segments mark their bounding boxes of cells
    parts = shapely.get_parts(polys, return_index=True)
    rings, ring_poly = [], []
    for geoms, owners in [parts]:
        polys_only = shapely.get_type_id(geoms) == 3
        geoms, owners = geoms[polys_only], owners[polys_only]
        ext = shapely.get_exterior_ring(geoms)
        rings.append(ext)
        ring_poly.append(owners)
        n_int = shapely.get_num_interior_rings(geoms)
        if n_int.sum():
            for k in range(int(n_int.max())):
                has = n_int > k
                rings.append(shapely.get_interior_ring(geoms[has], k))
                ring_poly.append(owners[has])
    rings = np.concatenate(rings)
    ring_poly = np.concatenate(ring_poly)
    rings = shapely.segmentize(rings, cs * 0.5)
    xy, ridx = shapely.get_coordinates(rings, return_index=True)
    same = ridx[1:] == ridx[:-1]
    a, b = xy[:-1][same], xy[1:][same]
    owner = ring_poly[ridx[:-1][same]]
    ix0 = np.floor((np.minimum(a[:, 0], b[:, 0]) - minx) * inv).astype(np.int64)
    ix1 = np.floor((np.maximum(a[:, 0], b[:, 0]) - minx) * inv).astype(np.int64)
    iy0 = np.floor((np.minimum(a[:, 1], b[:, 1]) - miny) * inv).astype(np.int64)
    iy1 = np.floor((np.maximum(a[:, 1], b[:, 1]) - miny) * inv).astype(np.int64)
    cells, owners = [], []
    for dx in (0, 1):
        for dy in (0, 1):
            ok = (ix0 + dx <= ix1) & (iy0 + dy <= iy1)
            cx = np.clip(ix0[ok] + dx, 0, nx - 1)
            cy = np.clip(iy0[ok] + dy, 0, ny - 1)
            cells.append(cy * nx + cx)
            owners.append(owner[ok])
    cells = np.concatenate(cells)
    owners = np.concatenate(owners)
    # A cell marked by a segment's bounding box need not meet that segment, so a grid covering
    # the whole cell may have no segment there: add the grid under each marked cell's centre.
    marked = np.unique(cells)
    centre = exact(minx + (marked % nx + 0.5) * cs, miny + (marked // nx + 0.5) * cs)
    has = centre >= 0
    cells = np.concatenate([cells, marked[has]])
    owners = np.concatenate([owners, centre[has]])
    key = np.unique(cells * np.int64(n_polys) + owners)  # sorted by cell, then grid
    pc, po = key // n_polys, key % n_polys
    bcells, first = np.unique(pc, return_index=True)
    cand_ptr = np.append(first, len(key)).astype(np.int64)
    cand_idx = po.astype(np.int64)

    label = np.full(nx * ny, -1, dtype=np.int32)
    boundary = np.zeros(nx * ny, dtype=bool)
    boundary[bcells] = True
    comp, n_comp = ndimage.label(~boundary.reshape(ny, nx))
    comp = comp.ravel()
    if n_comp:
        # one representative cell per component -> exact lookup of its centre
        order = np.argsort(comp, kind="stable")
        sorted_comp = comp[order]
        starts = np.searchsorted(sorted_comp, np.arange(1, n_comp + 1))
        rep = order[starts]
        rx = minx + (rep % nx + 0.5) * cs
        ry = miny + (rep // nx + 0.5) * cs
        comp_label = exact(rx, ry)
        lut = np.concatenate([[-1], comp_label]).astype(np.int32)
        label = lut[comp]
    label[bcells] = -2 - np.arange(len(bcells), dtype=np.int32)
    return Raster(minx, miny, inv, nx, ny, label, cand_ptr, cand_idx)
