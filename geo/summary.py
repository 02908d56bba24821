"""The plan summary as typed, frozen records: what summary.json holds, read one way everywhere.

``Summary.from_dict(d)`` reads a summary dict (as the pipeline builds it, or as summary.json holds it)
into frozen dataclasses — ``Coverage``, ``Balance`` (with ``BalanceFigures`` for the figures without
failed units), ``Compactness``, ``Partition`` (with ``GridCountMismatch`` rows), ``ProblemRecord`` —
and ``as_dict()`` gives the same dict back: keys the records do not know are kept in ``extra``, a value
of the wrong type is kept there too (its field reads ``None``), and the source's key order is kept, so
``Summary.from_dict(d).as_dict() == d`` and summary.json stays byte for byte what it was.

A figure the summary does not have is ``None`` — never 0 standing in for a value — and is shown as
``UNKNOWN`` ("—") by ``fmt_num``/``fmt_pct``, the one formatting rule the CLI and the report share.
"""
from __future__ import annotations

import copy
import math
import numbers
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

UNKNOWN = "—"   # how every reader shows a figure the summary does not have


def _number(v) -> float | None:
    """Return ``v`` as a finite float, or None (missing, not a number, NaN/inf, or a bool)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def fmt_num(v, digits: int = 3) -> str:
    """Format a figure: whole numbers with thousands separators, others to ``digits`` places, else —.

    Parameters
    ----------
    v : object
        The figure (int, float, numpy scalar, bool, str or None).
    digits : int
        Decimal places for a fractional number.

    Returns
    -------
    str
        ``UNKNOWN`` for None, NaN or infinity; "yes"/"no" for a bool; ``str(v)`` for text.
    """
    if v is None:
        return UNKNOWN
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    f = _number(v)
    if f is None:
        return UNKNOWN if _is_numeric(v) else str(v)
    if f == int(f) and abs(f) < 1e15:
        return f"{int(f):,}"
    return f"{f:,.{digits}f}"


def _is_numeric(v) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def fmt_pct(v, digits: int = 1) -> str:
    """Format a share (0.25) as a percentage ("25.0%"), or ``UNKNOWN`` when there is no number."""
    f = _number(v)
    return UNKNOWN if f is None else f"{100 * f:.{digits}f}%"


# --------------------------------------------------------------------------------------------
# the record machinery: dict <-> frozen dataclass, unknown and ill-typed keys kept in ``extra``
def _accepts(value, hint) -> bool:
    """Whether ``value`` fits the (simple) type ``hint`` of a record field."""
    if value is None:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is dict:
        return isinstance(value, dict)
    return True


def _unwrap(hint):
    """Return ``X`` for ``Optional[X]`` / ``X | None``, else ``hint``."""
    if typing.get_origin(hint) in (Union, getattr(types, "UnionType", Union)):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


class _Record:
    """Mixin: ``from_dict``/``as_dict`` for a frozen dataclass with ``extra`` and ``keys``."""

    @staticmethod
    def plain_ok(x) -> bool:
        """Whether a non-dict list item can stand for this record (no, unless a record says so)."""
        return False

    @classmethod
    def _field_hints(cls) -> dict:
        if "_resolved" not in cls.__dict__:
            hints = typing.get_type_hints(cls, globalns=globals())
            cls._resolved = {f.name: _unwrap(hints[f.name]) for f in fields(cls) if f.name not in ("extra", "keys")}
        return cls._resolved

    @classmethod
    def from_dict(cls, d) -> Any:
        """Read a dict into the record (None or a non-dict reads as an empty record)."""
        d = d if isinstance(d, dict) else {}
        kw: dict = {}
        extra: dict = {}
        hints = cls._field_hints()
        for k, v in d.items():
            hint = hints.get(k) if isinstance(k, str) else None
            if hint is None:
                extra[k] = copy.deepcopy(v)
            elif isinstance(hint, type) and issubclass(hint, _Record):
                if isinstance(v, dict):
                    kw[k] = hint.from_dict(v)
                else:
                    extra[k] = copy.deepcopy(v)
            elif typing.get_origin(hint) is tuple:
                item = typing.get_args(hint)[0]
                if isinstance(v, list) and all(isinstance(x, dict) or item.plain_ok(x) for x in v):
                    kw[k] = tuple(item.from_dict(x) if isinstance(x, dict) else item.from_plain(x) for x in v)
                else:
                    extra[k] = copy.deepcopy(v)
            elif _accepts(v, hint):
                kw[k] = copy.deepcopy(v)
            else:
                extra[k] = copy.deepcopy(v)
        return cls(**kw, extra=extra, keys=tuple(d.keys()))

    def misfits(self, prefix: str = "") -> list[str]:
        """Return the dotted names of known keys whose value had the wrong type (kept in ``extra``)."""
        names = {f.name for f in fields(self) if f.name not in ("extra", "keys")}
        out = [prefix + k for k in self.extra if k in names]
        for k in sorted(names):
            v = getattr(self, k)
            for x in (v if isinstance(v, tuple) else (v,)):
                if isinstance(x, _Record):
                    out += x.misfits(f"{prefix}{k}.")
        return out

    def as_dict(self) -> dict:
        """Return the dict this record was read from (or, built directly, its fields then ``extra``)."""
        names = [f.name for f in fields(self) if f.name not in ("extra", "keys")]
        order = self.keys if self.keys is not None else tuple(names) + tuple(k for k in self.extra if k not in names)
        out: dict = {}
        for k in order:
            if k in self.extra:
                out[k] = copy.deepcopy(self.extra[k])
            elif k in names:
                out[k] = _plain(getattr(self, k))
        return out


def _plain(v):
    if isinstance(v, _Record):
        return v.as_dict()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return copy.deepcopy(v)


def _kept():
    return field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ProblemRecord(_Record):
    """One entry of ``summary["problems"]`` (see ``geo.problems.Problem``); a plain string is kept as text."""

    source: Optional[str] = None
    row: Optional[str] = None
    kind: Optional[str] = None
    message: Optional[str] = None
    fatal: Optional[bool] = None
    count: Optional[int] = None
    text: Optional[str] = None           # a problem given as a bare string (old or hand-made summaries)
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()

    @staticmethod
    def plain_ok(x) -> bool:
        """Whether a non-dict list item can stand as a problem (a bare string)."""
        return isinstance(x, str)

    @classmethod
    def from_plain(cls, x: str) -> "ProblemRecord":
        """Read a problem given as a bare string."""
        return cls(message=x, text=x, keys=())

    def as_dict(self):
        """Return the problem as it was given (a dict, or the bare string)."""
        return self.text if self.text is not None and self.keys == () else super().as_dict()

    @property
    def is_fatal(self) -> bool:
        """Whether the problem stopped the plan (a missing flag is not fatal)."""
        return bool(self.fatal)

    @property
    def shown_count(self) -> int:
        """How many rows the problem stands for (1 when not said)."""
        return self.count if isinstance(self.count, int) and self.count > 1 else 1


@dataclass(frozen=True)
class Coverage(_Record):
    """``summary["coverage"]``: the station siting's figures (``share`` is None when nothing was measured)."""

    minutes: Optional[float] = None
    mode: Optional[str] = None
    share: Optional[float] = None
    speed_kmh: Optional[float] = None
    travel: Optional[str] = None
    households_covered: Optional[float] = None
    households_total: Optional[float] = None
    stations: Optional[int] = None
    existing: Optional[int] = None
    added: Optional[int] = None
    candidates: Optional[int] = None
    model: Optional[str] = None
    status: Optional[str] = None
    bound: Optional[float] = None
    gap: Optional[float] = None
    coverable_share: Optional[float] = None
    target: Optional[float] = None
    max_stations: Optional[int] = None
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()


@dataclass(frozen=True)
class BalanceFigures(_Record):
    """``summary["balance"]["excluding_failed"]``: the balance figures without failed units' grids."""

    max_abs_dev: Optional[float] = None
    p95_abs_dev: Optional[float] = None
    within_tolerance_share: Optional[float] = None
    grids: Optional[int] = None
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()


@dataclass(frozen=True)
class Balance(_Record):
    """``summary["balance"]``: the strict share first, then the added figures (see optimize.summary)."""

    max_abs_dev: Optional[float] = None
    p95_abs_dev: Optional[float] = None
    within_tolerance_share: Optional[float] = None
    within_granular_tolerance_share: Optional[float] = None
    tolerance: Optional[float] = None
    excluding_failed: Optional[BalanceFigures] = None
    uncertified_miss_grids: Optional[int] = None
    uncertified_miss_share: Optional[float] = None
    certified_miss_grids: Optional[int] = None
    failed_grids: Optional[int] = None
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()


@dataclass(frozen=True)
class Compactness(_Record):
    """``summary["compactness"]``: Polsby-Popper mean and 10th percentile (None without grids)."""

    polsby_popper_mean: Optional[float] = None
    polsby_popper_p10: Optional[float] = None
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()


@dataclass(frozen=True)
class GridCountMismatch(_Record):
    """One unit whose grid count differs from ``choose_k``'s, with the reason when known."""

    unit: Optional[str] = None
    grids: Optional[int] = None
    expected: Optional[int] = None
    reason: Optional[str] = None
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()


@dataclass(frozen=True)
class Partition(_Record):
    """``summary["partition"]``: model statuses, units by balance status, grid-count mismatches, budget."""

    statuses: Optional[dict] = None
    units_by_balance: Optional[dict] = None
    grid_count_mismatches: Optional[tuple[GridCountMismatch, ...]] = None
    households_relabelled: Optional[int] = None
    model_budget: Optional[dict] = None
    households_per_second: Optional[float] = None
    jobs: Optional[int] = None
    scheduler: Optional[str] = None
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()


@dataclass(frozen=True)
class Summary(_Record):
    """summary.json as a record: CONTRACT.md's keys, the added sections, and ``extra`` for the rest.

    Sections the dict lacks read as empty records (every figure None), so readers never need defaults.
    """

    households: Optional[int] = None
    units: Optional[int] = None
    grids: Optional[int] = None
    workers: Optional[int] = None
    stations: Optional[int] = None
    coverage: Optional[Coverage] = None
    balance: Optional[Balance] = None
    compactness: Optional[Compactness] = None
    contiguous_share: Optional[float] = None
    gap_area_m2: Optional[float] = None
    overlap_area_m2: Optional[float] = None
    unassigned_households: Optional[int] = None
    partition: Optional[Partition] = None
    options: Optional[dict] = None
    crs: Optional[str] = None
    problems: Optional[tuple[ProblemRecord, ...]] = None
    runtime_s: Optional[dict] = None
    extra: dict = field(default_factory=dict)
    keys: Optional[tuple] = _kept()

    # --- readers' views: a missing section is an empty one ---------------------------------
    @property
    def cov(self) -> Coverage:
        """The coverage section (empty when absent)."""
        return self.coverage or Coverage()

    @property
    def bal(self) -> Balance:
        """The balance section (empty when absent)."""
        return self.balance or Balance()

    @property
    def comp(self) -> Compactness:
        """The compactness section (empty when absent)."""
        return self.compactness or Compactness()

    @property
    def part(self) -> Partition:
        """The partition section (empty when absent)."""
        return self.partition or Partition()

    @property
    def problem_list(self) -> tuple[ProblemRecord, ...]:
        """The problems (none when absent)."""
        return self.problems or ()

    def option(self, name: str, default=None):
        """Return one of the plan's options as the summary records it, else ``default``."""
        return (self.options or {}).get(name, default)

    @property
    def tolerance(self) -> float | None:
        """The balance tolerance: the balance section's, else the options', else None."""
        for v in (self.bal.tolerance, self.option("tolerance")):
            f = _number(v)
            if f is not None:
                return f
        return None

    @property
    def output_coords(self) -> str:
        """The coordinate system the layers were written in ("wgs84" when the summary does not say)."""
        v = self.extra.get("output_coords") or self.option("output_coords")
        return v if isinstance(v, str) and v else "wgs84"

    @property
    def runtime_total(self) -> float | None:
        """The total runtime in seconds, or None."""
        return _number((self.runtime_s or {}).get("total"))


__all__ = ["Summary", "Coverage", "Balance", "BalanceFigures", "Compactness", "Partition", "GridCountMismatch",
           "ProblemRecord", "UNKNOWN", "fmt_num", "fmt_pct"]
