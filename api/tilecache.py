"""The vector-tile caches of one server: each plan's :class:`~gridplan.geo.tiles.TileSource` and its tiles.

* Sources (a plan's layers in web mercator with their STRtrees) are built once per plan, off the
  event loop, and kept in a small LRU by plan id — like the lookup indexes (``api.indexes``).
* Tiles are kept in an LRU bounded in bytes, keyed by ``(plan id, z, x, y)``. A plan id names one
  immutable version of a plan, so a cached tile never goes stale; ``live`` is resolved to a plan id
  before the cache is asked.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from gridplan.geo.tiles import TILE_LAYERS, TileSource, read_tile_source, render_tile, tile_source, tiles_covering

log = logging.getLogger("gridplan.tiles")


def overview_tiles(src: TileSource, max_tiles: int = 4, max_zoom: int = 14) -> list[tuple[int, int, int]]:
    """Return the tiles a map fitted to the whole plan asks for first.

    They are the tiles of the deepest zoom whose tiles over the plan number at most ``max_tiles``,
    and of the next zoom down.
    """
    best = 0
    for z in range(max_zoom + 1):
        if sum(1 for _ in tiles_covering(src.bounds, z, z)) > max_tiles:
            break
        best = z
    return list(tiles_covering(src.bounds, best, min(best + 1, max_zoom)))


class TileCache:
    """Tile sources by plan (LRU of ``sources`` plans) and encoded tiles (LRU of at most ``max_bytes``).

    Parameters
    ----------
    store
        The job store (``api.store``): where a plan's layers are read from.
    sources : int
        How many plans' tile sources are kept in memory.
    max_bytes : int
        The most bytes of encoded tiles kept (the least recently used leave first).
    """

    def __init__(self, store, sources: int = 4, max_bytes: int = 64 * 1024 * 1024):
        self.store = store
        self.sources = max(1, sources)
        self.max_bytes = max(0, max_bytes)
        self._src: OrderedDict[str, TileSource] = OrderedDict()
        self._tiles: OrderedDict[tuple, bytes] = OrderedDict()
        self.bytes = 0
        self.hits = self.misses = 0
        self._build_lock = threading.Lock()
        self._lock = threading.Lock()

    def source(self, plan_id: str) -> TileSource:
        """Return the tile source of succeeded plan ``plan_id``, building it on first use."""
        with self._lock:
            got = self._src.get(plan_id)
            if got is not None:
                self._src.move_to_end(plan_id)
                return got
        with self._build_lock:
            got = self._src.get(plan_id)
            if got is None:
                got = self._build(plan_id)
            with self._lock:
                self._src[plan_id] = got
                self._src.move_to_end(plan_id)
                while len(self._src) > self.sources:
                    old, _ = self._src.popitem(last=False)
                    self._drop_tiles(old)
        return got

    def _build(self, plan_id: str) -> TileSource:
        st = self.store
        if not st.settings.is_postgres:
            return read_tile_source(st.out_dir(plan_id))
        from gridplan.geo.summary import Summary

        job = st.get_job(plan_id) or {}
        frames = {n: st.read_layer(plan_id, n) for n in TILE_LAYERS if st.has_layer(plan_id, n)}
        return tile_source(frames, Summary.from_dict(job.get("summary") or {}).output_coords)

    def tile(self, plan_id: str, z: int, x: int, y: int) -> bytes:
        """Return tile ``z/x/y`` of plan ``plan_id`` (from the cache, or rendered and cached)."""
        k = (plan_id, z, x, y)
        with self._lock:
            got = self._tiles.get(k)
            if got is not None:
                self._tiles.move_to_end(k)
                self.hits += 1
                return got
        data = render_tile(self.source(plan_id), z, x, y)
        with self._lock:
            self.misses += 1
            if len(data) <= self.max_bytes and k not in self._tiles:
                self._tiles[k] = data
                self.bytes += len(data)
                while self.bytes > self.max_bytes:
                    _, old = self._tiles.popitem(last=False)
                    self.bytes -= len(old)
        return data

    def warm(self, plan_id: str) -> int:
        """Build ``plan_id``'s source and render its overview tiles (:func:`overview_tiles`) into the cache.

        Returns how many tiles were rendered; a failure is logged, never raised (the requests will tell).
        """
        try:
            tiles = overview_tiles(self.source(plan_id))
            for z, x, y in tiles:
                self.tile(plan_id, z, x, y)
            return len(tiles)
        except Exception:   # a purged or unreadable plan: the requests will answer with the reason
            log.exception("tile warm-up failed", extra={"plan": plan_id})
            return 0

    def _drop_tiles(self, plan_id: str) -> None:
        """Forget the cached tiles of ``plan_id`` (caller holds ``_lock``)."""
        for k in [k for k in self._tiles if k[0] == plan_id]:
            self.bytes -= len(self._tiles.pop(k))

    def forget(self, plan_id: str) -> None:
        """Drop a plan's source and tiles (a purged plan)."""
        with self._lock:
            self._src.pop(plan_id, None)
            self._drop_tiles(plan_id)
