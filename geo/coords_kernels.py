"""The vectorized GCJ-02 / BD-09 kernels behind ``geo.coords``: blocked, in place, threaded.

Each kernel works on blocks of ``_BLOCK`` points in preallocated scratch rows (so ~25 float64
buffers stay in L2 cache), the GCJ-02 harmonics by angle-addition identities instead of one
``np.sin`` per term, and large inputs are spread over a small thread pool (numpy releases the
GIL). The inverses are fixed-point iterations with a proven contraction bound. ``geo.coords``
holds the public functions; this module is their engine.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by the GCJ-02 formula
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

# Contraction bounds used by the inverses' stopping rule (see module docstring). Measured maxima
# of the infinity-norm of the offsets' Jacobians (tests/test_coords.py re-measures them): GCJ-02
# < 0.008 over the China box, BD-09 < 0.03 for |lon|, |lat| <= 180; both bounds leave margin.
_GCJ_LIPSCHITZ = 0.1
_BD_LIPSCHITZ = 0.1

_BLOCK = 8192            # elements per block: ~25 float64 buffers of this size stay in L2
_THREAD_MIN = 65536      # below this, threads cost more than they save
_NBUF = 26


def _n_workers() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_n_workers(), thread_name_prefix="geo-coords")
        return _pool


def _forget_pool() -> None:  # a forked child must not reuse the parent's threads
    global _pool, _pool_lock
    _pool = None
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def out_of_china(lon, lat) -> np.ndarray:
    """Tell which points lie outside the rough box in which GCJ-02 applies.

    Parameters
    ----------
    lon, lat : array_like
        Longitudes and latitudes in degrees.

    Returns
    -------
    numpy.ndarray
        Boolean array, True outside the box (those points are not offset).
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


# ---------------------------------------------------------------------------------------------
# Block kernels. Every kernel works on 1-D float64 views of equal length n <= _BLOCK and takes a
# scratch array ``S`` of shape (_NBUF, _BLOCK); it uses the rows ``S[i, :n]`` as buffers.

_K120 = np.pi / 120.0
_LAT_SCALE = 180.0 / (_A * (1.0 - _EE) * np.pi)
_LON_SCALE = 180.0 / (_A * np.pi)


def _harmonics(v, S, i0: int, full: bool, n: int):
    """Sines of v*pi*k/120 for k = 4, 10, 40, 120 (and 240, 720 if ``full``) in rows from i0.

    Valid (to a few ulps) where |v*pi/120| < pi/2, i.e. everywhere inside the China box; values
    outside it are garbage but are masked out by the caller. Returns the row indices used.
    """
    s, c, t, u = (S[i0 + j, :n] for j in range(4))
    s4, s10, s40, s120 = (S[i0 + 4 + j, :n] for j in range(4))
    np.multiply(v, _K120, out=s)
    np.sin(s, out=s)                       # s1
    np.multiply(s, s, out=t)               # s1^2
    np.subtract(1.0, t, out=c)
    np.sqrt(c, out=c)                      # c1 (>0 for |angle| < pi/2)
    # k=2: s2 = 2 s1 c1, c2 = 1 - 2 s1^2
    np.multiply(s, c, out=s)
    np.multiply(s, 2.0, out=s)
    np.multiply(t, -2.0, out=c)
    np.add(c, 1.0, out=c)                  # (s, c) = k=2
    s2, c2 = S[i0 + 10, :n], S[i0 + 11, :n]
    np.copyto(s2, s)
    np.copyto(c2, c)
    # k=4
    np.multiply(s, s, out=t)
    np.multiply(s, c, out=s4)
    np.multiply(s4, 2.0, out=s4)
    np.multiply(t, -2.0, out=c)
    np.add(c, 1.0, out=c)                  # c4
    # k=8
    np.multiply(s4, s4, out=t)
    np.multiply(s4, c, out=s)
    np.multiply(s, 2.0, out=s)             # s8
    np.multiply(t, -2.0, out=c)
    np.add(c, 1.0, out=c)                  # c8
    # k=10 = 8 + 2
    np.multiply(s, c2, out=s10)
    np.multiply(c, s2, out=t)
    np.add(s10, t, out=s10)                # s10 = s8 c2 + c8 s2
    np.multiply(c, c2, out=u)
    np.multiply(s, s2, out=t)
    np.subtract(u, t, out=c)               # c10 = c8 c2 - s8 s2
    # k=20
    np.multiply(s10, c, out=s)
    np.multiply(s, 2.0, out=s)             # s20
    np.multiply(s10, s10, out=t)
    np.multiply(t, -2.0, out=c)
    np.add(c, 1.0, out=c)                  # c20
    # k=40
    np.multiply(s, c, out=s40)
    np.multiply(s40, 2.0, out=s40)         # s40
    if full:
        np.multiply(s, s, out=t)
        np.multiply(t, -2.0, out=c)
        np.add(c, 1.0, out=c)              # c40
    # k=120: s120 = s40 (3 - 4 s40^2)
    np.multiply(s40, s40, out=t)
    np.multiply(t, -4.0, out=t)
    np.add(t, 3.0, out=t)
    np.multiply(s40, t, out=s120)
    if not full:
        return s4, s10, s40, s120
    # c120 = c40 (4 c40^2 - 3); s240 = 2 s120 c120; s720 = s240 (3 - 4 s240^2)
    s240, s720 = S[i0 + 8, :n], S[i0 + 9, :n]
    np.multiply(c, c, out=t)
    np.multiply(t, 4.0, out=t)
    np.subtract(t, 3.0, out=t)
    np.multiply(c, t, out=t)               # c120
    np.multiply(s120, t, out=s240)
    np.multiply(s240, 2.0, out=s240)
    np.multiply(s240, s240, out=t)
    np.multiply(t, -4.0, out=t)
    np.add(t, 3.0, out=t)
    np.multiply(s240, t, out=s720)
    return s4, s10, s40, s120, s240, s720


def _gcj_delta_block(lon, lat, dlon, dlat, S) -> None:
    """GCJ-02 offset (degrees) of WGS-84 points lon/lat into dlon/dlat; 0 outside China."""
    n = lon.shape[0]
    x, y = S[0, :n], S[1, :n]
    np.subtract(lon, 105.0, out=x)
    np.subtract(lat, 35.0, out=y)
    xs4, xs10, xs40, xs120, xs240, xs720 = _harmonics(x, S, 2, True, n)
    ys4, ys10, ys40, ys120 = _harmonics(y, S, 14, False, n)
    t = S[24, :n]
    # common = (20 sin 6pi x + 20 sin 2pi x) * 2/3
    np.add(xs720, xs240, out=xs720)
    np.multiply(xs720, 40.0 / 3.0, out=xs720)
    com = xs720
    # sqrt|x| and xy
    sq = xs240
    np.abs(x, out=sq)
    np.sqrt(sq, out=sq)
    xy = S[2, :n]
    np.multiply(x, y, out=xy)
    # dlat in the formula's units
    np.multiply(y, 0.2, out=dlat)
    np.add(dlat, 3.0, out=dlat)
    np.multiply(dlat, y, out=dlat)          # 3y + 0.2y^2
    np.multiply(x, 2.0, out=t)
    np.add(dlat, t, out=dlat)
    np.multiply(xy, 0.1, out=t)
    np.add(dlat, t, out=dlat)
    np.multiply(sq, 0.2, out=t)
    np.add(dlat, t, out=dlat)
    np.add(dlat, com, out=dlat)
    np.multiply(ys120, 40.0 / 3.0, out=t)   # (20 sin(pi y) + 40 sin(pi y/3)) 2/3
    np.add(dlat, t, out=dlat)
    np.multiply(ys40, 80.0 / 3.0, out=t)
    np.add(dlat, t, out=dlat)
    np.multiply(ys10, 320.0 / 3.0, out=t)   # (160 sin(pi y/12) + 320 sin(pi y/30)) 2/3
    np.add(dlat, t, out=dlat)
    np.multiply(ys4, 640.0 / 3.0, out=t)
    np.add(dlat, t, out=dlat)
    np.subtract(dlat, 100.0, out=dlat)
    # dlon in the formula's units
    np.multiply(x, 0.1, out=dlon)
    np.add(dlon, 1.0, out=dlon)
    np.multiply(dlon, x, out=dlon)          # x + 0.1x^2
    np.multiply(y, 2.0, out=t)
    np.add(dlon, t, out=dlon)
    np.multiply(xy, 0.1, out=t)
    np.add(dlon, t, out=dlon)
    np.multiply(sq, 0.1, out=t)
    np.add(dlon, t, out=dlon)
    np.add(dlon, com, out=dlon)
    np.multiply(xs120, 40.0 / 3.0, out=t)   # (20 sin(pi x) + 40 sin(pi x/3)) 2/3
    np.add(dlon, t, out=dlon)
    np.multiply(xs40, 80.0 / 3.0, out=t)
    np.add(dlon, t, out=dlon)
    np.multiply(xs10, 100.0, out=t)         # (150 sin(pi x/12) + 300 sin(pi x/30)) 2/3
    np.add(dlon, t, out=dlon)
    np.multiply(xs4, 200.0, out=t)
    np.add(dlon, t, out=dlon)
    np.add(dlon, 300.0, out=dlon)
    _metres_to_degrees(lat, dlon, dlat, S, n)
    _zero_outside_china(lon, lat, dlon, dlat, S, n)


def _metres_to_degrees(lat, dlon, dlat, S, n: int) -> None:
    """Convert the offsets from the formula's metres to degrees on the Krasovsky ellipsoid, in place."""
    t, u = S[24, :n], S[25, :n]
    s2 = S[3, :n]
    np.multiply(lat, np.pi / 180.0, out=s2)
    np.sin(s2, out=s2)
    np.multiply(s2, s2, out=s2)             # sin^2(lat)
    np.multiply(s2, -_EE, out=t)
    np.add(t, 1.0, out=t)                   # magic
    np.sqrt(t, out=u)                       # sqrt(magic)
    np.multiply(t, u, out=t)                # magic^1.5
    np.multiply(t, _LAT_SCALE, out=t)
    np.multiply(dlat, t, out=dlat)
    np.subtract(1.0, s2, out=s2)
    np.sqrt(s2, out=s2)                     # cos(lat) (>0 for |lat| < 90)
    np.divide(u, s2, out=u)
    np.multiply(u, _LON_SCALE, out=u)
    np.multiply(dlon, u, out=dlon)


def _zero_outside_china(lon, lat, dlon, dlat, S, n: int) -> None:
    """No offset outside the China box (NaN compares False, so NaN stays NaN)."""
    m, m2 = S[4, :n].view(bool)[:n], S[5, :n].view(bool)[:n]
    np.less(lon, 72.004, out=m)
    np.greater(lon, 137.8347, out=m2)
    np.logical_or(m, m2, out=m)
    np.less(lat, 0.8293, out=m2)
    np.logical_or(m, m2, out=m)
    np.greater(lat, 55.8271, out=m2)
    np.logical_or(m, m2, out=m)
    np.copyto(dlon, 0.0, where=m)
    np.copyto(dlat, 0.0, where=m)


def _bd_rotate_block(x, y, ox, oy, sign: float, S) -> None:
    """(x, y) scaled by (r + sign*2e-5 sin(y X_PI))/r and turned by sign*3e-6 cos(x X_PI) rad.

    ``sign=+1`` is the published GCJ-02 -> BD-09 map (before adding 0.0065/0.006),
    ``sign=-1`` its usual closed-form approximate inverse (after subtracting them). The angle
    turn is done with cos/sin of the tiny angle as series (|d| <= 3e-6 rad: exact to 1e-24),
    which replaces atan2 + cos + sin of the published form by plain products.
    """
    n = x.shape[0]
    r, f, d, cd, sd, t = (S[j, :n] for j in range(6))
    np.hypot(x, y, out=r)
    np.multiply(y, _X_PI, out=f)
    np.sin(f, out=f)
    np.multiply(f, sign * 0.00002, out=f)
    np.add(f, r, out=f)                      # z
    np.copyto(r, 1.0, where=(r == 0.0))      # the origin: z = 0 there, so the result is 0
    np.divide(f, r, out=f)                   # z / r
    np.multiply(x, _X_PI, out=d)
    np.cos(d, out=d)
    np.multiply(d, sign * 0.000003, out=d)   # turn angle
    np.multiply(d, d, out=t)
    np.multiply(t, -0.5, out=cd)
    np.add(cd, 1.0, out=cd)                  # cos d
    np.multiply(t, -1.0 / 6.0, out=sd)
    np.add(sd, 1.0, out=sd)
    np.multiply(sd, d, out=sd)               # sin d
    np.multiply(x, cd, out=t)
    np.multiply(y, sd, out=r)
    np.subtract(t, r, out=t)
    np.multiply(y, cd, out=r)
    np.multiply(x, sd, out=d)
    np.add(r, d, out=oy)
    np.multiply(oy, f, out=oy)
    np.multiply(t, f, out=ox)


def _bd_forward_block(glon, glat, blon, blat, S) -> None:
    _bd_rotate_block(glon, glat, blon, blat, 1.0, S)
    np.add(blon, 0.0065, out=blon)
    np.add(blat, 0.006, out=blat)


def _step_exceeds(d_new, d_old, factor: float, tol: float) -> bool:
    """Tell whether ``|d_new - d_old| * factor`` exceeds ``tol`` for some non-NaN point (overwrites d_old)."""
    np.subtract(d_new, d_old, out=d_old)
    np.abs(d_old, out=d_old)
    m = np.fmax.reduce(d_old)                # ignores NaN; NaN only if all are NaN
    return bool(m * factor > tol)


_GCJ_FACTOR = _GCJ_LIPSCHITZ / (1.0 - _GCJ_LIPSCHITZ)
_BD_FACTOR = _BD_LIPSCHITZ / (1.0 - _BD_LIPSCHITZ)


def _gcj_inverse_block(glon, glat, wlon, wlat, S, tol: float, max_iter: int) -> None:
    """WGS-84 of GCJ-02 points: w <- g - delta(w) from w = g until the a-posteriori bound holds."""
    n = glon.shape[0]
    dlon, dlat, plon, plat = (S[_NBUF + j, :n] for j in range(4))
    np.copyto(wlon, glon)
    np.copyto(wlat, glat)
    plon.fill(0.0)                            # delta of the start is "0": first step = delta(g)
    plat.fill(0.0)
    for _ in range(max(int(max_iter), 1)):
        _gcj_delta_block(wlon, wlat, dlon, dlat, S)
        np.subtract(glon, dlon, out=wlon)
        np.subtract(glat, dlat, out=wlat)
        more = _step_exceeds(dlon, plon, _GCJ_FACTOR, tol)
        more = _step_exceeds(dlat, plat, _GCJ_FACTOR, tol) or more
        if not more:
            break
        dlon, plon = plon, dlon
        dlat, plat = plat, dlat


def _bd_inverse_block(blon, blat, glon, glat, S, tol: float, max_iter: int) -> None:
    """GCJ-02 of BD-09 points: the closed-form start, then g <- g - (F(g) - b) until converged."""
    n = blon.shape[0]
    x, y, fx, fy = (S[_NBUF + j, :n] for j in range(4))
    np.subtract(blon, 0.0065, out=x)
    np.subtract(blat, 0.006, out=y)
    _bd_rotate_block(x, y, glon, glat, -1.0, S)
    for _ in range(max(int(max_iter), 1)):
        _bd_forward_block(glon, glat, fx, fy, S)
        np.subtract(fx, blon, out=fx)          # residual of g
        np.subtract(fy, blat, out=fy)
        np.subtract(glon, fx, out=glon)
        np.subtract(glat, fy, out=glat)
        x.fill(0.0)
        more = _step_exceeds(fx, x, _BD_FACTOR, tol)
        x.fill(0.0)
        more = _step_exceeds(fy, x, _BD_FACTOR, tol) or more
        if not more:
            break


# ---------------------------------------------------------------------------------------------
# Drivers: flat contiguous arrays, blocks, threads.

_tls = threading.local()


def _scratch() -> np.ndarray:
    S = getattr(_tls, "S", None)
    if S is None:
        S = _tls.S = np.empty((_NBUF + 6, _BLOCK))
    return S


def _run_range(kernel, lon, lat, olon, olat, a: int, b: int) -> None:
    S = _scratch()
    with np.errstate(all="ignore"):
        for i in range(a, b, _BLOCK):
            j = min(i + _BLOCK, b)
            kernel(lon[i:j], lat[i:j], olon[i:j], olat[i:j], S)


def _apply(kernel, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """Run a block kernel over lon/lat of any (equal) shape; numpy scalars for scalar input."""
    lon, lat = _arrays(lon, lat)
    shape = lon.shape
    flon = np.ascontiguousarray(lon).reshape(-1)
    flat = np.ascontiguousarray(lat).reshape(-1)
    n = flon.shape[0]
    olon = np.empty(n)
    olat = np.empty(n)
    workers = _n_workers()
    if n >= _THREAD_MIN and workers > 1:
        nblocks = -(-n // _BLOCK)
        per = -(-nblocks // workers) * _BLOCK
        bounds = [(a, min(a + per, n)) for a in range(0, n, per)]
        futures = [_get_pool().submit(_run_range, kernel, flon, flat, olon, olat, a, b) for a, b in bounds]
        for f in futures:
            f.result()
    elif n:
        _run_range(kernel, flon, flat, olon, olat, 0, n)
    if shape == ():
        return olon[0], olat[0]
    return olon.reshape(shape), olat.reshape(shape)


def _arrays(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if lon.shape != lat.shape:
        raise ValueError(f"lon and lat differ in shape: {lon.shape} vs {lat.shape}")
    return lon, lat


def _k_wgs_to_gcj(lon, lat, olon, olat, S) -> None:
    _gcj_delta_block(lon, lat, olon, olat, S)
    np.add(olon, lon, out=olon)
    np.add(olat, lat, out=olat)


def _k_wgs_to_bd(lon, lat, olon, olat, S) -> None:
    n = lon.shape[0]
    glon, glat = S[_NBUF + 4, :n], S[_NBUF + 5, :n]
    _k_wgs_to_gcj(lon, lat, glon, glat, S)
    _bd_forward_block(glon, glat, olon, olat, S)


def _k_gcj_to_wgs(tol: float, max_iter: int):
    def kernel(lon, lat, olon, olat, S):
        _gcj_inverse_block(lon, lat, olon, olat, S, tol, max_iter)
    return kernel


def _k_bd_to_gcj(tol: float, max_iter: int):
    def kernel(lon, lat, olon, olat, S):
        _bd_inverse_block(lon, lat, olon, olat, S, tol, max_iter)
    return kernel


def _k_bd_to_wgs(lon, lat, olon, olat, S) -> None:
    n = lon.shape[0]
    glon, glat = S[_NBUF + 4, :n], S[_NBUF + 5, :n]
    _bd_inverse_block(lon, lat, glon, glat, S, 1e-10, 30)
    _gcj_inverse_block(glon, glat, olon, olat, S, 1e-10, 30)


# ---------------------------------------------------------------------------------------------
# Public pairwise functions (lon, lat in degrees; arrays of any equal shape, or scalars).

