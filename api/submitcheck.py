"""Submit-time checking of uploads, out of the serving process and under limits.

Reading a hostile upload can take a lot of memory and time (a 124 KB zip holding a 3,000,000-row
CSV took 48.7 s and +1.9 GB). So the server never reads uploads itself: :func:`check_uploads`
runs each check in a child process (``python -m gridplan.api.submitcheck``) that caps its own address
space (``RLIMIT_AS``) and CPU time (``RLIMIT_CPU``) before it reads anything, with a wall-clock
safety net on top, and at most ``submit_check_concurrency`` such children run at once per server
(others wait their turn), so lookups keep their latency while uploads are checked.

A check that hits a limit is a 413 naming the limit and its setting; data problems are a 422
naming the client's file (never our saved copy or its path). The OSM PBF ``network`` file is
checked in-process by its header alone (``geo.formats.check_network``), which reads a few bytes.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from gridplan.api.problems import ProblemError, error_item, scrub
from gridplan.api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# the folder that holds the gridplan package (a checkout, or site-packages): the child imports from it
PKG_PARENT = Path(__import__("gridplan").__file__).resolve().parent.parent
_MB = 1 << 20
_sems: dict[int, asyncio.Semaphore] = {}


# ---------------------------------------------------------------------------------- the child's side
def run_validation(paths: dict, params: dict, names: dict | None = None, limits: dict | None = None) -> list:
    """Return the fatal problems in the saved uploads (``geo.io`` records), named by the client's file names.

    The one place that calls the reading/validation code, so a change of its entry point is a change
    here alone. ``limits``: ``geo.io.ReadLimits`` fields (the service's ``read_*`` settings).
    """
    from gridplan.geo.io import ReadLimits, load_lines, validate

    lim = ReadLimits(**(limits or {}))
    names = names or {}
    problems = validate(str(paths["boundaries"]), str(paths["households"]),
                        str(paths["facilities"]) if "facilities" in paths else None,
                        str(paths["roster"]) if "roster" in paths else None,
                        coords=params.get("coords", "wgs84"), code_field=params.get("code_field", "village_code"),
                        limits=lim, names={r: n for r, n in names.items() if r in paths})
    from gridplan.geo.grids_load import read_grids
    for role in ("grids", "baseline"):   # an existing grid layer: readable, with its code and unit columns
        if role in paths:
            problems += read_grids(str(paths[role]), coords=params.get("coords", "wgs84"), limits=lim,
                                   grid_code_field=params.get("grid_code_field", "grid_code"),
                                   unit_field=params.get("unit_field", "village_code"), name=names.get(role))[1]
            problems = [p for p in problems if p.kind != "missing_code"]   # the audit reports grids without a code
    if "barriers" in paths:
        problems += load_lines(str(paths["barriers"]), "EPSG:4326", coords=params.get("coords", "wgs84"),
                               limits=lim, name=names.get("barriers"))[1]
    if any(r.startswith("layer:") for r in paths):   # a merge job's legacy layers: polygons with an id field
        from gridplan.api.mergekind import check_layers
        problems += check_layers(paths, params, names, lim)
    return [p for p in problems if p.fatal]


def _limit_self(memory_mb: int, cpu_s: float) -> None:
    import resource

    if memory_mb > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * _MB, memory_mb * _MB))
    if cpu_s > 0:
        soft = max(1, int(cpu_s + 0.999))
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 5))


def _check(req: dict) -> dict:
    try:
        from gridplan.api.problems import from_problems

        fatal = run_validation(req["paths"], req["params"], req.get("names"), req.get("limits"))
        return {"items": from_problems(fatal), "too_large": any(p.kind == "too_large" for p in fatal)}
    except (MemoryError, ImportError):  # a module that cannot be mapped in is out of address space too
        return {"limit": "memory"}
    except ValueError as e:  # a usage error: an unknown coords or crs option
        return {"params": str(e)}
    except Exception as e:  # an unreadable file is an input error
        msg = str(e)
        oom = any(w in msg.lower() for w in ("out of memory", "cannot allocate", "failed to map", "bad_alloc"))
        return {"limit": "memory"} if oom else {"unreadable": msg}


def child_main() -> None:
    """Run the check process (``python -m gridplan.api.submitcheck``).

    It caps its own address space and CPU time first, then reads the job (JSON) on stdin and
    writes the answer (JSON) on stdout.
    """
    req = json.loads(sys.stdin.read())
    _limit_self(int(req["memory_mb"]), float(req["cpu_s"]))
    sys.stdout.write(json.dumps(_check(req)))
    sys.stdout.flush()


# ---------------------------------------------------------------------------------- the server's side
def _semaphore(settings: Settings) -> asyncio.Semaphore:
    key = id(asyncio.get_running_loop())
    sem = _sems.get(key)
    if sem is None:
        sem = _sems[key] = asyncio.Semaphore(max(1, settings.submit_check_concurrency))
    return sem


def _too_big(what: str) -> ProblemError:
    return ProblemError(413, f"checking the uploaded files needed more than {what}: send smaller files, or "
                             "ask the operator to raise the limit", kind="too-large-to-check")


def _run_child(req: dict, settings: Settings) -> tuple[dict | None, int | None, bool]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               GDAL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(PKG_PARENT), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.Popen([sys.executable, "-m", "gridplan.api.submitcheck"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env, cwd=str(ROOT))
    try:
        out, _ = p.communicate(json.dumps(req).encode(), timeout=settings.submit_check_wall_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None, p.returncode, True
    try:
        return json.loads(out), p.returncode, False
    except ValueError:
        return None, p.returncode, False


def _localise(text: str, paths: dict, names: dict) -> str:
    """Our saved copies' paths and names -> the names the client gave its files."""
    for role, saved in sorted(paths.items(), key=lambda kv: -len(str(kv[1]))):
        client = names.get(role) or role
        for form in (f"/vsizip//{saved}", f"/vsizip/{saved}", str(saved), str(Path(saved).resolve())):
            text = text.replace(form, client)
    for saved in paths.values():
        text = text.replace(str(Path(saved).parent) + "/", "")
    swaps = {Path(saved).name: names.get(role) or role for role, saved in paths.items()}
    if swaps:
        rx = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, swaps)) + r")(?![\w-])")
        text = rx.sub(lambda m: swaps[m.group(1)], text)
    return scrub(text)


async def check_uploads(paths: dict, params: dict, names: dict, settings: Settings) -> list[dict]:
    """Check the saved uploads in a limited child process; return the contract's ``errors`` items.

    The list is empty when the uploads may be queued.

    Parameters
    ----------
    paths : dict
        role -> path of the saved upload.
    params : dict
        The job's plan options (``coords``, ``code_field`` matter here).
    names : dict
        role -> the file name the client gave.
    settings : Settings
        ``submit_check_memory_mb``, ``submit_check_cpu_s``, ``submit_check_wall_s``,
        ``submit_check_concurrency``.

    Returns
    -------
    list of dict
        ``{"source", "row", "problem"}`` items naming the client's files.

    Raises
    ------
    ProblemError
        413 when the check hit a limit (the limit and its setting are named).
    """
    items = []
    if "network" in paths:
        from gridplan.geo.formats import check_network  # reads the first blob header only (at most 70 KB)
        items += [error_item(p.source, p.row, f"network: {p.message}")
                  for p in check_network(paths["network"], names.get("network") or "network")]
    if "boundaries" not in paths or "households" not in paths:
        return items
    req = {"paths": {r: str(p) for r, p in paths.items() if r != "network"}, "params": params,
           "names": {r: n for r, n in names.items() if r != "network"}, "limits": read_limits(settings),
           "memory_mb": settings.submit_check_memory_mb, "cpu_s": settings.submit_check_cpu_s}
    from fastapi.concurrency import run_in_threadpool

    async with _semaphore(settings):
        out, code, timed_out = await run_in_threadpool(_run_child, req, settings)
    if timed_out:
        raise _too_big(f"the time limit of {settings.submit_check_wall_s:g} s (submit_check_wall_s)")
    if out is None and code in (-signal.SIGXCPU, -signal.SIGKILL):
        raise _too_big(f"the CPU-time limit of {settings.submit_check_cpu_s:g} s (submit_check_cpu_s)")
    mem = f"the memory limit of {settings.submit_check_memory_mb} MB (submit_check_memory_mb)"
    if out is None:  # the check died without a word: most likely out of address space
        raise ProblemError(413, f"checking the uploaded files stopped before it finished: it needed more than {mem}, "
                                "or a file is damaged", kind="too-large-to-check")
    if out.get("limit") == "memory":
        raise _too_big(mem)
    if "params" in out:
        return items + [error_item("params", None, scrub(out["params"]))]
    if "unreadable" in out:
        return items + [error_item("upload", None, "could not read the uploaded files: "
                                   + _localise(out["unreadable"], paths, names))]
    for it in out["items"]:
        src = it["source"]
        for role, saved in paths.items():
            if src in (Path(saved).name, str(saved), role):
                src = names.get(role) or role
        items.append(error_item(_localise(src, paths, names), it["row"], _localise(it["problem"], paths, names)))
    if out.get("too_large"):
        raise ProblemError(413, "an uploaded file is over a size limit: see errors", items, kind="too-large")
    return items


def read_limits(settings: Settings) -> dict:
    """Return the service's ``read_*`` settings as ``geo.io.ReadLimits`` fields."""
    return {"max_bytes": settings.read_max_bytes, "max_ratio": settings.read_max_ratio,
            "max_rows": settings.read_max_rows, "max_vertices": settings.read_max_vertices,
            "max_json_bytes": settings.read_max_json_bytes}


if __name__ == "__main__":
    child_main()
