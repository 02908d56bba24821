"""gridplan_data: the bundled sample county (Baisha, Hainan) — see data/README.md.

``sample_dir("sample")`` / ``sample_dir("sample_small")`` give the folder holding
boundaries.geojson, townships.geojson, households.csv, facilities.csv and roster.csv.
"""
from __future__ import annotations

from pathlib import Path

SAMPLES = ("sample", "sample_small")
FILES = ("boundaries.geojson", "townships.geojson", "households.csv", "facilities.csv", "roster.csv")


def sample_dir(name: str = "sample") -> Path:
    """The folder of one bundled sample (``sample`` = whole county, ``sample_small`` = one township)."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}: expected one of {', '.join(SAMPLES)}")
    return Path(__file__).resolve().parent / name
