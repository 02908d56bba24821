"""The lookup indexes held by the server: the live plan's, swapped atomically.

``current`` is one immutable ``(plan_id, GridIndex)`` tuple read by every request without a lock
or a database hit; a newer plan's index is built off to the side (in a thread) and then assigned
in one statement, so a request sees either the old index or the new one, never a mix. Other plans
asked for by id are kept in a small LRU cache.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from gridplan.api.versions import live_id
from gridplan.geo.index import GridIndex, read_road

log = logging.getLogger("gridplan.index")


class IndexRegistry:
    """The lookup indexes of one server: the current plan's and an LRU cache of others (module docstring).

    Parameters
    ----------
    store
        The job store (``api.store``): where plans and their layers are read from.
    cache_size : int
        How many indexes of plans asked for by id are kept besides the current one.
    """

    def __init__(self, store, cache_size: int = 4):
        self.store = store
        self.cache_size = max(1, cache_size)
        self.current: tuple[str, GridIndex] | None = None
        self._cache: OrderedDict[str, GridIndex] = OrderedDict()
        self._lock = threading.Lock()       # serializes builds
        self._checked = 0.0
        self.swaps = 0

    def build(self, job_id: str) -> GridIndex:
        """Build the index of job ``job_id``'s plan.

        Raises LookupError(409, detail) for a plan lookup cannot answer truly (a road-network plan
        without its road table).
        """
        try:
            return self._build(job_id)
        except ValueError as e:
            raise LookupError(409, f"plan {job_id} cannot be looked up: {str(e).split(': ', 1)[-1]}") from e
        except FileNotFoundError as e:   # a job whose output is no plan (an audit)
            raise LookupError(409, f"job {job_id} made no plan (no grids to look up)") from e

    def _build(self, job_id: str) -> GridIndex:
        st = self.store
        t0 = time.perf_counter()
        if st.settings.is_postgres:
            job = st.get_job(job_id) or {}
            stations = st.read_layer(job_id, "stations") if st.has_layer(job_id, "stations") else None
            workers = st.read_layer(job_id, "workers") if st.has_layer(job_id, "workers") else None
            summary = job.get("summary") or {}
            micro = st.read_layer(job_id, "micro_grids") if st.has_layer(job_id, "micro_grids") else None
            idx = GridIndex.from_frames(st.read_layer(job_id, "grids"), stations, workers, summary=summary,
                                        plan_id=job_id, road=read_road(st.out_dir(job_id), summary), micro=micro)
        else:
            idx = GridIndex.from_plan_dir(st.out_dir(job_id), plan_id=job_id)
        log.info("index built", extra={"plan": job_id, "grids": len(idx), "ms": round((time.perf_counter() - t0) * 1e3)})
        return idx

    def refresh(self) -> bool:
        """Load the live plan (:func:`gridplan.api.versions.live_id`) if it is not the current one.

        True when swapped. The live plan is read under the build lock, so of two refreshes racing
        (a publish here, the poll of a publish elsewhere) the later one always has the last word.
        """
        self._checked = time.monotonic()
        with self._lock:
            live = live_id(self.store.engine)
            cur = self.current
            if live is None or (cur is not None and cur[0] == live):
                return False
            idx = self._cache.get(live) or self.build(live)
            self.current = (live, idx)   # the atomic swap
            self.swaps += 1
            self._remember(live, idx)
        return True

    def refresh_async(self) -> None:
        """Run :meth:`refresh` in a background thread (a failure is logged; the old index stays)."""
        threading.Thread(target=self._safe_refresh, name="gridplan-index-refresh", daemon=True).start()

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception:  # any failure: keep serving the old index
            log.exception("index refresh failed")

    def _remember(self, job_id: str, idx: GridIndex) -> None:
        self._cache[job_id] = idx
        self._cache.move_to_end(job_id)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def forget(self, plan_id: str) -> None:
        """Drop a purged plan's index; the next default lookup loads the newest remaining plan."""
        with self._lock:
            self._cache.pop(plan_id, None)
            cur = self.current
            if cur is not None and cur[0] == plan_id:
                self.current = None

    def peek(self, plan_id: str | None) -> tuple[str, GridIndex] | None:
        """Return ``(plan id, index)`` if it is already in memory (no database, no build) — the hot path."""
        cur = self.current
        if plan_id is None or (cur is not None and cur[0] == plan_id):
            return cur
        idx = self._cache.get(plan_id)
        return (plan_id, idx) if idx is not None else None

    def get(self, plan_id: str | None) -> tuple[str, GridIndex] | None:
        """Return ``(plan id, index)`` for ``plan_id`` or the live plan; None when there is none.

        Builds the index when it is not in memory. Raises LookupError(status, detail) for an unknown
        (404) or unfinished (409) plan id.
        """
        if plan_id is None:
            cur = self.current
            if cur is None:
                self.refresh()
                cur = self.current
            return cur
        cur = self.current
        if cur is not None and cur[0] == plan_id:
            return cur
        idx = self._cache.get(plan_id)
        if idx is not None:
            return plan_id, idx
        job = self.store.get_job(plan_id)
        if job is None:
            raise LookupError(404, f"no job {plan_id!r}")
        if job["status"] != "succeeded":
            raise LookupError(409, f"job {plan_id!r} is {job['status']}: only a succeeded job has a plan to look up")
        with self._lock:
            idx = self._cache.get(plan_id) or self.build(plan_id)
            self._remember(plan_id, idx)
        return plan_id, idx
