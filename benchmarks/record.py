"""One results file per benchmark run: what was measured, on what, at which revision, under what load.

Every script in ``benchmarks/`` ends with::

    from benchmarks.record import record
    record("lookup_speed", figures)          # figures: a JSON-able dict of what the script measured

which writes ``benchmarks/results/<script>-<YYYYMMDD-HHMMSS>.json`` (UTC) holding

* ``date`` (UTC, ISO 8601) and ``duration_s`` (since this module was imported, or since ``begin()``),
* ``git``: revision, branch, ``dirty`` (tracked files changed) and the changed files, taken at the
  start, and ``changed_during_run`` (a commit or an edit while it ran makes the figures suspect),
* ``machine``: platform, CPU model, logical/physical cores, memory,
* ``load``: the 1/5/15-minute load average before (at import / ``begin()``) and after, with the
  core count, so that a figure measured on a busy machine says so,
* ``python`` and the versions of the key libraries (numpy, shapely + GEOS, geopandas, ortools,
  pyogrio + GDAL, fastapi, ...), read from the installed metadata (nothing heavy imported),
* ``command``: the exact command line,
* ``figures``: the script's own dict,

and prints the same to stdout (a flat table of the figures and the file's path).

The output directory is ``benchmarks/results/`` unless the environment variable
``GRIDPLAN_BENCH_RESULTS`` names another one (dry runs: a temporary directory); ``-`` there means
"print only, write nothing". README.md quotes figures from committed results files only.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ENV_DIR = "GRIDPLAN_BENCH_RESULTS"
LIBRARIES = ("numpy", "pandas", "shapely", "geopandas", "pyogrio", "pyproj", "ortools", "scipy", "fastapi",
             "uvicorn", "httpx", "dask", "distributed", "spopt", "gerrychain", "psutil")


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


@dataclass
class Run:
    """The start of a measured run: wall clock, load average and git state at that moment."""
    started: float = field(default_factory=time.time)
    load_before: list[float] | None = field(default_factory=_loadavg)
    git: dict = field(default_factory=lambda: git_info())


def begin() -> Run:
    """Mark the start of the measured part now (default: when this module was imported)."""
    return Run()


# --------------------------------------------------------------------------- facts
def git_info(root: Path = ROOT) -> dict:
    """Revision, branch and dirty flag of the checkout the benchmark ran from."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.rstrip() if r.returncode == 0 else None   # porcelain lines start with a space

    changed = git("status", "--porcelain", "--untracked-files=no")
    files = [line[3:] for line in (changed or "").splitlines() if line.strip()]
    return {"revision": git("rev-parse", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(files) if changed is not None else None, "changed_files": files[:50]}


def _git_key(g: dict) -> tuple:
    return g.get("revision"), tuple(g.get("changed_files") or ())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Platform, CPU model, cores and memory of this machine."""
    info = {"platform": platform.platform(), "machine": platform.machine(), "node": platform.node(),
            "cpu_model": cpu_model(), "logical_cores": os.cpu_count()}
    try:
        import psutil
        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["available_memory_gb_at_end"] = round(psutil.virtual_memory().available / 2**30, 1)
    except ImportError:
        pass
    try:   # the CPUs this process may run on (containers, taskset)
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    return info


def library_versions() -> dict:
    """Installed versions of the key libraries (None: not installed), plus GEOS and GDAL when loaded."""
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if "shapely" in sys.modules:
        out["geos"] = getattr(sys.modules["shapely"], "geos_version_string", None)
    if "pyogrio" in sys.modules:
        out["gdal"] = getattr(sys.modules["pyogrio"], "__gdal_version_string__", None)
    return out


def _jsonable(x):
    """numpy scalars/arrays, paths, sets, NaN/inf -> plain JSON values."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist"):             # numpy scalar or array
        return _jsonable(x.tolist())
    return str(x)


def _flat(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from _flat(v, key + ".")
        elif isinstance(v, list) and v and all(isinstance(e, dict) for e in v):
            for i, e in enumerate(v):
                yield from _flat(e, f"{key}[{i}].")
        else:
            yield key, v


#: taken when a script imports this module (its first lines): the default "before"
_IMPORTED = Run()


# --------------------------------------------------------------------------- the one call
def record(script: str, figures: dict, run: Run | None = None, notes: str | list[str] | None = None,
           out_dir: str | Path | None = None, quiet: bool = False) -> Path | None:
    """Write and print one benchmark run's results.

    Parameters
    ----------
    script : str
        The script's name (``"lookup_speed"``); the file is ``<script>-<YYYYMMDD-HHMMSS>.json``.
    figures : dict
        What the script measured (numbers, small tables as lists of dicts). numpy values are converted.
    run : Run, optional
        From ``begin()`` at the start of the measured part; default: when this module was imported.
    notes : str or list of str, optional
        Plain words that travel with the figures (e.g. which targets a figure is held against).
    out_dir : path, optional
        Where to write; default ``$GRIDPLAN_BENCH_RESULTS`` or ``benchmarks/results/``; ``"-"``: don't write.
    quiet : bool
        Do not print the table.

    Returns
    -------
    Path or None
        The file written (None when writing is switched off).
    """
    run = run or _IMPORTED
    now = time.time()
    stamp = _dt.datetime.fromtimestamp(now, _dt.UTC)
    doc = {
        "script": script,
        "date": stamp.isoformat(timespec="seconds"),
        "started": _dt.datetime.fromtimestamp(run.started, _dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(now - run.started, 2),
        "git": {**run.git, "changed_during_run": _git_key(run.git) != _git_key(git_info())},
        "machine": machine_info(),
        "load": {"before": run.load_before, "after": _loadavg(), "cores": os.cpu_count(),
                 "meaning": ("1/5/15-minute load averages; above the core count the machine was "
                             "oversubscribed")},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "libraries": library_versions(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "notes": [notes] if isinstance(notes, str) else list(notes or []),
        "figures": _jsonable(figures),
    }
    target = out_dir if out_dir is not None else os.environ.get(ENV_DIR) or RESULTS
    path = None
    if str(target) != "-":
        d = Path(target)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{script}-{stamp.strftime('%Y%m%d-%H%M%S')}.json"
        n = 1
        while path.exists():   # two runs in one second: keep both
            path = d / f"{script}-{stamp.strftime('%Y%m%d-%H%M%S')}-{n}.json"
            n += 1
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if not quiet:
        print(summary_text(doc, path))
    return path


def summary_text(doc: dict, path: Path | None = None, max_rows: int = 120) -> str:
    """The results document as a few header lines and a flat ``figure | value`` table (at most
    ``max_rows`` rows; the file has everything)."""
    g, m, ld = doc["git"], doc["machine"], doc["load"]
    rev = (g.get("revision") or "?")[:12] + (" (dirty)" if g.get("dirty") else "")
    lines = [f"## {doc['script']} — {doc['date']} — git {rev}",
             f"machine: {m.get('cpu_model')}, {m.get('logical_cores')} cores, {m.get('memory_gb')} GB; "
             f"load before {ld['before']} after {ld['after']}; Python {doc['python']['version']}",
             f"command: {doc['command']}", "", "| figure | value |", "|---|---|"]
    rows = list(_flat(doc["figures"]))
    for k, v in rows[:max_rows]:
        if isinstance(v, float):
            v = f"{v:.6g}"
        text = str(v)
        lines.append(f"| {k} | {text if len(text) <= 160 else text[:157] + '...'} |")
    if len(rows) > max_rows:
        lines.append(f"| ... | {len(rows) - max_rows} more figures in the file |")
    for n in doc["notes"]:
        lines.append(f"note: {n}")
    lines.append(f"results: {path}" if path else "results: not written (GRIDPLAN_BENCH_RESULTS=-)")
    return "\n".join(lines)
