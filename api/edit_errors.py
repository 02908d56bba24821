"""problem+json for ``POST /v1/plans/{id}/edits``: a refused or invalid edits list → 422 naming the edit and field.

The route (wired by the plan-versions work) calls ``optimize.edit_apply.apply_edits`` and turns its
two errors into a :class:`~api.problems.ProblemError` with :func:`edits_problem`.
"""
from __future__ import annotations

from gridplan.api.problems import ProblemError, error_item
from gridplan.optimize.edit_apply import EditsInvalid, EditsRefused


def edits_problem(exc: EditsInvalid | EditsRefused) -> ProblemError:
    """Return the 422 problem for an invalid (``edits-invalid``) or refused (``edit-refused``) edits list.

    Parameters
    ----------
    exc : EditsInvalid or EditsRefused
        From ``apply_edits``.

    Returns
    -------
    ProblemError
        ``errors`` items name the field (``edits[i].field``) and the problem; a refusal's detail
        names the edit, the grids and the figures.
    """
    if isinstance(exc, EditsInvalid):
        return ProblemError(422, f"the edits do not validate: {len(exc.errors)} problem(s)",
                            [error_item(f, None, m) for f, m in exc.errors], kind="edits-invalid")
    return ProblemError(422, str(exc), [error_item(exc.field or f"edits[{exc.index}]", None, exc.cause.reason)],
                        kind="edit-refused")
