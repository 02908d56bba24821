"""One input as read: the frame, the client's file name, how rows are named, and its CRS."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from gridplan.geo import validate as V
from gridplan.geo.problems import Problem


@dataclass
class Raw:
    """One input as read.

    Holds its frame (None when unreadable), the client's file name, how its rows are named, the
    1-based source row of each frame row, its CRS and the problems met reading it.
    """

    frame: pd.DataFrame | None
    source: str
    tabular: bool                       # rows ("row N", 1-based) rather than features
    src_row: np.ndarray                 # 1-based source row / feature number of each frame row
    crs: CRS | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return True when a frame was read and no problem is fatal."""
        return self.frame is not None and not any(p.fatal for p in self.problems)


def source_name(src, role: str) -> str:
    """Return the client's name for an input: a path's file name, else the role."""
    if isinstance(src, (str, os.PathLike)):
        return os.path.basename(os.fspath(src).rstrip("/\\")) or role
    return role


def failed(source: str, kind: str, message: str) -> Raw:
    """Return a ``Raw`` with no frame and one fatal problem."""
    return Raw(None, source, True, np.zeros(0, np.int64), None, [V.file_problem(source, kind, message)])



_PATH = re.compile(r"(?<![\w])(?:/vsi\w+/+)?/(?:[^\s'\"/]+/)+[^\s'\",:;)]*")


def short_error(exc: BaseException, source: str | None = None) -> str:
    """Return the first line of a reader's message in plain words.

    No server paths (each becomes the client's file name ``source``), no exception class names,
    at most 300 characters.
    """
    msg = str(exc).strip().splitlines()
    text = msg[0] if msg else "the file could not be read"
    text = _PATH.sub(source or "the file", text)
    return text if len(text) < 300 else text[:300] + "…"



def from_frame(frame: pd.DataFrame, source: str, problems: list[Problem] | None = None) -> Raw:
    """Wrap an in-memory (Geo)DataFrame as a ``Raw`` (rows are features when it has geometries)."""
    frame = frame.reset_index(drop=True)
    spatial = isinstance(frame, gpd.GeoDataFrame) and frame._geometry_column_name in frame.columns
    crs = CRS.from_user_input(frame.crs) if spatial and frame.crs is not None else None
    return Raw(frame, source, not spatial, np.arange(1, len(frame) + 1, dtype=np.int64), crs, problems or [])
