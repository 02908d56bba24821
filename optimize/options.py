"""Every plan option, its type, range and default, in one place: a strict typed schema.

The command line, the HTTP ``params`` and Python (``plan(**options)``) all build a
:class:`PlanOptions` and so accept and refuse the same values. The schema is strict, as user
input is hostile: numbers must be finite and within sane bounds, counts must be integers
(``1.5``, ``true`` and ``"3"`` are refused, not coerced), names must come from the vocabulary
(:mod:`geo.vocabulary`, re-exported here). A refused value raises :class:`OptionsError`, a
``ValueError`` carrying one ``(option, message)`` pair per problem.

``coverage_target=0`` (or ``None``) means "report the coverage of the given stations only, site
no new ones"; the option is then stored as ``None``.
"""
from __future__ import annotations

import math
import os
import re
from enum import Enum
from typing import Annotated, Any, Iterable, Literal, Mapping, Optional

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from gridplan.geo.vocabulary import (
    COORD_SYSTEMS,
    DEFAULT_SPEED_KMH,
    MODES,
    OUTPUT_COORD_SYSTEMS,
    CoordSystem,
    Mode,
    OutputCoordSystem,
)

__all__ = ["PlanOptions", "OptionsError", "Mode", "CoordSystem", "OutputCoordSystem", "DEFAULT_SPEED_KMH",
           "SPEED_KMH", "MODES", "COORDS", "OUTPUT_COORDS", "option_names", "option_default", "option_help"]

# re-exported under their historical names
SPEED_KMH = DEFAULT_SPEED_KMH
COORDS = COORD_SYSTEMS
OUTPUT_COORDS = OUTPUT_COORD_SYSTEMS

# sane maxima: far beyond any real plan, small enough that no value can exhaust the machine
MAX_HOUSEHOLDS_PER_GRID = 100_000
MAX_MINUTES = 600.0
MAX_SPEED_KMH = 300.0
MAX_STATIONS = 100_000
MAX_WORKERS = 10_000_000
MAX_JOBS = 1024
MAX_SECONDS_PER_UNIT = 3600.0
MAX_SEED = 2**31 - 1                 # CP-SAT's random_seed is a 32-bit integer
MAX_KINDS = 64
MAX_MICRO_TARGET = 10_000.0
MEASURES = ("households", "population", "workload")
MAX_CAPACITY = 1e9
SITING_MODELS = ("lscp", "mclp", "pmedian", "pcenter", "backup")


def _plain(value: Any) -> Any:
    """Numpy scalars -> Python numbers, enum members -> their value, paths -> str (strictness aside).

    Booleans stay booleans (and are then refused where a number is expected).
    """
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and not isinstance(value, (bool, str)):
        item = value.item()
        return value if isinstance(item, bool) else item
    return value


Plain = BeforeValidator(_plain)
Households = Annotated[float, Field(ge=1, le=MAX_HOUSEHOLDS_PER_GRID), Plain]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
ModeName = Literal[MODES]                       # type: ignore[valid-type]
CoordName = Literal[COORD_SYSTEMS]              # type: ignore[valid-type]
OutputCoordName = Literal[OUTPUT_COORD_SYSTEMS]  # type: ignore[valid-type]
SitingModel = Literal[SITING_MODELS]            # type: ignore[valid-type]


class OptionsError(ValueError):
    """Refused plan options: ``errors`` holds one ``(option, message)`` pair per problem.

    ``str(e)`` joins them as ``"option: message; ..."`` for people; programs read ``errors``.
    """

    def __init__(self, errors: Iterable[tuple[str, str]]):
        self.errors: tuple[tuple[str, str], ...] = tuple((str(f), str(m)) for f, m in errors)
        super().__init__("; ".join(f"{f}: {m}" for f, m in self.errors) or "invalid plan options")

    @property
    def fields(self) -> tuple[str, ...]:
        """The options named, in order, without repeats."""
        return tuple(dict.fromkeys(f for f, _ in self.errors))


_SHOULD = re.compile(r"^(Input|String|Value|Dictionary|Number|Float|Integer)\s+should\s+")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _errors_of(exc: ValidationError) -> list[tuple[str, str]]:
    """Pydantic's errors -> (option, message) pairs in plain words ("must be ..., got ...")."""
    known = ", ".join(option_names())
    out = []
    for e in exc.errors(include_url=False):
        loc = list(e["loc"])
        name = str(loc[0]) if loc else "options"
        if e["type"] == "extra_forbidden":
            out.append((name, f"unknown plan option {name!r}; known: {known}"))
            continue
        msg = _SHOULD.sub("must ", e["msg"], count=1).removeprefix("Value error, ")
        inner = [x for x in loc[1:] if x != "[key]"]
        where = f" ({'key' if '[key]' in loc else 'entry'} {_shown(inner[0])})" if inner else ""
        out.append((name, f"{msg[:1].lower()}{msg[1:]}{where}, got {_shown(e.get('input'))}"))
    return out


class PlanOptions(BaseModel):
    """Every plan option with its default (immutable; ``with_`` makes a changed, re-checked copy)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid", allow_inf_nan=False,
                              validate_default=False, title="plan options")

    # partition
    target_households: Households = Field(
        300.0, description="Households per grid; a unit's target_households column overrides it.")
    kind_targets: dict[Name, Households] = Field(
        default_factory=dict, max_length=MAX_KINDS,
        description='Households per grid by unit kind, e.g. {"urban": 400}.')
    tolerance: Annotated[float, Field(gt=0, lt=1), Plain] = Field(
        0.10, description="Allowed deviation |h - mean| / mean of a unit's grids.")
    time_limit_per_unit: Annotated[float, Field(gt=0, le=MAX_SECONDS_PER_UNIT), Plain] = Field(
        10.0, description="Solver seconds per unit before falling back.")
    seed: Annotated[int, Field(ge=0, le=MAX_SEED), Plain] = Field(0, description="Solver random seed.")
    balance_by: Annotated[Literal[MEASURES], Plain] = Field(  # type: ignore[valid-type]
        "households", description="What the grids balance: households, population or workload (--workload).")
    workload: Optional[Annotated[str, StringConstraints(min_length=1, max_length=500)]] = Field(
        None, description='Workload of a household row over its columns, e.g. "households + 2*elderly_alone + '
                          '0.5*cases" (numbers, columns, + - * /, min, max); replaces staffing\'s formula.')
    also_balance: Optional[Annotated[str, StringConstraints(min_length=3, max_length=64)]] = Field(
        None, description='A second measure kept within its own tolerance where reachable, e.g. "households:0.15".')
    micro_target: Optional[Annotated[float, Field(ge=2, le=MAX_MICRO_TARGET), Plain]] = Field(
        None, description="Split every grid into contiguous micro-grids of about this many households.")
    # travel and stations
    minutes: Annotated[float, Field(gt=0, le=MAX_MINUTES), Plain] = Field(
        20.0, description="Service-area travel time, minutes.")
    mode: Annotated[ModeName, Plain] = Field(Mode.walk.value, description="Travel mode.")
    speed_kmh: Optional[Annotated[float, Field(gt=0, le=MAX_SPEED_KMH), Plain]] = Field(
        None, description="Override the mode's speed, km/h.")
    coverage_target: Optional[Annotated[float, Field(ge=0, le=1), Plain]] = Field(
        0.9, description="Fewest new stations reaching this share of households; 0: report only.")
    max_stations: Optional[Annotated[int, Field(ge=0, le=MAX_STATIONS), Plain]] = Field(
        None, description="Maximal covering with at most this many new stations.")
    siting_model: Optional[Annotated[SitingModel, Plain]] = Field(
        None, description="Siting model: lscp (fewest stations), mclp (most covered with max_stations), pmedian "
                          "(least travel), pcenter (least worst travel), backup (most covered twice); "
                          "default: lscp, or mclp when only max_stations is given.")
    default_capacity: Optional[Annotated[float, Field(ge=1, le=MAX_CAPACITY), Plain]] = Field(
        None, description="Households a station can serve where the facilities give no capacity; capacities "
                          "(this or a facilities capacity column) make the siting capacitated.")
    single_source: Annotated[bool, Plain] = Field(
        False, description="Capacitated siting: each household served by one station (default: split).")
    center_weighted: Annotated[bool, Plain] = Field(
        False, description="p-center: minimise the worst households x minutes instead of minutes.")
    allow_close: Annotated[bool, Plain] = Field(False, description="Existing stations may close.")
    close_cost: Annotated[float, Field(ge=0, le=MAX_STATIONS), Plain] = Field(
        0.0, description="Cost of closing an existing station, in new-station units.")
    max_close: Optional[Annotated[int, Field(ge=0, le=MAX_STATIONS), Plain]] = Field(
        None, description="Most existing stations that may close (implies allow_close).")
    max_move: Optional[Annotated[int, Field(ge=0, le=MAX_STATIONS), Plain]] = Field(
        None, description="Most relocations (close one existing station, open one new).")
    # staffing
    workers_budget: Optional[Annotated[int, Field(ge=1, le=MAX_WORKERS), Plain]] = Field(
        None, description="Total grid workers.")
    workers_per_10k: Optional[Annotated[float, Field(gt=0, le=10_000), Plain]] = Field(
        None, description="Staffing norm: workers per 10,000 residents.")
    persons_per_household: Annotated[float, Field(gt=0, le=50), Plain] = Field(
        2.62, description="Persons per household where no population is given (2020 census).")
    # input and output
    coords: Annotated[CoordName, Plain] = Field(CoordSystem.wgs84.value, description="What input lon/lat mean.")
    output_coords: Annotated[OutputCoordName, Plain] = Field(
        CoordSystem.wgs84.value, description="Output coordinates.")
    code_field: Annotated[Name, Plain] = Field("village_code", description="Unit code column.")
    # execution
    jobs: Annotated[int, Field(ge=1, le=MAX_JOBS), Plain] = Field(1, description="Worker processes.")
    scheduler: Optional[Annotated[str, StringConstraints(max_length=256)]] = Field(
        None, description="Dask scheduler address, tcp://host:port.")
    baseline: Optional[Annotated[str, StringConstraints(min_length=1, max_length=4096), Plain]] = Field(
        None, description="Last plan's output directory: keep its grids stable.")

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise OptionsError(_errors_of(exc)) from None
        if self._measure_errors():
            raise OptionsError(self._measure_errors())

    @field_validator("coverage_target")
    @classmethod
    def _zero_is_report_only(cls, v: float | None) -> float | None:
        return None if v == 0 else v

    @field_validator("workload")
    @classmethod
    def _workload_parses(cls, v: str | None) -> str | None:
        if v is not None:
            from gridplan.optimize.workload_expr import parse_workload
            parse_workload(v, option="")   # ExpressionError (a ValueError) names the position
        return v

    @field_validator("also_balance")
    @classmethod
    def _also_balance_parses(cls, v: str | None) -> str | None:
        if v is not None:
            parse_secondary(v)
        return v

    def _measure_errors(self) -> list[tuple[str, str]]:
        """Cross-option checks of the balance measures, as (option, message) pairs."""
        errors = []
        if self.balance_by == "workload" and self.workload is None:
            errors.append(("balance_by", "'workload' needs the workload expression (--workload)"))
        if self.also_balance is not None:
            measure, _ = parse_secondary(self.also_balance)
            if measure == self.balance_by:
                errors.append(("also_balance", f"names {measure!r}, which is already balance_by"))
            elif measure == "workload" and self.workload is None:
                errors.append(("also_balance", "'workload' needs the workload expression (--workload)"))
        return errors

    @property
    def secondary(self) -> tuple[str, float] | None:
        """Return ``also_balance`` as (measure, tolerance), or None."""
        return None if self.also_balance is None else parse_secondary(self.also_balance)

    @property
    def speed_m_per_min(self) -> float:
        """Straight-line travel speed in metres per minute."""
        return self.effective_speed_kmh * 1000.0 / 60.0

    @property
    def effective_speed_kmh(self) -> float:
        """Return ``speed_kmh``, else the mode's default speed."""
        return float(self.speed_kmh or DEFAULT_SPEED_KMH[self.mode])

    def target_for(self, kind: str | None, unit_target: float | None) -> float:
        """Return the target households per grid of one unit: its own column, else its kind's, else the global one."""
        if unit_target is not None and math.isfinite(unit_target) and unit_target > 0:
            return float(unit_target)
        if kind and kind in self.kind_targets:
            return float(self.kind_targets[kind])
        return float(self.target_households)

    def with_(self, **changes: Any) -> "PlanOptions":
        """Return a copy with ``changes`` applied and checked (:class:`OptionsError` if refused)."""
        return type(self)(**{**self.as_dict(), **changes})

    def as_dict(self) -> dict:
        """Return every option as plain JSON-ready values."""
        return self.model_dump()

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any], exclude: Iterable[str] = ()) -> "PlanOptions":
        """Build from loose keyword params (HTTP JSON, notebook kwargs, the CLI).

        ``None`` means "the default" (for ``coverage_target`` it means "report only"). An unknown
        key, a key in ``exclude`` (options this caller may not set) or a refused value raises
        :class:`OptionsError` naming every offending option.
        """
        if not isinstance(params, Mapping):
            raise OptionsError([("options", f"must be a mapping of option names to values, "
                                            f"got {type(params).__name__}")])
        hidden = set(exclude)
        settable = [n for n in option_names() if n not in hidden]
        errors = [(str(k), f"{k!r} cannot be set here" if k in hidden else
                   f"unknown plan option {k!r}; known: {', '.join(settable)}")
                  for k in params if k in hidden or k not in cls.model_fields]
        given = {k: v for k, v in params.items() if k in cls.model_fields and k not in hidden
                 and (v is not None or k == "coverage_target")}
        try:
            options = cls(**given)
        except OptionsError as e:
            errors += e.errors
        if errors:
            raise OptionsError(errors)
        return options

    @classmethod
    def json_schema(cls, exclude: Iterable[str] = ()) -> dict:
        """Return the options' JSON schema (types, bounds, defaults, descriptions), minus ``exclude``."""
        schema = cls.model_json_schema()
        for name in exclude:
            schema["properties"].pop(name, None)
        return schema


def parse_secondary(text: str) -> tuple[str, float]:
    """Parse ``"households:0.15"`` into (measure, tolerance); ValueError naming what is wrong."""
    measure, sep, tol = str(text).partition(":")
    measure = measure.strip()
    if measure not in MEASURES:
        raise ValueError(f"must be MEASURE:TOLERANCE with MEASURE one of {', '.join(MEASURES)}")
    try:
        value = float(tol) if sep else float("nan")
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and 0 < value < 1):
        raise ValueError("must be MEASURE:TOLERANCE with 0 < TOLERANCE < 1")
    return measure, value


def option_names() -> tuple[str, ...]:
    """Return every option's name, in declaration order."""
    return tuple(PlanOptions.model_fields)


def option_default(name: str) -> Any:
    """Return an option's default value."""
    f = PlanOptions.model_fields[name]
    return f.get_default(call_default_factory=True)


def option_help(name: str, extra: str = "", show_default: bool = True) -> str:
    """Return an option's description (+ ``extra``) and default for help texts: ``"Travel mode. (default: walk)"``."""
    f = PlanOptions.model_fields[name]
    default = option_default(name)
    shown = "" if not show_default or default is None or default == {} else f" (default: {default})"
    return f"{f.description}{(' ' + extra) if extra else ''}{shown}"
