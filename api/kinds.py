"""Job kinds: what a ``POST /v1/jobs`` computes, the uploads it needs and the runner that computes it.

A job's optional form field ``kind`` picks an entry of ``KINDS`` (``plan`` when absent). Each
kind names its required and optional uploads, how its ``params`` are checked, and its runner
(``"module:function"``, called in the job's runner process as
``fn(inputs: dict[str, Path], params: dict, out_dir: Path, progress) -> summary dict``, like
:func:`api.worker.run_plan`). A new kind is one more entry here
(``merge`` also takes the repeated ``layers`` upload: :mod:`api.mergekind`).

The kind travels with the job in its ``params`` (``"kind": "audit"``; nothing is added for a
plan, so plan jobs look as before); the ``plan`` kind runs ``settings.runner`` (which tests swap).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gridplan.api.problems import ProblemError, error_item

PLAN_UPLOADS = ("facilities", "roster", "network", "barriers")


@dataclass(frozen=True)
class Kind:
    """One job kind: its uploads, its runner and how its params are checked ("plan", "audit" or "merge" rules)."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    runner: str | None          # "module:function"; None: the server's plan runner (settings.runner)
    params: str = "plan"        # which options the params field holds


KINDS: dict[str, Kind] = {
    "plan": Kind("plan", ("boundaries", "households"), PLAN_UPLOADS + ("baseline",), None),
    "audit": Kind("audit", ("grids", "boundaries", "households"), (), "gridplan.api.kinds:run_audit", "audit"),
    "adopt": Kind("adopt", ("grids", "boundaries", "households"), PLAN_UPLOADS, "gridplan.api.kinds:run_adopt"),
    # legacy layers come as the repeated ``layers`` upload, stored as ``layer:NAME`` (api.mergekind)
    "merge": Kind("merge", ("boundaries", "households", "layers"), ("facilities", "roster"),
                  "gridplan.api.kinds:run_merge", "merge"),
}
UPLOADS = tuple(dict.fromkeys(r for k in KINDS.values() for r in k.required + k.optional))
NO_PLAN_KINDS = ("audit",)   # kinds whose output is no plan: never the default plan of a lookup
# how such a job's stored params read (json.dumps of {..., "kind": name}), for the store's query
NO_PLAN_PARAMS = tuple(f'%"kind": "{k}"%' for k in NO_PLAN_KINDS)


def get_kind(name: str | None) -> Kind:
    """Return the kind named by the form field (``plan`` when empty); a 422 naming ``kind`` otherwise."""
    name = (name or "plan").strip()
    if name not in KINDS:
        raise ProblemError(422, f"unknown job kind {name[:40]!r}: one of {', '.join(KINDS)}",
                           [error_item("kind", None, f"kind must be one of {', '.join(KINDS)}")], kind="invalid-kind")
    return KINDS[name]


def check_files(kind: Kind, given: set[str]) -> None:
    """Refuse (422) a job whose uploads miss one its kind requires or include one it does not take."""
    missing = [r for r in kind.required if r not in given]
    extra = sorted(r for r in given if r not in kind.required + kind.optional)
    errors = [error_item(r, None, f"a {kind.name} job needs the {r} upload") for r in missing]
    errors += [error_item(r, None, f"a {kind.name} job takes no {r} upload (it takes "
                                   f"{', '.join(kind.required + kind.optional)})") for r in extra]
    if errors:
        raise ProblemError(422, f"the uploads do not fit a {kind.name} job: see errors", errors, kind="invalid-upload")


def parse_kind_params(kind: Kind, params: dict, plan_parser: Callable[[dict], dict]) -> dict:
    """Check a job's options for its kind; return what the job stores (the kind added unless ``plan``).

    ``plan_parser`` checks a dict of plan options (422 naming the option) and returns it. A merge
    job's params are plan options plus ``layer_id_fields``.
    """
    if kind.params == "audit":
        from gridplan.optimize.audit import audit_options
        from gridplan.optimize.options import OptionsError
        try:
            audit_options(params)
        except OptionsError as e:
            raise ProblemError(422, "params has invalid options: " + ", ".join(e.fields),
                               [error_item("params", name, f"{name}: {msg}") for name, msg in e.errors],
                               kind="invalid-params")
        opts = dict(params)
    elif kind.params == "merge":
        from gridplan.api.mergekind import check_id_fields
        opts = plan_parser(check_id_fields(params))
        opts = {**opts, **({"layer_id_fields": params["layer_id_fields"]} if "layer_id_fields" in params else {})}
    else:
        opts = plan_parser(params)
    return opts if kind.name == "plan" else {**opts, "kind": kind.name}


def runner_for(params: dict, plan_runner: str) -> tuple[str, dict]:
    """Return (runner spec, params without ``kind``) for a stored job's params."""
    params = dict(params)
    kind = KINDS.get(str(params.pop("kind", "plan")), KINDS["plan"])
    return kind.runner or plan_runner, params


# ---------------------------------------------------------------------------------- the runners
def run_audit(inputs: dict[str, Path], params: dict, out_dir: Path, progress) -> dict:
    """Audit the uploaded grid layer; write audit.json, audit.gpkg and audit.html; return the headline."""
    from gridplan.optimize.audit import audit, audit_options
    progress("audit", 0.1)
    result = audit(str(inputs["grids"]), str(inputs["boundaries"]), str(inputs["households"]),
                   **audit_options(params))
    progress("audit", 0.9)
    result.to_dir(out_dir)
    return {"kind": "audit", "clean": result.clean, "counts": result.counts, "stats": result.stats,
            "certified": len(result.certified)}


def run_adopt(inputs: dict[str, Path], params: dict, out_dir: Path, progress) -> dict:
    """Plan against the uploaded grid layer as the baseline (its balanced grids keep geometry and code)."""
    from gridplan.api.worker import run_plan
    inputs = dict(inputs)
    inputs["baseline"] = inputs.pop("grids")
    summary = run_plan(inputs, params, out_dir, progress)
    return {**summary, "kind": "adopt"}


def run_merge(inputs: dict[str, Path], params: dict, out_dir: Path, progress) -> dict:
    """Merge the uploaded legacy layers (``layer:NAME`` inputs) into one plan with crosswalks."""
    from gridplan.optimize.merge import run_merge as merge_runner
    return {**merge_runner(inputs, params, out_dir, progress), "kind": "merge"}
