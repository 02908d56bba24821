"""Helpers for the plan-version tests: a runner whose grid codes say which plan they belong to.

``coded_runner`` writes the tiny plan (tests/helpers/api.py) with each grid's sequence number
offset by ``target_households // 100 * 10``, so a lookup answer's grid code tells which version
answered it (:func:`codes_of`).
"""
from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.api import tiny_layers


def coded_layers(k: int):
    """The tiny plan's layers and summary with grid sequence numbers shifted by ``10 * k``."""
    layers, summary = tiny_layers()
    old = list(layers["grids"]["grid_code"])
    new = [c[:-3] + f"{int(c[-3:]) + 10 * k:03d}" for c in old]
    ren = dict(zip(old, new))
    for name in ("grids", "households", "workers"):
        layers[name] = layers[name].assign(grid_code=layers[name]["grid_code"].map(ren))
    summary["balance"] = {"within_tolerance_share": 1.0 - k / 100}
    return layers, summary


def codes_of(k: int) -> set[str]:
    """The grid codes of the plan ``coded_runner`` makes for ``target_households = 100 * k``."""
    return set(coded_layers(k)[0]["grids"]["grid_code"])


def coded_runner(inputs, params, out_dir, progress) -> dict:
    """Write the tiny plan with grid codes of version ``target_households // 100``."""
    from gridplan.geo.output import write_plan_dir

    progress("partition", 0.5)
    layers, summary = coded_layers(int(params.get("target_households", 0)) // 100)
    write_plan_dir(Path(out_dir), layers, summary, report=False)
    return json.loads((Path(out_dir) / "summary.json").read_text())


def make_versions(data_dir: Path, ks=(1, 2, 3), database_url: str | None = None) -> list[str]:
    """Succeeded jobs made straight in the store (no runner), one per ``k``; their ids in order.

    Call before the app starts: its dispatcher would otherwise claim the queued rows.
    """
    from gridplan.api.settings import Settings
    from gridplan.api.store import Store
    from gridplan.geo.output import write_plan_dir

    st = Store(Settings(data_dir=str(data_dir), database_url=database_url))
    ids = []
    for k in ks:
        jid = st.new_id()
        st.create_job(jid, {"target_households": 100 * k}, {})
        layers, summary = coded_layers(k)
        write_plan_dir(st.out_dir(jid), layers, summary, report=False)
        st.publish_layers(jid)   # PostgreSQL: the layers the routes and the index read
        assert st.finish(jid, "succeeded", summary=summary, only_if=("queued",))
        ids.append(jid)
    return ids
