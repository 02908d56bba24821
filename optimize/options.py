"""Every plan option and its default, in one place (CLI, HTTP params and Python share it)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

SPEED_KMH = {"walk": 4.0, "bike": 12.0, "ebike": 18.0, "drive": 30.0}
MODES = tuple(SPEED_KMH)
COORDS = ("wgs84", "gcj02", "bd09", "cgcs2000")
OUTPUT_COORDS = ("wgs84", "gcj02", "bd09")


@dataclass(frozen=True)
class PlanOptions:
    # partition
    target_households: float = 300.0       # households per grid; a unit's column overrides it
    kind_targets: dict[str, float] = field(default_factory=dict)  # e.g. {"urban": 400}
    tolerance: float = 0.10                 # allowed |h - mean| / mean of the unit's grids
    time_limit_per_unit: float = 10.0       # CP-SAT seconds per unit before falling back
    seed: int = 0
    # travel and stations
    minutes: float = 20.0
    mode: str = "walk"
    speed_kmh: float | None = None          # None: SPEED_KMH[mode]
    coverage_target: float | None = 0.9     # fewest stations reaching this share (None: skip)
    max_stations: int | None = None         # maximal covering with at most P stations
    # staffing
    workers_budget: int | None = None       # total workers; None: norm or one per grid
    workers_per_10k: float | None = None    # staffing norm per 10,000 residents
    persons_per_household: float = 2.62     # population estimate where none is given (2020 census)
    # input and output
    coords: str = "wgs84"
    output_coords: str = "wgs84"
    code_field: str = "village_code"
    # execution
    jobs: int = 1
    scheduler: str | None = None            # dask.distributed address, e.g. tcp://host:8786
    baseline: str | None = None             # directory of last year's plan to keep stable

    def __post_init__(self):
        problems = []
        if not self.target_households > 0:
            problems.append(f"target_households must be > 0, got {self.target_households}")
        if not 0 < self.tolerance < 1:
            problems.append(f"tolerance must lie in (0, 1), got {self.tolerance}")
        if not self.minutes > 0:
            problems.append(f"minutes must be > 0, got {self.minutes}")
        if self.mode not in SPEED_KMH:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.speed_kmh is not None and not self.speed_kmh > 0:
            problems.append(f"speed_kmh must be > 0, got {self.speed_kmh}")
        if self.coverage_target is not None and not 0 < self.coverage_target <= 1:
            problems.append(f"coverage_target must lie in (0, 1], got {self.coverage_target}")
        if self.max_stations is not None and self.max_stations < 0:
            problems.append(f"max_stations must be >= 0, got {self.max_stations}")
        if self.workers_budget is not None and self.workers_budget < 1:
            problems.append(f"workers_budget must be >= 1, got {self.workers_budget}")
        if self.workers_per_10k is not None and not self.workers_per_10k > 0:
            problems.append(f"workers_per_10k must be > 0, got {self.workers_per_10k}")
        if self.coords not in COORDS:
            problems.append(f"coords must be one of {', '.join(COORDS)}, got {self.coords!r}")
        if self.output_coords not in OUTPUT_COORDS:
            problems.append(f"output_coords must be one of {', '.join(OUTPUT_COORDS)}, got {self.output_coords!r}")
        if self.jobs < 1:
            problems.append(f"jobs must be >= 1, got {self.jobs}")
        if not self.time_limit_per_unit > 0:
            problems.append(f"time_limit_per_unit must be > 0, got {self.time_limit_per_unit}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def speed_m_per_min(self) -> float:
        return (self.speed_kmh or SPEED_KMH[self.mode]) * 1000.0 / 60.0

    @property
    def effective_speed_kmh(self) -> float:
        return float(self.speed_kmh or SPEED_KMH[self.mode])

    def target_for(self, kind: str | None, unit_target: float | None) -> float:
        """The target households per grid for one unit: its own column, its kind's, the global."""
        if unit_target is not None and unit_target == unit_target and unit_target > 0:
            return float(unit_target)
        if kind and kind in self.kind_targets:
            return float(self.kind_targets[kind])
        return float(self.target_households)

    def with_(self, **changes: Any) -> "PlanOptions":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_mapping(cls, params: dict[str, Any]) -> "PlanOptions":
        """Build from loose keyword params (HTTP JSON, notebook kwargs); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown plan option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in params.items() if v is not None or k in ("coverage_target",)})
