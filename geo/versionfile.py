"""``version.json``: the record a plan output directory carries of which version it is.

``{"id", "parent", "source", "created"}`` — the version id (a job's output keeps the job's id),
the version it was made from (null for a fresh plan), how it was made (``plan``, ``audit``,
``adopt``, ``edit``, ``merge``) and when (ISO 8601, UTC). A directory without the file (``gridplan
plan`` on the command line) is simply an unnamed version.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

VERSION_FILE = "version.json"


def write_version(out_dir: str | Path, vid: str, source: str, parent: str | None = None,
                  created: float | None = None) -> Path:
    """Write ``version.json`` into ``out_dir`` (atomically) and return its path.

    Parameters
    ----------
    out_dir : str or Path
        The plan's output directory (it must exist).
    vid, source : str
        The version id and how it was made.
    parent : str, optional
        The id of the version it was made from.
    created : float, optional
        Unix time of its making (now when None).
    """
    when = dt.datetime.fromtimestamp(created if created is not None else dt.datetime.now().timestamp(),
                                     dt.timezone.utc).isoformat(timespec="seconds")
    path = Path(out_dir) / VERSION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"id": vid, "parent": parent, "source": source, "created": when}, indent=1),
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_version(out_dir: str | Path) -> dict | None:
    """Return the ``version.json`` record of ``out_dir``; None when it has none or it is unreadable."""
    try:
        rec = json.loads((Path(out_dir) / VERSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("id"), str) else None
