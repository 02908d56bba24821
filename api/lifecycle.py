"""Reclaiming stored data: purge one job, the retention sweep, the orphan sweep.

A purge deletes the job's row first and its files second, so a crash in between leaves only a
directory without a row — exactly what :func:`sweep_orphans` removes (after a grace period, so an
upload still being checked on another server sharing the data directory is never taken).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from gridplan.api.store import Store

log = logging.getLogger("gridplan.lifecycle")
TEMP_SUFFIXES = (".part", ".tmp")


def purge_job(store: Store, job_id: str) -> bool:
    """Remove a job completely: its row, its PostGIS layer tables, its inputs, outputs and cached zip.

    The caller refuses published plans (:meth:`Store.was_published`) and stops a running job first.
    Returns False when there was no such job row (its files, if any, are removed all the same).
    """
    had_row = store.delete_job_row(job_id)
    try:
        store.drop_layers(job_id)
    except Exception:
        log.exception("dropping the layer tables failed", extra={"job": job_id})
    shutil.rmtree(store.job_dir(job_id), ignore_errors=True)
    return had_row


def sweep_retention(store: Store, days: float, now: float | None = None) -> list[str]:
    """Purge finished jobs that finished more than ``days`` days ago (``days <= 0``: keep everything).

    Never purged: a plan that is or was published, and the newest succeeded job (the default plan
    of lookups until publishing exists).
    """
    if not days or days <= 0:
        return []
    now = time.time() if now is None else now
    newest = (store.newest_succeeded() or {}).get("id")
    gone = []
    for job_id in store.finished_before(now - days * 86400.0):
        if job_id == newest or store.was_published(job_id):
            continue
        purge_job(store, job_id)
        gone.append(job_id)
    if gone:
        log.info("retention sweep purged jobs", extra={"jobs": gone, "days": days})
    return gone


def _newest_mtime(path: Path) -> float:
    newest = 0.0
    for dirpath, _dirs, files in os.walk(path):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            try:
                newest = max(newest, os.lstat(name).st_mtime)
            except OSError:
                pass
    return newest


def sweep_orphans(store: Store, grace_s: float, now: float | None = None) -> list[str]:
    """Remove job directories without a job row, and stale temporary files and directories.

    Temporary means a cached zip half written or a killed run's half-written output; only what
    has been untouched for ``grace_s`` seconds goes. Returns the removed paths relative to the
    data directory.
    """
    now = time.time() if now is None else now
    cutoff = now - max(grace_s, 0.0)
    root = store.root / "jobs"
    ids = store.job_ids()
    removed = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return removed
    for e in entries:
        p = Path(e.path)
        if e.is_dir(follow_symlinks=False) and e.name not in ids:
            if _newest_mtime(p) < cutoff:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.relative_to(store.root).as_posix())
            continue
        if e.is_dir(follow_symlinks=False):
            removed += _sweep_temp(store.root, p, cutoff)
            removed += _sweep_temp_dirs(store.root, p, cutoff)
    removed += _sweep_temp(store.root, store.root, cutoff)
    if removed:
        log.info("orphan sweep removed files", extra={"paths": removed[:50], "count": len(removed)})
    return removed


def _entries(d: Path) -> list:
    """List the directory's entries; none when it cannot be read (it may have just been purged)."""
    try:
        return list(os.scandir(d))
    except OSError:
        return []


def _sweep_temp(root: Path, d: Path, cutoff: float) -> list[str]:
    """Remove temporary files (``TEMP_SUFFIXES``) in ``d`` last written before ``cutoff``."""
    out = []
    for e in _entries(d):
        if e.is_file(follow_symlinks=False) and e.name.endswith(TEMP_SUFFIXES):
            try:
                if e.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(e.path)
                    out.append(Path(e.path).relative_to(root).as_posix())
            except OSError:
                pass
    return out


def _sweep_temp_dirs(root: Path, d: Path, cutoff: float) -> list[str]:
    """Hidden directories in a job dir (``write_plan_dir``'s ``.out.*`` of a run that was killed)."""
    out = []
    for e in _entries(d):
        if e.name.startswith(".") and e.is_dir(follow_symlinks=False) and _newest_mtime(Path(e.path)) < cutoff:
            shutil.rmtree(e.path, ignore_errors=True)
            out.append(Path(e.path).relative_to(root).as_posix())
    return out


def sweep_cached_zips(store: Store, max_age_s: float, now: float | None = None) -> list[str]:
    """Remove cached download zips (``jobs/<id>/gridplan-<id>.zip``) older than ``max_age_s``.

    ``max_age_s <= 0`` keeps them. The download route makes a zip again when it is asked for.
    """
    if not max_age_s or max_age_s <= 0:
        return []
    cutoff = (time.time() if now is None else now) - max_age_s
    removed = []
    for z in (store.root / "jobs").glob("*/gridplan-*.zip"):
        try:
            if z.is_file() and not z.is_symlink() and z.stat().st_mtime < cutoff:
                z.unlink()
                removed.append(z.relative_to(store.root).as_posix())
        except OSError:
            pass
    return removed
