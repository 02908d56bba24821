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
    """The raster of one index: per cell, its grid, "outside" or a short list of candidates.

    Cell ``(ix, iy)`` covers ``x0 + [ix, ix + 1) / inv`` by ``y0 + [iy, iy + 1) / inv`` and is
    number ``iy * nx + ix`` in ``label``.
    """

    x0: float
    y0: float
    inv: float          # 1 / cell size
    nx: int
    ny: int
    label: np.ndarray   # int32 per cell: >= 0 grid index, -1 outside every grid, -2 - k boundary cell k
    cand_ptr: np.ndarray  # CSR over boundary cells -> candidate grid indices (ascending)
    cand_idx: np.ndarray


def build_raster(polys: np.ndarray, exact, cells_per_grid: float) -> Raster:
    """Build the raster over ``polys`` (see the module docstring).

    Parameters
    ----------
    polys : numpy.ndarray
        The grids' (Multi)Polygons; a cell's answer is an index into this array.
    exact : callable
        ``exact(x, y)``: the lowest polygon index covering each point (-1 for none), used for cell
        centres and component representatives.
    cells_per_grid : float
        About how many cells per grid (the raster has at most 2e7 cells).

    Returns
    -------
    Raster
    """
    n_polys = len(polys)
    if n_polys == 0:
        return Raster(0.0, 0.0, 1.0, 0, 0, np.full(0, -1, np.int32), np.zeros(1, np.int64), np.zeros(0, np.int64))
    minx, miny, maxx, maxy = shapely.total_bounds(polys)
    w, h = max(maxx - minx, 1e-9), max(maxy - miny, 1e-9)
    n_cells = min(max(cells_per_grid * n_polys, 256.0), 2.0e7)
    cs = math.sqrt(w * h / n_cells)
    cs = max(cs, max(w, h) / 8192.0, 1e-12)
    nx, ny = int(math.floor(w / cs)) + 1, int(math.floor(h / cs)) + 1
    inv = 1.0 / cs

    cells, owners = _segment_cells(polys, cs, minx, miny, nx, ny)
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

    label = _component_labels(bcells, exact, minx, miny, cs, nx, ny)
    label[bcells] = -2 - np.arange(len(bcells), dtype=np.int32)
    return Raster(minx, miny, inv, nx, ny, label, cand_ptr, cand_idx)


def _rings(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return every exterior and interior ring of ``polys`` and the index of the polygon it bounds."""
    geoms, owners = shapely.get_parts(polys, return_index=True)
    polys_only = shapely.get_type_id(geoms) == 3
    geoms, owners = geoms[polys_only], owners[polys_only]
    rings, ring_poly = [shapely.get_exterior_ring(geoms)], [owners]
    n_int = shapely.get_num_interior_rings(geoms)
    if n_int.sum():
        for k in range(int(n_int.max())):
            has = n_int > k
            rings.append(shapely.get_interior_ring(geoms[has], k))
            ring_poly.append(owners[has])
    return np.concatenate(rings), np.concatenate(ring_poly)


def _segment_cells(polys, cs: float, minx: float, miny: float, nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """Mark boundary cells: the cells of each densified ring segment's bounding box, with its polygon.

    Returns
    -------
    cells, owners : numpy.ndarray
        Cell numbers and polygon indices, one pair per mark (repeats included).
    """
    inv = 1.0 / cs
    rings, ring_poly = _rings(polys)
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
    return np.concatenate(cells), np.concatenate(owners)


def _component_labels(bcells, exact, minx: float, miny: float, cs: float, nx: int, ny: int) -> np.ndarray:
    """Label the non-boundary cells: each 4-connected component takes the answer at one representative centre.

    Returns an int32 array over all cells (-1 outside every grid; boundary cells -1 too, for the
    caller to overwrite).
    """
    from scipy import ndimage

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
    return label
