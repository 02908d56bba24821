"""summary.json: the plan's figures, each one recomputable from the output files.

Balance is reported three ways, the strict one first:

- ``balance.within_tolerance_share`` (the headline): grids within ±tolerance of their unit's
  mean, over *all* grids. A unit whose models failed is one grid where ``choose_k`` wanted k:
  its deviation is measured against the intended mean H/k (so it is k − 1, never a false 0).
- ``balance.excluding_failed``: the same figures without failed units' grids.
- ``balance.within_granular_tolerance_share`` (secondary): also counts a grid as balanced when
  it is within half its unit's largest indivisible point — a bound, not a claim of balance.

Units are counted by balance status (``UnitPartition.balance``: within, certified, miss, failed,
single, empty). When the partition leaves it empty, it is derived from the grids' deviations with
"miss" for anything out of tolerance: nothing is called unreachable without a certificate.
Uncertified misses, failed units and grid counts other than ``choose_k`` are listed in
``problems``. ``shared/tools/check_plan.py --certify --target-households T`` re-derives the
strict share, the uncertified-miss share and the grid counts from the files.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gridplan.geo.problems import Problem
from gridplan.geo.summary import Balance, Compactness, Coverage, Partition, ProblemRecord, Summary
from gridplan.optimize.partition import choose_k

STATUSES = ("within", "certified", "miss", "failed", "single", "empty")
EPS = 1e-9


def note_parts(note) -> tuple[str, str]:
    """Return a partition note as (kind, message): a (kind, message) pair, an object with both, or text.

    Plain-text notes (the partition's older form) get their kind from the words they start with.
    """
    if isinstance(note, (tuple, list)) and len(note) == 2:
        return str(note[0]), str(note[1])
    if hasattr(note, "kind") and hasattr(note, "message"):
        return str(note.kind), str(note.message)
    text = str(note)
    kind = "k_reduced" if "k reduced" in text else "k_raised" if "k raised" in text else "note"
    return kind, text


def unit_balance(part, devs: np.ndarray, total: float, tol: float) -> str:
    """Return the balance status of one unit from its partition and its grids' |deviation| (see module doc)."""
    given = getattr(part, "balance", "") or ""
    if given == "failed" or part.status == "failed":
        return "failed"
    if total <= 0:
        return "empty"
    if part.k <= 1:
        return "single"
    out = bool(len(devs)) and float(np.max(devs)) > tol + EPS
    if not out:
        return "within"
    return "certified" if given == "certified" else "miss"    # never over-claim: no certificate, a miss


def balance_figures(dev: np.ndarray, tol: float) -> dict:
    """Return max, p95 and the strict within-tolerance share of absolute deviations (contract fields)."""
    dev = np.asarray(dev, dtype=float)
    if not len(dev):
        return {"max_abs_dev": 0.0, "p95_abs_dev": 0.0, "within_tolerance_share": 1.0}
    return {"max_abs_dev": round(float(dev.max()), 4), "p95_abs_dev": round(float(np.quantile(dev, 0.95)), 4),
            "within_tolerance_share": round(float((dev <= tol + EPS).mean()), 4)}


def unit_review(units, grids, results, unit_totals, targets, tol: float):
    """Per unit: balance status, expected grid count and the problems to report.

    Returns (status per unit index, grid-count mismatches as dicts, problems).
    """
    status: dict[int, str] = {}
    mismatches: list[dict] = []
    problems: list[Problem] = []
    dev_by_unit = grids.groupby("unit_idx")["deviation"].apply(lambda s: np.abs(s.to_numpy(float))) \
        if len(grids) else pd.Series(dtype=object)
    for u in sorted(results):
        part = results[u]
        code = str(units.iloc[u]["unit_code"])
        total = float(unit_totals.get(u, 0))
        devs = dev_by_unit.get(u, np.zeros(0))
        s = status[u] = unit_balance(part, devs, total, tol)
        where = f"unit {code}"
        n_out = int((devs > tol + EPS).sum())
        want = choose_k(total, targets[u])
        if s == "failed":
            cause = "; ".join(note_parts(n)[1] for n in part.notes) or "the partition models failed"
            problems.append(Problem(source="partition", row=where, kind="partition_failed",
                                    message=f"{cause} of {total:.0f} households where {want} "
                                            f"{'was' if want == 1 else 'were'} intended (deviation {float(devs.max()) if len(devs) else 0.0:.0%} "
                                            f"from the intended mean)"))
        elif s == "miss":
            problems.append(Problem(source="partition", row=where, kind="model_miss", count=n_out,
                                    message=f"model miss: {n_out} of {part.k} grids outside ±{tol:.0%} (max deviation "
                                            f"{float(devs.max()):.1%}); not proven unreachable"))
        elif s == "certified":
            band = getattr(part, "best_band", None)
            problems.append(Problem(source="partition", row=where, kind="tolerance_unreachable", count=n_out,
                                    message=f"±{tol:.0%} unreachable (proven: no split of the points into {part.k} "
                                            f"groups meets it); smallest achievable band "
                                            f"{'unknown' if band is None else f'{band:.1%}'}, "
                                            f"max deviation {float(devs.max()):.1%}"))
        if part.k != want and not (s == "empty" and part.k == 1):
            why = [m for k, m in map(note_parts, part.notes)
                   if k in ("k_reduced", "k_raised") or "k reduced" in m or "k raised" in m]
            reason = why[0] if why else ("the models failed" if s == "failed" else
                                         "baseline re-plan" if part.status.startswith("baseline") else "")
            mismatches.append({"unit": code, "grids": int(part.k), "expected": int(want), "reason": reason})
            problems.append(Problem(source="partition", row=where, kind="grid_count",
                                    message=f"{part.k} grids where round({total:.0f} / {targets[u]:g}) = {want}"
                                            + (f": {reason}" if reason else "")))
        if s != "failed":
            problems.extend(Problem(source="partition", row=where, kind="partition_note", message=note_parts(n)[1])
                            for n in part.notes)
    return status, mismatches, problems


def geometry_figures(grids, geom_stats: dict) -> dict:
    """Return gap and overlap areas (m², each unit measured in its own metric CRS) and the contiguous share."""
    gap = overlap = 0.0
    contiguous = 0
    for st in geom_stats.values():
        gap += st["gap"]
        overlap += st["overlap"]
        contiguous += st["contiguous"]
    return {"contiguous_share": round(contiguous / len(grids), 4) if len(grids) else 1.0,
            "gap_area_m2": round(max(gap, 0.0), 2), "overlap_area_m2": round(max(overlap, 0.0), 2)}


def granular_share(grids, hh, tol: float) -> float:
    """Return the share of grids within max(tol · mean, half the unit's largest point) of the unit mean."""
    if not len(grids):
        return 1.0
    inside = hh[hh["unit_idx"] >= 0]
    row_col, grid_col = ("_measure", "measure") if "_measure" in inside and "measure" in grids else \
        ("households", "households")
    biggest = inside.groupby("unit_idx")[row_col].max()
    mean_u = grids.groupby("unit_idx")[grid_col].transform("mean").to_numpy(float)
    big = grids["unit_idx"].map(biggest).fillna(0).to_numpy(float)
    slack = np.maximum(tol * mean_u, 0.5 * big)
    return round(float((np.abs(grids[grid_col].to_numpy(float) - mean_u) <= slack + EPS).mean()), 4)


def measure_spread(grids, column: str, tol: float) -> dict:
    """Return the balance figures of another per-grid ``column`` against its unit's mean (a report, no claim)."""
    if not len(grids) or column not in grids:
        return balance_figures(np.zeros(0), tol)
    values = grids[column].to_numpy(float)
    mean_u = grids.groupby("unit_idx")[column].transform("mean").to_numpy(float)
    with np.errstate(all="ignore"):
        dev = np.where(mean_u > 0, np.abs(values - mean_u) / mean_u, 0.0)
    return balance_figures(dev, tol)


def measure_section(grids, opts) -> dict:
    """Return what the balance is measured in, and the spread of the other measures (summary["balance"])."""
    out: dict = {"measure": opts.balance_by}
    if opts.workload:
        out["workload"] = opts.workload
    if opts.balance_by != "households":
        out["households_spread"] = measure_spread(grids, "households", float(opts.tolerance))
    if opts.balance_by != "workload" and "_workload" in grids:
        out["workload_spread"] = measure_spread(grids, "_workload", float(opts.tolerance))
    if opts.secondary is not None:
        name, s_tol = opts.secondary
        out["secondary"] = {"measure": name, "tolerance": s_tol, **measure_spread(grids, "_secondary", s_tol)}
    return out


def balance_section(grids, hh, status: dict, tol: float) -> dict:
    """Return summary["balance"]: the contract's fields over all grids, then the added figures."""
    dev = np.abs(grids["deviation"].to_numpy(float)) if len(grids) else np.zeros(0)
    g_status = grids["unit_idx"].map(status).to_numpy(object) if len(grids) else np.zeros(0, object)
    failed = g_status == "failed"
    out = dev > tol + EPS
    balance = balance_figures(dev, tol)
    balance.update(
        within_granular_tolerance_share=granular_share(grids, hh, tol), tolerance=tol,
        excluding_failed={**balance_figures(dev[~failed], tol), "grids": int((~failed).sum())},
        uncertified_miss_grids=int((out & (g_status == "miss")).sum()),
        uncertified_miss_share=round(float((out & (g_status == "miss")).sum()) / max(len(grids), 1), 4),
        certified_miss_grids=int((out & (g_status == "certified")).sum()),
        failed_grids=int(failed.sum()))
    return balance


def build_summary(ds, opts, grids, hh, sres, problems, runtime, results, targets, budget: dict,
                  geom_stats: dict) -> dict:
    """Build summary.json's dict through ``geo.summary.Summary`` (CONTRACT.md keys first, then the added ones).

    Partition problems are appended to ``problems``; the dict's keys and values are those summary.json
    has always had (``Summary.from_dict(d).as_dict() == d``).
    """
    units = ds.units
    tol = float(opts.tolerance)
    inside = hh[hh["unit_idx"] >= 0]
    totals = inside.groupby("unit_idx")["households"].sum().to_dict()
    status, mismatches, more = unit_review(units, grids, results, totals, targets, tol)
    problems = list(problems) + more
    balance = balance_section(grids, hh, status, tol)
    balance.update(measure_section(grids, opts))
    counts = {s: 0 for s in STATUSES}
    for s in status.values():
        counts[s] = counts.get(s, 0) + 1
    model = pd.Series([results[u].status for u in sorted(results)]).value_counts().to_dict()
    total_hh = int(hh["households"].sum())
    part_s = runtime.get("partition", 0.0)
    cov = dict(sres.summary)
    cov.setdefault("minutes", opts.minutes)
    cov.setdefault("mode", opts.mode)
    cov.setdefault("speed_kmh", opts.effective_speed_kmh)
    geometry = geometry_figures(grids, geom_stats)
    pp = grids["polsby_popper"] if len(grids) else None
    return Summary(
        households=total_hh, units=int(len(units)), grids=int(len(grids)),
        workers=int(grids["workers"].sum()) if len(grids) else 0,
        stations=int(len(sres.stations)),
        coverage=Coverage.from_dict(cov),
        balance=Balance.from_dict(balance),
        compactness=Compactness(polsby_popper_mean=round(float(pp.mean()), 4) if pp is not None else None,
                                polsby_popper_p10=round(float(pp.quantile(0.10)), 4) if pp is not None else None),
        contiguous_share=geometry["contiguous_share"], gap_area_m2=geometry["gap_area_m2"],
        overlap_area_m2=geometry["overlap_area_m2"],
        unassigned_households=int(hh.loc[hh["unit_idx"] < 0, "households"].sum()),
        partition=Partition.from_dict({
            "statuses": {str(k): int(v) for k, v in model.items()},
            "units_by_balance": counts,
            "grid_count_mismatches": mismatches,
            # households whose model label named a grid that does not hold them: labelled
            # with the grid that does (so the layer, lookup and a recount agree)
            "households_relabelled": int(sum(st.get("relabelled", 0) for st in geom_stats.values())),
            "model_budget": budget,
            "households_per_second": round(total_hh / part_s, 1) if part_s > 0 else None,
            "jobs": opts.jobs, "scheduler": opts.scheduler}),
        options={k: v for k, v in opts.as_dict().items() if k not in ("scheduler",)},
        crs=ds.crs.to_string(),
        problems=tuple(ProblemRecord.from_dict(p.as_dict()) for p in problems),
        runtime_s={},
    ).as_dict()


def levels(units, grids, micro=None) -> dict:
    """Return the counts of the five levels: counties, townships, villages (units), grids, micro-grids.

    ``micro_grids`` is None when the plan has none.
    """
    def distinct(col: str) -> int:
        return int(units[col].dropna().astype(str).replace("", np.nan).dropna().nunique()) if col in units else 0
    return {"counties": distinct("county_code"), "townships": distinct("township_code"),
            "villages": int(len(units)), "grids": int(len(grids)),
            "micro_grids": None if micro is None else int(len(micro))}


def micro_summary(micro, target: float) -> dict:
    """Return summary["micro_grids"]: the target, the count and the spread of households per micro-grid."""
    h = micro["households"].to_numpy(float) if len(micro) else np.zeros(0)
    q = (lambda p: round(float(np.quantile(h, p)), 1)) if len(h) else (lambda p: None)
    return {"target": float(target), "count": int(len(micro)), "households_p10": q(0.1),
            "households_median": q(0.5), "households_p90": q(0.9),
            "households_max": int(h.max()) if len(h) else None}
