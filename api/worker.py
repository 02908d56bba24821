"""Running jobs outside the request path: one runner subprocess per job, fed from the database queue.

:class:`Dispatcher` lives in the server process (a daemon thread): it claims queued jobs
atomically, starts ``python -m api.worker JOB_ID …`` for each (at most ``job_workers`` at once),
kills a runner whose job was cancelled or timed out, and marks a runner that died without a word
as failed. Runners ask the kernel to kill them when the server dies (``PR_SET_PDEATHSIG``), so a
SIGKILLed server leaves no orphan computing; at the next start — or sooner, on another server
sharing the database, once the dead server's lease lapses — :meth:`api.store.Store.recover`
re-queues (or fails, after ``max_attempts``) every job the dead server had running.

The runner writes progress and the final state straight to the store. What it runs is
``settings.runner`` ("module:function", default :func:`run_plan`), called as
``fn(inputs: dict[str, Path], params: dict, out_dir: Path, progress) -> summary dict``.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from gridplan.api.lifecycle import sweep_cached_zips, sweep_orphans, sweep_retention
from gridplan.api.owners import new_owner_id
from gridplan.api.settings import Settings
from gridplan.api.store import Store, secure_tree
from gridplan.api.versions import live_id

log = logging.getLogger("gridplan.worker")
ROOT = Path(__file__).resolve().parent.parent
# the folder that holds the gridplan package (a checkout, or site-packages): children import from it
PKG_PARENT = Path(__import__("gridplan").__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------- the default runner
def run_plan(inputs: dict[str, Path], params: dict, out_dir: Path, progress: Callable[[str, float], None]) -> dict:
    """Compute a plan from the uploaded files and write the output directory."""
    from gridplan.optimize import plan

    roles = ("boundaries", "households", "facilities", "roster", "network", "barriers")
    args = {r: (str(inputs[r]) if r in inputs else None) for r in roles}
    if "baseline" in inputs:   # an uploaded grid layer (HTTP ``baseline`` upload, or kind=adopt)
        params = {**params, "baseline": str(inputs["baseline"])}
    result = plan(args["boundaries"], args["households"], args["facilities"], args["roster"], args["network"],
                  barriers=args["barriers"], progress=progress, **params)
    result.to_dir(out_dir)
    sp = Path(out_dir) / "summary.json"
    return json.loads(sp.read_text(encoding="utf-8")) if sp.exists() else dict(result.summary)


def load_runner(spec: str) -> Callable:
    """Return the function that ``spec`` (``"module:function"``; function default ``run_plan``) names."""
    mod, _, fn = spec.partition(":")
    return getattr(importlib.import_module(mod), fn or "run_plan")


# ---------------------------------------------------------------------------------- the runner process
def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: recovery at start-up still catches the job
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)


def run_job(job_id: str, settings: Settings, attempt: int | None = None) -> int:
    """Run one claimed job to its end, writing progress and the result to the store.

    Every write is conditional on the run number ``attempt``: once the job has been re-queued and
    claimed again elsewhere (say this server's lease lapsed), this runner's writes are refused and
    it stops at its next progress report.
    """
    store = Store(settings)
    job = store.get_job(job_id)
    if job is None or job["status"] != "running" or (attempt is not None and job["attempts"] != attempt):
        return 0
    attempt = job["attempts"] if attempt is None else attempt
    last = {"t": 0.0, "stage": None}

    class Cancelled(Exception):
        pass

    def progress(stage: str, frac: float) -> None:
        now = time.monotonic()
        if stage == last["stage"] and now - last["t"] < 0.25:
            return
        last["t"], last["stage"] = now, stage
        if not store.progress(job_id, stage, frac, attempt=attempt):
            raise Cancelled()

    inputs = {k: store.input_dir(job_id) / v for k, v in (job["inputs"] or {}).items()}
    out = store.out_dir(job_id)
    try:
        from gridplan.api.kinds import runner_for
        spec, params = runner_for(job["params"] or {}, settings.runner)   # the job's kind picks the runner
        summary = load_runner(spec)(inputs, params, out, progress)
        secure_tree(out)  # owner-only, whatever modes the plan writer chose
        if not store.progress(job_id, "publishing layers", 0.99, attempt=attempt):
            return 0
        if (out / "plan.gpkg").exists():   # an audit job writes no plan
            store.publish_layers(job_id)
        store.finish(job_id, "succeeded", summary=summary or {}, attempt=attempt)
        return 0
    except Cancelled:
        return 0
    except Exception as e:  # every failure is recorded on the job
        from gridplan.geo.problems import DataError

        if isinstance(e, DataError):
            fatal = [p for p in e.problems if p.fatal] or e.problems
            msg = "data problems: " + "; ".join(str(p) for p in fatal[:20])
            summary = {"problems": [p.as_dict() for p in e.problems]}
        elif isinstance(e, ValueError):
            msg, summary = f"invalid options or data: {e}", None
        else:
            msg, summary = f"internal error: {type(e).__name__}: {e}", None
            traceback.print_exc()
        store.finish(job_id, "failed", error=msg[:4000], summary=summary, attempt=attempt)
        return 1


DB_URL_ENV = "GRIDPLAN_DATABASE_URL"
FOLLOW_S = 1.0   # how often a server looks for a new live plan (a publish elsewhere shows within ~1 s)


def main(argv: list[str] | None = None) -> int:
    """``python -m api.worker JOB_ID --data-dir DIR --attempt N``: run one job.

    The database URL (it may hold a password) comes from the environment variable
    ``GRIDPLAN_DATABASE_URL`` (``/proc/PID/environ`` is readable by the owner only) — never from
    the command line, which every user of the machine can read in ``ps``.
    """
    os.umask(0o077)
    ap = argparse.ArgumentParser(prog="python -m api.worker", description="run one gridplan job")
    ap.add_argument("job_id")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--runner", default=Settings.runner)
    ap.add_argument("--parent", type=int, default=None)
    ap.add_argument("--attempt", type=int, default=None)
    a = ap.parse_args(argv)
    if a.parent:
        _die_with_parent(a.parent)
    url = os.environ.get(DB_URL_ENV) or None
    settings = Settings(data_dir=a.data_dir, database_url=url, runner=a.runner)
    return run_job(a.job_id, settings, a.attempt)


# ---------------------------------------------------------------------------------- the dispatcher
class Dispatcher:
    """Claims queued jobs for this server and runs each in a runner subprocess.

    The server's ``owner`` id is written on every job it claims; the loop renews those jobs'
    leases (every ``lease_s / 3``), re-queues jobs of dead servers whose lease has expired (at
    start-up and every few seconds), follows the live plan (published or newest, wherever it was
    made or published; every ``FOLLOW_S`` seconds), and,
    every ``sweep_interval_s``, applies the retention and orphan sweeps (:mod:`api.lifecycle`).
    """

    def __init__(self, settings: Settings, store: Store, on_success: Callable[[str], None] | None = None):
        self.settings, self.store, self.on_success = settings, store, on_success
        self.owner = new_owner_id()
        self.procs: dict[str, tuple[subprocess.Popen, float, int]] = {}   # job id -> (proc, t0, attempt)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._next = {"heartbeat": 0.0, "recover": 0.0, "sweep": 0.0, "follow": 0.0}
        self._newest: str | None = ""   # "": not looked yet (the app loads the newest plan at start)

    def start(self) -> None:
        """Re-queue or fail jobs whose runs died, sweep orphaned files, then start the dispatch thread."""
        self._recover()
        try:
            sweep_orphans(self.store, self.settings.orphan_grace_s)
        except Exception:  # a sweep never stops the server
            log.exception("orphan sweep failed")
        self._thread = threading.Thread(target=self._loop, name="gridplan-dispatcher", daemon=True)
        self._thread.start()

    def _recover(self) -> None:
        with self._lock:
            live = set(self.procs)
        for job_id, status in self.store.recover(self.owner, self.settings.max_attempts, live):
            log.warning("recovered interrupted job", extra={"job": job_id, "status": status})

    def wake(self) -> None:
        """Make the dispatch thread look at the queue now (say, a job was just queued)."""
        self._wake.set()

    def stop(self) -> None:
        """Graceful shutdown: stop runners and put their jobs back in the queue."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self._lock:
            for job_id, (p, _, attempt) in list(self.procs.items()):
                self._kill(p)
                self.store.requeue(job_id, "interrupted: the server shut down while the job ran; re-queued",
                                   owner=self.owner, attempt=attempt)
            self.procs.clear()

    def cancel(self, job_id: str) -> None:
        """Stop this server's runner of ``job_id``, if it has one."""
        with self._lock:
            entry = self.procs.pop(job_id, None)
        if entry:
            self._kill(entry[0])

    @staticmethod
    def _kill(p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass

    def _runner_env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(PKG_PARENT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        env.pop(DB_URL_ENV, None)
        if self.settings.database_url:  # the environment, not argv: /proc/PID/environ is owner-only
            env[DB_URL_ENV] = self.settings.database_url
        return env

    def _spawn(self, job: dict) -> None:
        s = self.settings
        cmd = [sys.executable, "-m", "gridplan.api.worker", job["id"], "--data-dir", str(s.data_path.resolve()),
               "--runner", s.runner, "--parent", str(os.getpid()), "--attempt", str(job["attempts"])]
        jdir = self.store.job_dir(job["id"])
        jdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(jdir / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            p = subprocess.Popen(cmd, cwd=str(ROOT), stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=self._runner_env())
        finally:
            os.close(fd)
        self.store.set_pid(job["id"], p.pid)
        with self._lock:
            self.procs[job["id"]] = (p, time.monotonic(), int(job["attempts"]))
        log.info("job started", extra={"job": job["id"], "pid": p.pid, "attempt": job["attempts"]})

    def _reap(self) -> None:
        with self._lock:
            items = list(self.procs.items())
        for job_id, (p, t0, attempt) in items:
            rc = p.poll()
            j = self.store.get_job(job_id)
            ours = j is not None and j.get("owner") == self.owner and j["attempts"] == attempt
            if rc is None:
                to = self.settings.job_timeout_s
                if to and time.monotonic() - t0 > to:
                    self.cancel(job_id)
                    self.store.finish(job_id, "failed", error=f"timed out after {to:g} s", owner=self.owner,
                                      attempt=attempt)
                elif j is None or j["status"] in ("cancelled", "queued") or (j["status"] == "running" and not ours):
                    self.cancel(job_id)  # cancelled, purged or taken over elsewhere: stop our runner
                continue  # a runner that has just recorded its result is left to exit
            with self._lock:
                self.procs.pop(job_id, None)
            if j and j["status"] == "running" and ours:
                self.store.finish(job_id, "failed", error=f"the job runner exited unexpectedly (code {rc}); "
                                                          f"see runner.log", owner=self.owner, attempt=attempt)
            elif j and j["status"] == "succeeded" and self.on_success:
                try:
                    self.on_success(job_id)
                except Exception:
                    log.exception("on_success hook failed")
            log.info("job ended", extra={"job": job_id, "status": j["status"] if j else None, "rc": rc})

    def _periodic(self) -> None:
        """Heartbeat, recovery of dead servers' jobs and the sweeps, each at its own pace."""
        s, now = self.settings, time.monotonic()
        if now >= self._next["heartbeat"]:
            self._next["heartbeat"] = now + s.lease_s / 3.0
            with self._lock:
                runs = {k: v[2] for k, v in self.procs.items()}
            self.store.heartbeat(self.owner, runs, s.lease_s)
        if now >= self._next["recover"]:
            self._next["recover"] = now + min(s.lease_s / 2.0, 5.0)
            self._recover()
        if now >= self._next["follow"]:
            self._next["follow"] = now + FOLLOW_S
            self._follow_newest()
        if now >= self._next["sweep"]:
            first = self._next["sweep"] == 0.0
            self._next["sweep"] = now + max(s.sweep_interval_s, 1.0)
            sweep_retention(self.store, s.retention_days)
            sweep_cached_zips(self.store, s.zip_cache_s)
            if not first:  # start() already swept orphans
                sweep_orphans(self.store, s.orphan_grace_s)

    def _follow_newest(self) -> None:
        """Tell ``on_success`` when the live plan changes, as if its job had finished here.

        Another server sharing the database may finish (or purge) the newest plan or publish a
        version, and a published version's date may arrive; the app then reloads the default
        lookup index (:func:`gridplan.api.versions.live_id`).
        """
        newest = live_id(self.store.engine)
        if newest == self._newest:
            return
        first, self._newest = self._newest == "", newest
        if newest and self.on_success and not first:
            self.on_success(newest)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._periodic()
                self._reap()
                while len(self.procs) < self.settings.job_workers and not self._stop.is_set():
                    job = self.store.claim_next(self.owner, self.settings.lease_s)
                    if job is None:
                        break
                    self._spawn(job)
            except Exception:  # keep dispatching (e.g. database briefly locked)
                log.exception("dispatcher loop error")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()


if __name__ == "__main__":
    sys.exit(main())
