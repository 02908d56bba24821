"""``apply_edits(plan, edits)``: a list of edit dicts, validated strictly, applied in order.

The dicts are JSON, as the CLI's ``--edits`` file and the HTTP ``POST /v1/plans/{id}/edits`` body
give them.

Each edit is one of::

    {"op": "lock", "codes": ["469001000001001", ...]}
    {"op": "unlock", "codes": [...]}
    {"op": "move", "points": ["h17", ...] | "polygon": <GeoJSON Polygon/MultiPolygon/Feature>, "to": CODE}
    {"op": "merge", "a": CODE, "b": CODE}            (a keeps its code, b retires)
    {"op": "split", "code": CODE, "k": 2}
    {"op": "rebalance", "unit": UNIT_CODE, "k": null}

and any of move/merge/split/rebalance may add ``"force": true`` (keep a result out of tolerance;
the plan's problems say so). Unknown fields and wrong types are refused (pydantic, strict), with
errors naming the field as ``edits[i].field``. The edits apply all or nothing: the first refused
edit raises :class:`EditsRefused` naming it, and no plan is returned.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from gridplan.optimize.edit_state import EditError
from gridplan.optimize.result import Plan

MAX_EDITS = 1000
MAX_POINTS = 100_000
Code = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-]+$")]
HouseholdId = Union[Annotated[StrictStr, Field(max_length=200)], StrictInt]


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockEdit(_Edit):
    """Lock grids: no later edit or rebalance changes them."""

    op: Literal["lock"]
    codes: Annotated[list[Code], Field(min_length=1, max_length=10_000)]


class UnlockEdit(_Edit):
    """Unlock grids."""

    op: Literal["unlock"]
    codes: Annotated[list[Code], Field(min_length=1, max_length=10_000)]


class MoveEdit(_Edit):
    """Move households (by id, or all inside a WGS 84 GeoJSON polygon) and their land to grid ``to``."""

    op: Literal["move"]
    points: Optional[Annotated[list[HouseholdId], Field(min_length=1, max_length=MAX_POINTS)]] = None
    polygon: Optional[dict[str, Any]] = None
    to: Code
    force: StrictBool = False

    @model_validator(mode="after")
    def _one_selection(self) -> "MoveEdit":
        if (self.points is None) == (self.polygon is None):
            raise ValueError("give exactly one of points (household ids) or polygon (GeoJSON)")
        return self


class MergeEdit(_Edit):
    """Merge grid ``b`` into grid ``a``."""

    op: Literal["merge"]
    a: Code
    b: Code
    force: StrictBool = False


class SplitEdit(_Edit):
    """Split grid ``code`` into ``k`` grids."""

    op: Literal["split"]
    code: Code
    k: Annotated[StrictInt, Field(ge=2, le=50)] = 2
    force: StrictBool = False


class RebalanceEdit(_Edit):
    """Re-partition a unit's unlocked grids."""

    op: Literal["rebalance"]
    unit: Code
    k: Optional[Annotated[StrictInt, Field(ge=1, le=999)]] = None
    force: StrictBool = False


Edit = Annotated[Union[LockEdit, UnlockEdit, MoveEdit, MergeEdit, SplitEdit, RebalanceEdit], Field(discriminator="op")]
_EDITS = TypeAdapter(Annotated[list[Edit], Field(max_length=MAX_EDITS)])


class EditsInvalid(ValueError):
    """The edits list does not validate; ``errors`` holds (field, message) pairs, fields as ``edits[i].name``."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors[:10]))


class EditsRefused(EditError):
    """An edit of the list was refused: ``index`` (0-based) and ``op`` name it; the plan is unchanged."""

    def __init__(self, index: int, op: str, error: EditError):
        super().__init__(f"edit {index + 1} ({op}): {error.reason}", error.grids,
                         f"edits[{index}].{error.field}" if error.field else f"edits[{index}]")
        self.index, self.op, self.cause = index, op, error


def _field(loc: tuple) -> str:
    out = "edits"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("lock", "unlock", "move", "merge", "split", "rebalance"):
            continue                      # the discriminator's branch name is not a field
        else:
            out += f".{part}"
    return out


def validate_edits(edits) -> list:
    """Validate a list of edit dicts; return the typed edits.

    Parameters
    ----------
    edits : list of dict
        As documented in the module docstring.

    Returns
    -------
    list of edit models

    Raises
    ------
    EditsInvalid
        Naming every field that is wrong.
    """
    try:
        return _EDITS.validate_python(edits)
    except ValidationError as e:
        raise EditsInvalid([(_field(err["loc"]) + _suffix(err), err["msg"].removeprefix("Value error, "))
                            for err in e.errors()]) from None


def _suffix(err: dict) -> str:
    """Name the field an error without one is about (the op tag; the move's selection)."""
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return ".op"
    if err["type"] == "value_error" and "points" in err["msg"]:
        return ".points"
    return ""


def apply_one(plan: Plan, edit) -> Plan:
    """Apply one validated edit to ``plan``; return the new plan."""
    from gridplan.optimize import edit as E, edit_split as S
    if isinstance(edit, (LockEdit, UnlockEdit)):
        return E.lock(plan, list(edit.codes), unlock=isinstance(edit, UnlockEdit))
    if isinstance(edit, MoveEdit):
        return E.move(plan, points=edit.points, polygon=edit.polygon, to=edit.to, force=edit.force)
    if isinstance(edit, MergeEdit):
        return E.merge_grids(plan, edit.a, edit.b, force=edit.force)
    if isinstance(edit, SplitEdit):
        return S.split(plan, edit.code, k=edit.k, force=edit.force)
    return S.rebalance(plan, edit.unit, k=edit.k, force=edit.force)


def apply_edits(plan: Plan, edits: list[dict]) -> Plan:
    """Validate ``edits`` and apply them in order, all or nothing.

    Parameters
    ----------
    plan : Plan
        The plan to start from (never changed).
    edits : list of dict
        Edit dicts (module docstring).

    Returns
    -------
    Plan
        The plan after every edit, its change log extended by one record per edit.

    Raises
    ------
    EditsInvalid
        The list does not validate (fields named).
    EditsRefused
        An edit was refused (its index, op and reason).
    """
    typed = validate_edits(edits)
    out = plan
    for i, e in enumerate(typed):
        try:
            out = apply_one(out, e)
        except EditError as err:
            raise EditsRefused(i, e.op, err) from None
    return out
