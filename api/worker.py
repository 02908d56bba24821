"""Running jobs outside the request path: one runner subprocess per job, fed from the database queue.

:class:`Dispatcher` lives in the server process (a daemon thread): it claims queued jobs
atomically, starts ``python -m api.worker JOB_ID …`` for each (at most ``job_workers`` at once),
kills a runner whose job was cancelled or timed out, and marks a runner that died without a word
as failed. Runners ask the kernel to kill them when the server dies (``PR_SET_PDEATHSIG``), so a
SIGKILLed server leaves no orphan computing; at the next start :meth:`api.store.Store.recover`
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
import uuid
from pathlib import Path
from typing import Callable

from api.settings import Settings
from api.store import Store

log = logging.getLogger("gridplan.worker")
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------- the default runner
def run_plan(inputs: dict[str, Path], params: dict, out_dir: Path, progress: Callable[[str, float], None]) -> dict:
    """Compute a plan from the uploaded files and write the output directory."""
    from optimize import plan

    roles = ("boundaries", "households", "facilities", "roster", "network", "barriers")
    args = {r: (str(inputs[r]) if r in inputs else None) for r in roles}
    result = plan(args["boundaries"], args["households"], args["facilities"], args["roster"], args["network"],
                  barriers=args["barriers"], progress=progress, **params)
    result.to_dir(out_dir)
    sp = Path(out_dir) / "summary.json"
    return json.loads(sp.read_text(encoding="utf-8")) if sp.exists() else dict(result.summary)


def load_runner(spec: str) -> Callable:
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


def run_job(job_id: str, settings: Settings) -> int:
    store = Store(settings)
    job = store.get_job(job_id)
    if job is None or job["status"] != "running":
        return 0
    last = {"t": 0.0, "stage": None}

    class Cancelled(Exception):
        pass

    def progress(stage: str, frac: float) -> None:
        now = time.monotonic()
        if stage == last["stage"] and now - last["t"] < 0.25:
            return
        last["t"], last["stage"] = now, stage
        if not store.progress(job_id, stage, frac):
            raise Cancelled()

    inputs = {k: store.input_dir(job_id) / v for k, v in (job["inputs"] or {}).items()}
    out = store.out_dir(job_id)
    try:
        fn = load_runner(settings.runner)
        summary = fn(inputs, dict(job["params"] or {}), out, progress)
        store.progress(job_id, "publishing layers", 0.99)
        store.publish_layers(job_id)
        store.finish(job_id, "succeeded", summary=summary or {})
        return 0
    except Cancelled:
        return 0
    except Exception as e:  # noqa: BLE001 — every failure is recorded on the job
        from geo.problems import DataError

        if isinstance(e, DataError):
            fatal = [p for p in e.problems if p.fatal] or e.problems
            msg = "data problems: " + "; ".join(str(p) for p in fatal[:20])
            summary = {"problems": [p.as_dict() for p in e.problems]}
        elif isinstance(e, ValueError):
            msg, summary = f"invalid options or data: {e}", None
        else:
            msg, summary = f"internal error: {type(e).__name__}: {e}", None
            traceback.print_exc()
        store.finish(job_id, "failed", error=msg[:4000], summary=summary)
        return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m api.worker", description="run one gridplan job")
    ap.add_argument("job_id")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--runner", default=Settings.runner)
    ap.add_argument("--parent", type=int, default=None)
    a = ap.parse_args(argv)
    if a.parent:
        _die_with_parent(a.parent)
    settings = Settings(data_dir=a.data_dir, database_url=a.database_url, runner=a.runner)
    return run_job(a.job_id, settings)


# ---------------------------------------------------------------------------------- the dispatcher
class Dispatcher:
    def __init__(self, settings: Settings, store: Store, on_success: Callable[[str], None] | None = None):
        self.settings, self.store, self.on_success = settings, store, on_success
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.procs: dict[str, tuple[subprocess.Popen, float]] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        recovered = self.store.recover(self.owner, self.settings.max_attempts)
        for job_id, status in recovered:
            log.warning("recovered interrupted job", extra={"job": job_id, "status": status})
        self._thread = threading.Thread(target=self._loop, name="gridplan-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Graceful shutdown: stop runners and put their jobs back in the queue."""
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self._lock:
            for job_id, (p, _) in list(self.procs.items()):
                self._kill(p)
                self.store.requeue(job_id, "interrupted: the server shut down while the job ran; re-queued")
            self.procs.clear()

    def cancel(self, job_id: str) -> None:
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

    def _spawn(self, job: dict) -> None:
        s = self.settings
        cmd = [sys.executable, "-m", "api.worker", job["id"], "--data-dir", str(s.data_path.resolve()),
               "--runner", s.runner, "--parent", str(os.getpid())]
        if s.database_url:
            cmd += ["--database-url", s.database_url]
        logf = open(self.store.job_dir(job["id"]) / "runner.log", "ab")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        try:
            p = subprocess.Popen(cmd, cwd=str(ROOT), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=env)
        finally:
            logf.close()
        self.store.set_pid(job["id"], p.pid)
        self.procs[job["id"]] = (p, time.monotonic())
        log.info("job started", extra={"job": job["id"], "pid": p.pid, "attempt": job["attempts"]})

    def _reap(self) -> None:
        with self._lock:
            items = list(self.procs.items())
        for job_id, (p, t0) in items:
            rc = p.poll()
            if rc is None:
                to = self.settings.job_timeout_s
                if to and time.monotonic() - t0 > to:
                    self.cancel(job_id)
                    self.store.finish(job_id, "failed", error=f"timed out after {to:g} s")
                    continue
                j = self.store.get_job(job_id)
                if j is None or j["status"] in ("cancelled", "queued"):  # cancelled elsewhere
                    self.cancel(job_id)
                continue  # a runner that has just recorded its result is left to exit
            with self._lock:
                self.procs.pop(job_id, None)
            j = self.store.get_job(job_id)
            if j and j["status"] == "running":
                self.store.finish(job_id, "failed", error=f"the job runner exited unexpectedly (code {rc}); "
                                                          f"see runner.log")
            elif j and j["status"] == "succeeded" and self.on_success:
                try:
                    self.on_success(job_id)
                except Exception:  # noqa: BLE001
                    log.exception("on_success hook failed")
            log.info("job ended", extra={"job": job_id, "status": j["status"] if j else None, "rc": rc})

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                while len(self.procs) < self.settings.job_workers and not self._stop.is_set():
                    job = self.store.claim_next(self.owner)
                    if job is None:
                        break
                    self._spawn(job)
            except Exception:  # noqa: BLE001 — keep dispatching (e.g. database briefly locked)
                log.exception("dispatcher loop error")
            self._wake.wait(self.settings.poll_interval_s)
            self._wake.clear()


if __name__ == "__main__":
    sys.exit(main())
