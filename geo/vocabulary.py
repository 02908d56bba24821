"""The words gridplan's options are made of, defined once: travel modes and coordinate systems.

Everything else imports from here — the options schema (``optimize.options``), the command
line's choices (``api.cli``), the HTTP lookup's ``coords`` parameter, ``geo.coords`` and
``geo.travel`` — so that adding a mode or a coordinate system is one edit. This is the lowest
layer (``geo``), so every other layer may import it.

Members are :class:`enum.StrEnum`: ``Mode.walk == "walk"``, they hash like their string and
format as it, so a member may stand wherever a plain name is expected.
"""
from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class Mode(StrEnum):
    """Travel modes (CONTRACT.md "Travel")."""

    walk = "walk"
    bike = "bike"
    ebike = "ebike"
    drive = "drive"


#: The contract's straight-line speeds per mode, km/h ("walk 4, bike 12, ebike 18, drive 30").
DEFAULT_SPEED_KMH = MappingProxyType({Mode.walk: 4.0, Mode.bike: 12.0, Mode.ebike: 18.0, Mode.drive: 30.0})


class CoordSystem(StrEnum):
    """What lon/lat mean: WGS 84 (GPS), GCJ-02 (Chinese web maps), BD-09 (Baidu), CGCS2000.

    CGCS2000 agrees with WGS 84 to centimetres, so it is read as WGS 84 and never written.
    """

    wgs84 = "wgs84"
    gcj02 = "gcj02"
    bd09 = "bd09"
    cgcs2000 = "cgcs2000"

    @property
    def same_as_wgs84(self) -> bool:
        """True when lon/lat in this system need no conversion to or from WGS 84."""
        return self in _SAME_AS_WGS84

    @property
    def is_output(self) -> bool:
        """True when outputs may be written in this system (``output_coords``)."""
        return self is not CoordSystem.cgcs2000


#: Systems whose lon/lat are WGS 84's (no conversion either way).
WGS84_ALIKE = _SAME_AS_WGS84 = frozenset({CoordSystem.wgs84, CoordSystem.cgcs2000})

#: The systems outputs (and the CLI's ``lookup``) may use: CoordSystem without CGCS2000.
OutputCoordSystem = StrEnum("OutputCoordSystem", [(c.name, c.value) for c in CoordSystem if c.is_output])
OutputCoordSystem.__doc__ = "Coordinate systems an output may be written in (every CoordSystem but CGCS2000)."
OutputCoordSystem.__module__ = __name__

#: The names as plain tuples (for messages, ``typing.Literal`` and membership tests).
MODES: tuple[str, ...] = tuple(m.value for m in Mode)
COORD_SYSTEMS: tuple[str, ...] = tuple(c.value for c in CoordSystem)
OUTPUT_COORD_SYSTEMS: tuple[str, ...] = tuple(c.value for c in OutputCoordSystem)
#: The systems offset from WGS 84 (the Chinese web-map systems, converted on the way in and out).
OFFSET_COORD_SYSTEMS: tuple[str, ...] = tuple(c.value for c in CoordSystem if not c.same_as_wgs84)

__all__ = ["Mode", "CoordSystem", "OutputCoordSystem", "DEFAULT_SPEED_KMH", "MODES", "COORD_SYSTEMS",
           "OUTPUT_COORD_SYSTEMS", "OFFSET_COORD_SYSTEMS", "WGS84_ALIKE"]
