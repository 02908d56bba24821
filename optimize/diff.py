"""What changed between two plans: :func:`diff_plans` → :class:`PlanDiff` (``diff.json``, ``diff.gpkg``, ``diff.html``).

Grids are matched by code: kept (same shape within ``tolerance_m2``), reshaped (area change and
households in / out), created, retired. Households are matched by their input id into the
transition matrix between old and new grid codes (row sums: the old grids' households; column
sums: the new grids'). Workers by ``worker_id``, stations by ``station_id``. The computations are
in :mod:`gridplan.geo.diffgeo`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import geopandas as gpd
import pandas as pd

from gridplan.geo import diffgeo
from gridplan.optimize.result import Plan

MAX_MAP_POINTS = 20_000   # moved households drawn on diff.html at most


@dataclass(frozen=True)
class GridChange:
    """One grid code that is in both plans: its areas (m²) and the households that moved in and out."""

    grid_code: str
    change: str
    area_old_m2: float
    area_new_m2: float
    area_change_m2: float
    changed_m2: float
    households_in: float
    households_out: float


@dataclass(frozen=True)
class Transition:
    """Households of old grid ``old`` that are in new grid ``new``.

    None: in no grid, or not in that plan's households layer (``households_only_old`` /
    ``households_only_new`` count those).
    """

    old: str | None
    new: str | None
    households: float
    points: int


@dataclass(frozen=True)
class WorkerMove:
    """A roster worker whose grid changed."""

    worker_id: str
    old_grid: str | None
    new_grid: str | None


@dataclass
class PlanDiff:
    """The difference between two plans (module docstring); ``to_dict`` is ``diff.json``."""

    old_id: str | None
    new_id: str | None
    kept: list[str]
    reshaped: list[GridChange]
    created: list[str]
    retired: list[str]
    transitions: list[Transition]
    households_moved: float
    points_moved: int
    household_key: str | None
    households_only_old: float      # households of the old plan's layer that the new one lacks (row "to" None)
    households_only_new: float      # and the other way round (counted in the None row)
    workers_reassigned: list[WorkerMove]
    workers_added: list[str]
    workers_removed: list[str]
    stations_added: list[str]
    stations_removed: list[str]
    stations_moved: list[str]
    grids: gpd.GeoDataFrame = field(repr=False, default=None)      # every code, with its change
    moved: gpd.GeoDataFrame = field(repr=False, default=None)      # households whose grid changed
    old_grids: gpd.GeoDataFrame = field(repr=False, default=None)

    def counts(self) -> dict[str, float]:
        """Return the headline counts: grids kept/reshaped/created/retired, households moved, workers, stations."""
        return {"kept": len(self.kept), "reshaped": len(self.reshaped), "created": len(self.created),
                "retired": len(self.retired), "households_moved": self.households_moved,
                "points_moved": self.points_moved, "workers_reassigned": len(self.workers_reassigned),
                "stations_added": len(self.stations_added), "stations_removed": len(self.stations_removed),
                "stations_moved": len(self.stations_moved)}

    def to_dict(self) -> dict:
        """Return the diff as a JSON-able dict (the content of ``diff.json``)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("grids", "moved", "old_grids")}
        return {"old": d.pop("old_id"), "new": d.pop("new_id"), "counts": self.counts(), **d}

    def to_dir(self, out: str | Path) -> Path:
        """Write ``diff.json``, ``diff.gpkg`` (layers ``changed_grids``, ``moved_households``) and ``diff.html``."""
        from gridplan.geo.output import write_layer

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "diff.json").write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1, allow_nan=False),
                                       encoding="utf-8")
        gpkg = out / "diff.gpkg"
        gpkg.unlink(missing_ok=True)
        write_layer(self.grids[self.grids["change"] != "kept"].reset_index(drop=True), gpkg, "changed_grids")
        write_layer(self.moved, gpkg, "moved_households")
        (out / "diff.html").write_text(diff_html(self), encoding="utf-8")
        return out


def _none(v):
    return None if v is None or (isinstance(v, float) and v != v) else v


def diff_plans(old: Plan, new: Plan, old_id: str | None = None, new_id: str | None = None,
               tolerance_m2: float = 1.0) -> PlanDiff:
    """Compare two plans.

    Parameters
    ----------
    old, new : Plan
        The plans (``read_plan`` of two output directories, say).
    old_id, new_id : str, optional
        Their names in the diff (version ids).
    tolerance_m2 : float
        A grid whose two shapes differ by at most this many m² (symmetric difference) is kept.

    Returns
    -------
    PlanDiff
        Grids kept / reshaped / created / retired, the household transition matrix, workers
        reassigned, stations added / removed / moved.
    """
    grids = diffgeo.grid_changes(old.grids, new.grids, tolerance_m2)
    matrix, moved, key, only = diffgeo.household_transitions(old.households, new.households)
    off = matrix[matrix["old"].fillna(diffgeo.NONE) != matrix["new"].fillna(diffgeo.NONE)]   # off the diagonal
    out_of, into = off.groupby("old")["households"].sum(), off.groupby("new")["households"].sum()
    by = {c: grids[grids["change"] == c] for c in diffgeo.CHANGES}
    reshaped = [GridChange(r.grid_code, r.change, float(r.area_old_m2), float(r.area_new_m2),
                           float(r.area_change_m2), float(r.changed_m2), float(into.get(r.grid_code, 0.0)),
                           float(out_of.get(r.grid_code, 0.0))) for r in by["reshaped"].itertuples()]
    transitions = [Transition(_none(r.old), _none(r.new), float(r.households), int(r.points))
                   for r in matrix.itertuples()]
    wm, w_add, w_rem = diffgeo.worker_moves(old.workers, new.workers)
    st = diffgeo.station_changes(old.stations, new.stations)
    return PlanDiff(
        old_id=old_id, new_id=new_id, kept=list(by["kept"]["grid_code"]), reshaped=reshaped,
        created=list(by["created"]["grid_code"]), retired=list(by["retired"]["grid_code"]),
        transitions=transitions, households_moved=float(moved["households"].sum()), points_moved=len(moved),
        household_key=key, households_only_old=only["old"], households_only_new=only["new"],
        workers_reassigned=[WorkerMove(str(r.worker_id), _none(r.old_grid), _none(r.new_grid))
                            for r in wm.itertuples()],
        workers_added=w_add, workers_removed=w_rem, stations_added=st["added"], stations_removed=st["removed"],
        stations_moved=st["moved"], grids=grids, moved=moved, old_grids=old.grids)


def diff_html(d: PlanDiff) -> str:
    """Render ``diff.html``: both plans' grids on one map, changes coloured, moved households drawn (self-contained)."""
    from markupsafe import Markup

    from gridplan.geo.embed import layer_geojson
    from gridplan.geo.pages import json_script_safe, render

    old = d.old_grids if d.old_grids is not None else d.grids.iloc[:0]
    old_layer = layer_geojson(old, ["grid_code", "households"], max_vertices=200_000)
    new_layer = layer_geojson(d.grids, ["grid_code", "change", "area_change_m2", "changed_m2"], max_vertices=200_000)
    moved_layer = layer_geojson(d.moved, ["id", "old_grid", "new_grid", "households"], max_features=MAX_MAP_POINTS)
    data = {"old": d.old_id or "old", "new": d.new_id or "new", "counts": d.counts()}
    def island(text: str) -> Markup:   # JSON made safe inside <script type="application/json">
        return Markup(json_script_safe(text))

    return render("diff.html.j2", old_geojson=island(old_layer.geojson), new_geojson=island(new_layer.geojson),
                  moved_geojson=island(moved_layer.geojson),
                  moved_shown=moved_layer.features, moved_total=moved_layer.total, info=data,
                  table=table_rows(d))


def table_rows(d: PlanDiff) -> list[tuple[str, str]]:
    """Return the summary rows (what, how many) shown by ``gridplan diff`` and on ``diff.html``."""
    c = d.counts()
    rows = [("grids kept", c["kept"]), ("grids reshaped", c["reshaped"]), ("grids created", c["created"]),
            ("grids retired", c["retired"]), ("households moved", f"{c['households_moved']:,.0f} "
                                              f"({c['points_moved']:,} points)"),
            ("workers reassigned", c["workers_reassigned"]), ("stations added", c["stations_added"]),
            ("stations removed", c["stations_removed"]), ("stations moved", c["stations_moved"])]
    return [(k, str(v)) for k, v in rows]


def transition_frame(d: PlanDiff) -> pd.DataFrame:
    """Return the transition matrix as a wide table: old grid codes by row, new grid codes by column."""
    df = pd.DataFrame([asdict(t) for t in d.transitions])
    if df.empty:
        return pd.DataFrame()
    return df.fillna({"old": "(none)", "new": "(none)"}).pivot_table(
        index="old", columns="new", values="households", aggfunc="sum", fill_value=0)
