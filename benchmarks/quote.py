"""Print, from benchmark results files, the lines README.md may quote: provenance and tables.

    python benchmarks/quote.py                    # the newest file of every script in benchmarks/results/
    python benchmarks/quote.py province hostile   # only scripts whose name contains these words
    python benchmarks/quote.py FILE.json ...      # these files

Every block starts with the file's name, date, git revision (dirty or not), machine and load, so a
figure pasted into README.md carries where it came from.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def newest(words: list[str]) -> list[Path]:
    """The newest results file per script (optionally only scripts whose name holds one of ``words``)."""
    best: dict[str, Path] = {}
    for p in sorted(RESULTS.glob("*.json")):
        script = json.loads(p.read_text(encoding="utf-8")).get("script", p.stem)
        if words and not any(w in script for w in words):
            continue
        best[script] = p            # sorted by name = by time within a script
    return list(best.values())


def table(rows: list[dict], cols: list[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r
            for part in c.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            cells.append(f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int)
                         and not isinstance(v, bool) else "" if v is None else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def flat(d: dict, prefix: str = "") -> list[dict]:
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            rows += flat(v, f"{prefix}{k}.")
        elif not (isinstance(v, list) and v and isinstance(v[0], dict)):
            rows.append({"figure": f"{prefix}{k}", "value": v})
    return rows


def body(script: str, f: dict) -> str:
    """The script's main table(s); a flat figure | value table for scripts without a layout."""
    if script == "province":
        return table(f["runs"], ["via", "config", "units", "households", "grids", "runtime_s.partition",
                                 "runtime_s.siting", "runtime_s.output", "wall_s", "peak_rss_gb",
                                 "check.within_tolerance_share", "check.uncertified_miss_share",
                                 "check.units_wrong_grid_count", "check.polsby_popper_mean", "speedup_vs_1",
                                 "identical_to_local"])
    if script == "lookup_speed":
        return table(f["warm"], ["method", "points", "points_per_s_best", "points_per_s_median", "x_sjoin_warm"]) + \
            f"\n\ncold: {f['cold']}"
    if script == "http_lookup":
        return table(f["endpoints"], ["endpoint", "req_per_s", "p50_ms", "p99_ms", "non_2xx"]) + \
            f"\n\nPOST batch: {f.get('post_batch')}"
    if script == "partition_vs_peers":
        out = table(f["instance1"]["rows"], ["method", "k", "within10", "within5", "max_dev", "pp_mean", "pp_p10",
                                             "disconnected", "seconds", "notes"])
        if f.get("instance2"):
            out += "\n\n" + table(f["instance2"]["rows"], ["method", "units", "grids", "ok5", "ok10", "max_dev",
                                                           "pp_mean", "pp_p10", "disconnected", "seconds", "fails"])
        return out
    if script == "coords_speed":
        return table(f["rows"], ["conversion", "best_s", "points_per_s", "x_python_loop", "x_pyproj_utm_time"])
    if script == "hostile_uploads":
        parts = []
        if "a_auth_before_body" in f:
            parts.append(table(f["a_auth_before_body"]["cases"], ["case", "status", "answer_s",
                                                                  "body_bytes_sent_before_answer", "met"]))
        if "b_zip_bomb" in f:
            parts.append(table([f["b_zip_bomb"]], ["zip_bytes", "csv_bytes", "status", "seconds", "rss_growth_mb"]))
        if "c_lookup_under_uploads" in f:
            c = f["c_lookup_under_uploads"]
            parts.append(table([{"when": "no uploads", **c["no_uploads"]}, {"when": "3 uploads", **c["with_uploads"]}],
                               ["when", "tool", "req_per_s", "p50_ms", "p99_ms", "non_2xx"]))
        if "d_layer_stream" in f:
            parts.append(table([f["d_layer_stream"]], ["households", "status", "seconds", "bytes", "rss_growth_mb"]))
        return "\n\n".join(parts)
    return table(flat(f), ["figure", "value"])


def quote(path: Path) -> str:
    d = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(d.get("git"), dict) or "load" not in d:   # a file not written by record.py
        return f"### {path.stem}\n\nresults/{path.name} (its own format):\n\n" + table(flat(d), ["figure", "value"]) + "\n"
    g, m, ld = d["git"], d["machine"], d["load"]
    rev = (g.get("revision") or "?")[:10] + (" **(dirty)**" if g.get("dirty") else "") + \
        (" **(changed during the run)**" if g.get("changed_during_run") else "")
    head = (f"`{d['command'].split(' ', 1)[-1]}` — results/{path.name}: {d['date']}, git {rev}, "
            f"{m.get('cpu_model')} ({m.get('logical_cores')} cores, {m.get('memory_gb')} GB), "
            f"load {ld['before']} → {ld['after']}, Python {d['python']['version']}")
    return f"### {d['script']}\n\n{head}\n\n{body(d['script'], d['figures'])}\n"


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    files = [Path(a) for a in argv if a.endswith(".json")]
    words = [a for a in argv if not a.endswith(".json")]
    files = files or newest(words)
    if not files:
        print(f"no results files in {RESULTS}", file=sys.stderr)
        return 1
    for p in files:
        print(quote(p))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
