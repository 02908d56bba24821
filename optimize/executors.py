"""Running independent per-unit tasks: in-process, on local worker processes, or on a Dask cluster.

Every executor streams: at most ``max_in_flight`` tasks are submitted and not yet collected, so
a province never materializes every unit's cells in one process, and results are handed to
``on_result`` as they complete. The caller orders results by task index, so the outcome does not
depend on where or in which order tasks ran.

One task never stops the run. On local processes each worker runs one task at a time, so a
crash (the worker process dies: a segfault in a geometry engine, the OOM killer, ``os._exit``)
or a hang (the task runs past ``timeout`` seconds of wall-clock time; the worker is killed and
replaced) is charged to exactly that task. A task is tried ``1 + retries`` times; after that
``on_failure(task, reason)`` turns it into a result (the pipeline makes the unit a failed unit)
and the run goes on. The timeout is a safety net against hangs only: the models inside a task
are bounded by deterministic limits, so it never decides an answer on a healthy machine.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_conns
from typing import Any

OnFailure = Callable[[Any, str], Any]


def run_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], *, jobs: int = 1, scheduler: str | None = None,
              on_result: Callable[[Any], None], max_in_flight: int | None = None,
              timeout: float | None = None, retries: int = 1, on_failure: OnFailure | None = None) -> None:
    """Apply ``fn`` to every task, calling ``on_result(result)`` for each as it completes.

    Parameters
    ----------
    fn : picklable callable (a module-level function) applied to each task.
    tasks : iterable of picklable tasks, consumed lazily.
    jobs : local worker processes (1: run in this process, without timeout or crash isolation).
    scheduler : a Dask scheduler address; overrides ``jobs``.
    on_result : called in this process with each result, in completion order.
    max_in_flight : Dask only: tasks submitted and not yet collected (default 4 per worker thread).
    timeout : wall-clock seconds one attempt of a task may run on a worker (None: no limit).
    retries : further attempts after a crash, a hang or an exception escaping ``fn``.
    on_failure : ``on_failure(task, reason) -> result`` for a task that failed every attempt; the
        result goes to ``on_result``. None: the failure is raised as ``RuntimeError``.
    """
    if scheduler:
        _run_dask(fn, tasks, scheduler, on_result, max_in_flight, timeout, retries, on_failure)
    elif jobs <= 1:
        for t in tasks:
            on_result(fn(t))
    else:
        _run_processes(fn, tasks, jobs, on_result, timeout, retries, on_failure)


def _mp_context():
    # forkserver: workers start from a clean single-threaded server, safe with OR-Tools/BLAS threads
    # and much cheaper than spawn for many short tasks
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def _worker_main(fn, conn) -> None:
    """Run a worker's loop: receive a task, send back ("ok", result) or ("error", reason); None stops it."""
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(("start", None))         # the parent's timeout counts from here (imports are done)
        try:
            msg = ("ok", fn(task))
        except Exception as e:  # reported to the parent, which retries or records it
            msg = ("error", f"{type(e).__name__}: {e}")
        try:
            conn.send(msg)
        except Exception as e:  # an unpicklable result is the task's failure
            conn.send(("error", f"result could not be sent back ({type(e).__name__}: {e})"))


@dataclass
class _Slot:
    """One worker process and the task it is running."""

    proc: Any
    conn: Any
    task: Any = None
    tries: int = 0
    started: float = 0.0
    running: bool = False     # the worker acknowledged the task (until then the start-up allowance applies)


@dataclass
class _Pool:
    fn: Callable
    ctx: Any
    slots: list = field(default_factory=list)

    def start(self) -> _Slot:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_worker_main, args=(self.fn, child), daemon=True)
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def replace(self, slot: _Slot) -> _Slot:
        """Kill a crashed or hung worker and put a fresh one in its place."""
        self.kill(slot)
        new = self.start()
        self.slots[self.slots.index(slot)] = new
        return new

    @staticmethod
    def kill(slot: _Slot) -> None:
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join(5)
        slot.conn.close()


class _Feed:
    """The tasks to hand out (retries first, then the input in order) and the failure rule."""

    def __init__(self, tasks, retries, on_result, on_failure):
        self.it = iter(tasks)
        self.again: deque = deque()          # (task, tries so far) waiting for another attempt
        self.retries, self.on_result, self.on_failure = retries, on_result, on_failure

    def next_task(self):
        if self.again:
            return self.again.popleft()
        t = next(self.it, _END)
        return None if t is _END else (t, 0)

    def give(self, slot: _Slot) -> bool:
        nxt = self.next_task()
        if nxt is None:
            return False
        slot.task, slot.tries = nxt
        slot.started, slot.running = time.monotonic(), False
        slot.conn.send(slot.task)
        return True

    def failed(self, slot: _Slot, reason: str) -> None:
        task, tries = slot.task, slot.tries + 1
        slot.task = None
        if tries <= self.retries:
            self.again.append((task, tries))
            return
        if self.on_failure is None:
            raise RuntimeError(f"a task failed {tries} time(s): {reason}")
        self.on_result(self.on_failure(task, f"{reason} ({tries} attempt{'s' if tries > 1 else ''})"))


def _run_processes(fn, tasks, jobs, on_result, timeout, retries, on_failure):
    pool = _Pool(fn, _mp_context())
    feed = _Feed(tasks, retries, on_result, on_failure)
    try:
        for _ in range(jobs):
            pool.slots.append(pool.start())
        busy = [s for s in pool.slots if feed.give(s)]
        while busy:
            wait_s = None
            if timeout is not None:
                now = time.monotonic()
                wait_s = max(0.0, min(s.started + _allowed(s, timeout) - now for s in busy))
            ready = wait_conns([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=wait_s)
            for slot in list(busy):
                fresh = _check_slot(pool, slot, ready, timeout, on_result, feed.failed)
                if fresh is not slot:
                    busy[busy.index(slot)] = fresh
            busy = [s for s in busy if s.task is not None or feed.give(s)]
    finally:
        _stop_pool(pool)


def _stop_pool(pool: _Pool) -> None:
    """Tell idle workers to stop, then make sure every worker is gone."""
    for slot in pool.slots:
        try:
            if slot.proc.is_alive() and slot.task is None:
                slot.conn.send(None)
        except (OSError, ValueError):
            pass
    for slot in pool.slots:
        slot.proc.join(1)
        pool.kill(slot)


_END = object()
STARTUP_S = 120.0   # a fresh worker's imports (spawn) before it acknowledges its first task


def _allowed(slot: _Slot, timeout: float) -> float:
    return timeout if slot.running else max(timeout, STARTUP_S)


def _check_slot(pool: _Pool, slot: _Slot, ready, timeout, on_result, failed) -> _Slot:
    """Collect a worker's answer, or charge its task with a crash or a hang; the slot to use next."""
    kind = None
    while kind in (None, "start") and (slot.conn in ready or slot.conn.poll()):
        try:
            kind, payload = slot.conn.recv()
        except (EOFError, OSError):        # the pipe closed: the worker died mid-task
            slot.proc.join(5)
            kind, payload = "crash", None
        if kind == "start":
            slot.started, slot.running = time.monotonic(), True
            ready = ()
            continue
        if kind == "ok":
            slot.task = None
            on_result(payload)
            return slot
        if kind == "error":                # an exception escaped the task; the worker itself is fine
            failed(slot, payload)
            return slot
    if slot.task is None:
        return slot
    if not slot.proc.is_alive():
        failed(slot, f"worker process died (exit code {slot.proc.exitcode})")
        return pool.replace(slot)
    if timeout is not None and time.monotonic() - slot.started > _allowed(slot, timeout):
        failed(slot, f"no answer within the {timeout:g} s safety timeout, worker stopped")
        return pool.replace(slot)
    return slot


def _run_dask(fn, tasks, scheduler, on_result, max_in_flight, timeout, retries, on_failure):
    """Run the tasks on a Dask cluster.

    A task whose worker dies or that raises is resubmitted ``retries`` times; a task running past
    ``timeout`` is cancelled (Dask cannot stop a running thread: its worker is restarted).
    """
    try:
        from dask.distributed import Client
    except ImportError as e:  # pragma: no cover - dask is a dependency
        raise RuntimeError("--scheduler needs dask.distributed: pip install 'dask[distributed]'") from e
    try:
        client = Client(scheduler, timeout="20s", set_as_default=False)
    except OSError as e:
        raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from e
    try:
        n_workers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()))
        limit = max_in_flight or n_workers * 4
        it = iter(tasks)
        pending: dict = {}          # future -> (task, tries, submitted at)

        def submit(task, tries):
            pending[client.submit(fn, task, pure=False)] = (task, tries, time.monotonic())

        def failed(task, tries, reason):
            if tries + 1 <= retries:
                submit(task, tries + 1)
            elif on_failure is None:
                raise RuntimeError(f"a task failed {tries + 1} time(s): {reason}")
            else:
                on_result(on_failure(task, f"{reason} ({tries + 1} attempt{'s' if tries else ''})"))

        for _, t in zip(range(limit), it):
            submit(t, 0)
        span = None if timeout is None else timeout * max(1.0, limit / n_workers)  # queued time counts too
        while pending:
            done = [f for f in pending if f.done()]
            if not done:
                time.sleep(0.02)     # polling: dask's wait() would need a default client
            for fut in done:
                task, tries, _ = pending.pop(fut)
                _settle(fut, task, tries, on_result, failed)
                nxt = next(it, _END)
                if nxt is not _END:
                    submit(nxt, 0)
            if span is not None:
                now = time.monotonic()
                for fut in [f for f, (_, _, s) in pending.items() if now - s > span]:
                    task, tries, _ = pending.pop(fut)
                    _cancel_hung(client, fut)
                    failed(task, tries, f"no answer within the {span:g} s safety timeout")
    finally:
        client.close()


def _settle(fut, task, tries, on_result, failed) -> None:
    """Hand a finished Dask future's result on, or charge its task with the failure; release it."""
    if fut.status == "finished":
        on_result(fut.result())
    else:
        try:
            fut.result()
            reason = f"task {fut.status}"
        except BaseException as e:  # KilledWorker, CancelledError, the task's own
            reason = f"{type(e).__name__}: {e}"
        failed(task, tries, reason)
    fut.release()


def _cancel_hung(client, fut) -> None:
    """Cancel a hung Dask task and restart the worker running it (a thread cannot be stopped)."""
    try:
        who = client.who_has([fut]).get(fut.key) or ()
        processing = client.processing()
        workers = [w for w, keys in processing.items() if fut.key in keys] or list(who)
        client.cancel([fut], force=True)
        if workers and hasattr(client, "restart_workers"):
            client.restart_workers(workers, timeout=30)
    except Exception:  # best effort: the task is recorded as failed either way
        pass


def default_jobs() -> int:
    """Return the number of CPUs this process may use (at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
