"""Where the bundled sample data lives (installed as the ``gridplan.data`` package, or the checkout's data/)."""
from __future__ import annotations

from pathlib import Path

SAMPLES = ("sample", "sample_small")


def sample_dir(name: str = "sample") -> Path:
    """Return the directory of bundled sample ``name`` (one of ``SAMPLES``).

    Raises
    ------
    ValueError
        For an unknown sample name.
    FileNotFoundError
        When the sample is neither installed nor in the checkout.
    """
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}: expected one of {', '.join(SAMPLES)}")
    try:
        from importlib.resources import files
        p = Path(str(files("gridplan.data"))) / name
        if p.is_dir():
            return p
    except (ModuleNotFoundError, TypeError):
        pass
    p = Path(__file__).resolve().parents[1] / "data" / name
    if p.is_dir():
        return p
    raise FileNotFoundError(f"the bundled sample {name!r} is not installed (looked in gridplan.data and {p})")


def sample_paths(name: str = "sample") -> dict[str, Path]:
    """Map "boundaries", "households", "facilities", "roster" to the bundled sample's files (those present)."""
    d = sample_dir(name)
    files = {"boundaries": "boundaries.geojson", "households": "households.csv",
             "facilities": "facilities.csv", "roster": "roster.csv"}
    return {k: d / f for k, f in files.items() if (d / f).exists()}
