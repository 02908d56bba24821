"""The change log on disk: ``changes.json`` in a plan's output directory (a JSON list of edit records)."""
from __future__ import annotations

import json
from pathlib import Path

CHANGES_FILE = "changes.json"


def write_changes(path, changes: list) -> Path:
    """Write the change log into the output directory ``path``; return the file's path."""
    from gridplan.geo.output import summary_json
    out = Path(path) / CHANGES_FILE
    records = [c.as_dict() if hasattr(c, "as_dict") else dict(c) for c in changes]
    out.write_text(summary_json(records), encoding="utf-8")
    return out


def read_changes(path) -> list:
    """Read the change log of the output directory ``path`` (empty when it has none)."""
    from gridplan.optimize.edit_state import Change
    f = Path(path) / CHANGES_FILE
    if not f.is_file():
        return []
    data = json.loads(f.read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise ValueError(f"{CHANGES_FILE}: expected a list of edit records")
    return [Change.from_dict(d) for d in data if isinstance(d, dict)]
