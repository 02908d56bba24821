"""Running independent per-unit tasks: in-process, on local worker processes, or on a Dask cluster.

Every executor streams: at most ``max_in_flight`` tasks are submitted and not yet collected, so
a province never materializes every unit's cells in one process, and results are handed to
``on_result`` as they complete. The caller orders results by task index, so the outcome does not
depend on where or in which order tasks ran.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any


def run_tasks(fn: Callable[[Any], Any], tasks: Iterable[Any], *, jobs: int = 1, scheduler: str | None = None,
              on_result: Callable[[Any], None], max_in_flight: int | None = None) -> None:
    """Apply ``fn`` to every task, calling ``on_result(result)`` for each as it completes."""
    if scheduler:
        _run_dask(fn, tasks, scheduler, on_result, max_in_flight)
    elif jobs <= 1:
        for t in tasks:
            on_result(fn(t))
    else:
        _run_processes(fn, tasks, jobs, on_result, max_in_flight)


def _mp_context():
    # forkserver: workers start from a clean single-threaded server, safe with OR-Tools/BLAS threads
    # and much cheaper than spawn for many short tasks
    methods = mp.get_all_start_methods()
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def _run_processes(fn, tasks, jobs, on_result, max_in_flight):
    limit = max_in_flight or jobs * 4
    ctx = _mp_context()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        pending = set()
        for t in tasks:
            pending.add(pool.submit(fn, t))
            if len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    on_result(f.result())
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                on_result(f.result())


def _run_dask(fn, tasks, scheduler, on_result, max_in_flight):
    try:
        from dask.distributed import Client, as_completed
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
        first = [client.submit(fn, t, pure=False) for _, t in zip(range(limit), it)]
        if not first:
            return
        ac = as_completed(first, loop=client.loop)   # our client's loop: it is not the default client
        for fut in ac:
            on_result(fut.result())
            fut.release()
            nxt = next(it, None)
            if nxt is not None:
                ac.add(client.submit(fn, nxt, pure=False))
    finally:
        client.close()


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
