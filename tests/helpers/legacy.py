"""Generated legacy grid layers (benchmarks/make_legacy.py) written as GeoJSON files for merge tests."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_legacy_files(plan, d: Path, seed: int = 1) -> dict[str, Path]:
    """Write one legacy layer per change kind (merges, splits, shifts) derived from ``plan``'s grids; return the paths.

    Each file holds ``{kind}_id`` and a constant ``note`` column, in WGS 84.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.make_legacy import legacy_layers

    truth = plan.grids.to_crs(plan.grids.estimate_utm_crs())
    out = {}
    for kind, layer in legacy_layers(truth, seed=seed).items():
        out[kind] = d / f"{kind}.geojson"
        layer.to_crs(4326).assign(note="x").to_file(out[kind], driver="GeoJSON")
    return out
