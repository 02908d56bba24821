"""optimize.executors: a crashed, hung or raising task is retried once, then recorded — the run finishes.

The task functions live at module level so that forkserver workers can import them by name.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gridplan.optimize.executors import run_tasks


def square_or_misbehave(task):
    """task = (i, behaviour, marker dir): "ok", "crash", "hang", "raise", or "*-once" (only the first attempt)."""
    i, how, marker = task
    if how.endswith("-once"):
        flag = Path(marker) / f"tried-{i}"
        if flag.exists():
            return i * i
        flag.write_text("1")
        how = how[:-len("-once")]
    if how == "crash":
        os._exit(7)
    if how == "hang":
        time.sleep(3600)
    if how == "raise":
        raise ValueError(f"task {i} is bad")
    return i * i


def _run(tasks, **kw):
    got, failures = [], []

    def on_failure(task, reason):
        failures.append((task[0], reason))
        return ("failed", task[0])

    run_tasks(square_or_misbehave, tasks, on_result=got.append, on_failure=on_failure, **kw)
    return got, failures


def test_local_processes_survive_a_crash_a_hang_and_an_exception(tmp_path):
    kinds = {3: "crash", 5: "hang", 8: "raise"}
    tasks = [(i, kinds.get(i, "ok"), str(tmp_path)) for i in range(12)]
    got, failures = _run(tasks, jobs=2, timeout=1.5, retries=1)
    ok = sorted(r for r in got if not isinstance(r, tuple))
    assert ok == [i * i for i in range(12) if i not in kinds]
    assert sorted(r[1] for r in got if isinstance(r, tuple)) == [3, 5, 8]
    why = dict(failures)
    assert "died (exit code 7)" in why[3] and "2 attempts" in why[3]
    assert "safety timeout" in why[5] and "2 attempts" in why[5]
    assert "ValueError: task 8 is bad" in why[8]


def test_a_task_that_fails_once_succeeds_on_its_retry(tmp_path):
    tasks = [(1, "crash-once", str(tmp_path)), (2, "hang-once", str(tmp_path)), (3, "raise-once", str(tmp_path)),
             (4, "ok", str(tmp_path))]
    got, failures = _run(tasks, jobs=2, timeout=1.5, retries=1)
    assert sorted(got) == [1, 4, 9, 16] and failures == []


def test_without_retries_the_first_failure_is_recorded(tmp_path):
    got, failures = _run([(1, "crash-once", str(tmp_path)), (2, "ok", str(tmp_path))], jobs=2, retries=0)
    assert got.count(("failed", 1)) == 1 and 4 in got
    assert "1 attempt)" in failures[0][1]


def test_without_on_failure_a_failed_task_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="died"):
        run_tasks(square_or_misbehave, [(1, "crash", str(tmp_path))], jobs=2, retries=0, on_result=lambda r: None)


@pytest.mark.slow
def test_dask_retries_then_records_a_raising_task(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cl:
        tasks = [(i, {2: "raise", 3: "raise-once"}.get(i, "ok"), str(tmp_path)) for i in range(5)]
        got, failures = _run(tasks, scheduler=cl.scheduler_address, timeout=60, retries=1)
    assert sorted(r for r in got if not isinstance(r, tuple)) == [0, 1, 9, 16]
    assert [f[0] for f in failures] == [2] and "task 2 is bad" in failures[0][1]
