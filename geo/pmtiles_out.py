"""Write a plan's vector tiles into one PMTiles v3 archive (``pmtiles`` package's writer).

A PMTiles file holds every tile of the chosen zooms over the plan's extent (gzip-compressed MVT,
the convention web maps expect) with a directory that lets a static web server answer tile
requests by HTTP range: a web team can host a plan's map without running gridplan. Tiles with no
feature are left out (readers treat a missing tile as empty). The archive is written to a temporary
file beside the target and moved into place, so a failed export leaves no half-written file.
"""
from __future__ import annotations

import gzip
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pmtiles.tile import Compression, TileType, tileid_to_zxy, zxy_to_tileid
from pmtiles.writer import Writer

from gridplan.geo.tiles import TILE_LAYERS, TileSource, layer_fields, render_tile, tiles_covering


@dataclass(frozen=True)
class PmtilesStats:
    """What an export wrote: tiles by count, the zooms, the bytes of the archive."""

    path: Path
    tiles: int
    empty: int
    min_zoom: int
    max_zoom: int
    bytes: int


def tile_metadata(src: TileSource, name: str, min_zoom: int, max_zoom: int) -> dict:
    """Return the TileJSON-style metadata of ``src``'s tiles (name, zooms, bounds, vector_layers)."""
    return {"name": name, "format": "pbf", "type": "overlay", "minzoom": min_zoom, "maxzoom": max_zoom,
            "bounds": list(src.bounds), "generator": "gridplan",
            "vector_layers": [{"id": n, "fields": layer_fields(src.layers[n].props), "minzoom": min_zoom,
                               "maxzoom": max_zoom} for n in TILE_LAYERS if n in src.layers]}


def _header(src: TileSource, min_zoom: int, max_zoom: int) -> dict:
    w, s, e, n = src.bounds
    return {"tile_compression": Compression.GZIP, "tile_type": TileType.MVT, "min_zoom": min_zoom,
            "max_zoom": max_zoom, "min_lon_e7": int(w * 1e7), "min_lat_e7": int(s * 1e7),
            "max_lon_e7": int(e * 1e7), "max_lat_e7": int(n * 1e7), "center_zoom": min_zoom,
            "center_lon_e7": int((w + e) / 2 * 1e7), "center_lat_e7": int((s + n) / 2 * 1e7)}


def write_pmtiles(src: TileSource, path, min_zoom: int = 0, max_zoom: int = 14, name: str = "gridplan",
                  progress=None) -> PmtilesStats:
    """Write the tiles of ``src`` at zooms ``min_zoom``..``max_zoom`` to the PMTiles archive ``path``.

    Parameters
    ----------
    src : TileSource
        The plan's layers (``geo.tiles.tile_source`` / ``read_tile_source``).
    path : str or Path
        The archive to write (replaced atomically).
    min_zoom, max_zoom : int
        The zoom range (0..22, min <= max).
    name : str
        The tileset's name in the metadata.
    progress : callable, optional
        Called as ``progress(done, total)`` now and then.

    Returns
    -------
    PmtilesStats
        What was written. A source with no feature is a ValueError (an archive needs a tile).
    """
    if not 0 <= min_zoom <= max_zoom:
        raise ValueError(f"the zoom range {min_zoom}..{max_zoom} is empty")
    ids = sorted(zxy_to_tileid(z, x, y) for z, x, y in tiles_covering(src.bounds, min_zoom, max_zoom))
    if not ids:
        raise ValueError("the plan has no feature to draw: nothing to export")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    written = empty = 0
    try:
        with os.fdopen(fd, "wb") as f:
            w = Writer(f)
            for k, (z, x, y) in enumerate(map(tileid_to_zxy, ids)):
                data = render_tile(src, z, x, y)
                if data:
                    w.write_tile(zxy_to_tileid(z, x, y), gzip.compress(data, compresslevel=6, mtime=0))
                    written += 1
                else:
                    empty += 1
                if progress is not None and k % 256 == 0:
                    progress(k, len(ids))
            if not written:
                raise ValueError("every tile of the plan is empty: nothing to export")
            w.finalize(_header(src, min_zoom, max_zoom), tile_metadata(src, name, min_zoom, max_zoom))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return PmtilesStats(path, written, empty, min_zoom, max_zoom, path.stat().st_size)

