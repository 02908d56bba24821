"""A thin Python client of the gridplan service (httpx): submit jobs, wait, pull layers as GeoDataFrames.

>>> from gridplan.api.client import Client
>>> gp = Client("http://localhost:8000", key="gp_…")
>>> job = gp.submit("villages.gpkg", "households.csv", params={"target_households": 300})
>>> gp.wait(job, progress=True)["status"]
'succeeded'
>>> grids = gp.layer(job, "grids")              # a GeoDataFrame in WGS 84
>>> gp.lookup(109.45, 19.22)["grid_code"]

Every HTTP error becomes :class:`ApiError` carrying the problem+json answer (status, detail,
errors). The client imports nothing of the server; geopandas is imported only to build frames.
"""
from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

FILE_ROLES = ("boundaries", "households", "facilities", "roster", "network", "barriers", "grids")
FINAL = ("succeeded", "failed", "cancelled")
BATCH_POINTS = 100_000      # points per POST /v1/lookup (the server's default cap)
OGC_PAGE = 10_000           # features per OGC items page (the server's maximum)


class ApiError(Exception):
    """An error answer of the service: ``status``, ``detail`` and the problem's ``errors`` items."""

    def __init__(self, status: int, detail: str, errors: list | None = None, body: dict | None = None):
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail, self.errors, self.body = status, detail, errors or [], body or {}


class JobFailed(ApiError):
    """A job that ended ``failed`` or ``cancelled`` while :meth:`Client.wait` waited for it."""


def _file(value) -> tuple[str, Any]:
    """Return a multipart file part from a path, ``(name, bytes or file)``, or an open binary file."""
    if isinstance(value, (str, Path)):
        p = Path(value)
        return p.name, p.read_bytes()
    if isinstance(value, tuple):
        return value
    return Path(getattr(value, "name", "upload")).name, value


class Client:
    """The gridplan HTTP service seen from Python.

    Parameters
    ----------
    base_url : str
        The service's root, e.g. ``"http://localhost:8000"``.
    key : str, optional
        An API key (``X-API-Key``): a planner key to submit, a reader key to read.
    timeout : float
        Seconds one request may take.
    http : httpx.Client, optional
        The HTTP client to use (e.g. a FastAPI ``TestClient`` for an in-process app); its base URL
        is used as is.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", key: str | None = None, timeout: float = 120.0,
                 http: httpx.Client | None = None):
        self.headers = {"X-API-Key": key} if key else {}
        self.http = http if http is not None else httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def close(self) -> None:
        """Close the underlying HTTP client."""
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _request(self, method: str, url: str, **kw) -> httpx.Response:
        r = self.http.request(method, url, headers=self.headers, **kw)
        if r.status_code >= 400:
            raise _error(r)
        return r

    def get_json(self, url: str, **params) -> Any:
        """GET ``url`` (relative to the base URL) with query ``params`` and return its JSON answer."""
        return self._request("GET", url, params={k: v for k, v in params.items() if v is not None}).json()

    # ------------------------------------------------------------------ jobs
    def submit(self, boundaries, households, params: dict | None = None, kind: str | None = None,
               layers: dict | None = None, **files) -> str:
        """Submit a plan job and return its id.

        Parameters
        ----------
        boundaries, households
            The input files: paths, ``(file name, bytes)`` pairs or open binary files.
        params : dict, optional
            The plan options (``target_households``, ``tolerance``, ``minutes``, ``coords``, …).
        kind : str, optional
            The job kind, for services that run more than plan jobs (sent only when given).
        layers : dict, optional
            ``{name: file}``: the departments' legacy grid layers of a ``merge`` job (sent as the repeated
            ``layers`` upload with ``layer_names``; kind ``merge`` is implied).
        **files
            Optional inputs by role: ``facilities``, ``roster``, ``network``, ``barriers``; ``grids`` (the
            existing grid layer) for an ``audit`` or ``adopt`` job.
        """
        unknown = set(files) - set(FILE_ROLES)
        if unknown:
            raise TypeError(f"unknown input role(s) {sorted(unknown)}: expected {', '.join(FILE_ROLES[2:])}")
        parts = [("boundaries", _file(boundaries)), ("households", _file(households))]
        parts += [(role, _file(v)) for role, v in files.items() if v is not None]
        data = {"params": json.dumps(params or {})}
        if layers:
            parts += [("layers", _file(v)) for v in layers.values()]
            data["layer_names"] = json.dumps(list(layers))
            kind = kind or "merge"
        if kind is not None:
            data["kind"] = kind
        return self._request("POST", "/v1/jobs", files=parts, data=data).json()["id"]

    def job(self, job_id: str) -> dict:
        """Return a job: status, progress, stage, error and (once succeeded) its summary."""
        return self.get_json(f"/v1/jobs/{job_id}")

    def jobs(self, status: str | None = None, limit: int = 100, offset: int = 0) -> list[dict]:
        """List jobs, newest first (only those with ``status`` when given)."""
        return self.get_json("/v1/jobs", status=status, limit=limit, offset=offset)["jobs"]

    def plans(self, limit: int = 100, published: bool | None = None) -> list[dict]:
        """List plan versions (``GET /v1/plans``): source, parent, effective dates, headline figures."""
        flag = None if published is None else str(bool(published)).lower()
        return self.get_json("/v1/plans", limit=limit, published=flag)["plans"]

    def publish(self, plan_id: str, effective_from: str) -> dict:
        """Publish version ``plan_id`` from ``effective_from`` (ISO date; a planner key); return the version."""
        return self._request("POST", f"/v1/plans/{plan_id}/publish", json={"effective_from": effective_from}).json()

    def edit(self, plan_id: str, edits: list[dict]) -> dict:
        """Apply ``edits`` (``optimize.edit_apply`` ops) to version ``plan_id``; return the new version."""
        return self._request("POST", f"/v1/plans/{plan_id}/edits", json={"edits": edits}).json()

    def cancel(self, job_id: str) -> dict:
        """Cancel a queued or running job; return it."""
        return self._request("DELETE", f"/v1/jobs/{job_id}").json()

    def wait(self, job_id: str, timeout: float | None = None, poll_s: float = 0.5,
             progress: bool | Callable[[dict], None] = False) -> dict:
        """Wait until a job has finished and return it; :class:`JobFailed` when it failed or was cancelled.

        Parameters
        ----------
        job_id : str
            The job.
        timeout : float, optional
            Give up (``TimeoutError``) after this many seconds.
        poll_s : float
            Seconds between polls.
        progress : bool or callable
            True prints ``stage  NN%`` lines to stderr as they change; a callable gets each polled job.
        """
        t0, last = time.monotonic(), None
        while True:
            j = self.job(job_id)
            if callable(progress):
                progress(j)
            elif progress and (j.get("stage"), round(j.get("progress") or 0, 2)) != last:
                last = (j.get("stage"), round(j.get("progress") or 0, 2))
                print(f"{job_id}: {j.get('stage') or j['status']} {100 * (j.get('progress') or 0):3.0f}%",
                      file=sys.stderr)
            if j["status"] in FINAL:
                if j["status"] != "succeeded":
                    raise JobFailed(409, f"job {job_id} {j['status']}: {j.get('error') or 'no reason given'}",
                                    body=j)
                return j
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"job {job_id} is still {j['status']} after {timeout:g} s")
            time.sleep(poll_s)

    # ------------------------------------------------------------------ results
    def layer(self, job_id: str, layer: str, bbox: tuple[float, float, float, float] | None = None):
        """Return one result layer of a succeeded job as a WGS 84 GeoDataFrame (optionally within ``bbox``)."""
        params = {"bbox": ",".join(map(str, bbox))} if bbox else {}
        r = self._request("GET", f"/v1/jobs/{job_id}/layers/{layer}", params=params)
        return _frame(r.content)

    def items(self, collection: str, bbox: tuple[float, float, float, float] | None = None,
              limit: int | None = None, page_size: int = OGC_PAGE, **equals):
        """Return the features of an OGC API collection as a GeoDataFrame, following ``next`` pages.

        ``collection`` is ``grids`` (the live plan) or ``{plan_id}.{layer}``; ``equals`` keeps the
        features whose attribute equals the value (``village_code="…"``); ``limit`` caps the total.
        """
        import pandas as pd

        if limit == 0:
            return _frame(b'{"type": "FeatureCollection", "features": []}')
        params = {"limit": min(page_size, limit or page_size), **{k: str(v) for k, v in equals.items()}}
        if bbox:
            params["bbox"] = ",".join(map(str, bbox))
        url, frames, n = f"/ogc/collections/{collection}/items", [], 0
        while url and (limit is None or n < limit):
            r = self._request("GET", url, params=params)
            page = r.json()
            frames.append(_frame(r.content, page))
            n += len(frames[-1])
            url = next((lk["href"] for lk in page.get("links", []) if lk.get("rel") == "next"), None)
            params = None   # the next link carries them
        gdf = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return gdf.iloc[:limit] if limit is not None else gdf

    def download(self, job_id: str, dest) -> Path:
        """Download a succeeded job's output directory as a zip to ``dest`` (a file, or a directory)."""
        dest = Path(dest)
        if dest.is_dir():
            dest = dest / f"gridplan-{job_id}.zip"
        with self.http.stream("GET", f"/v1/jobs/{job_id}/download", headers=self.headers) as r:
            if r.status_code >= 400:
                r.read()
                raise _error(r)
            tmp = dest.with_name(dest.name + ".part")
            with open(tmp, "wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
            tmp.replace(dest)
        return dest

    # ------------------------------------------------------------------ lookup
    def lookup(self, lon: float, lat: float, plan: str | None = None, coords: str | None = None,
               as_of: str | None = None) -> dict | None:
        """Return the grid, workers and station serving one point (the version in effect ``as_of``); None outside."""
        try:
            return self.get_json("/v1/lookup", lon=lon, lat=lat, plan=plan, coords=coords, as_of=as_of)
        except ApiError as e:
            if e.status == 404 and str(e.body.get("type", "")).endswith("/outside-grids"):
                return None
            raise

    def lookup_many(self, points: Iterable, plan: str | None = None, coords: str | None = None,
                    batch: int = BATCH_POINTS) -> list[dict | None]:
        """Look up many ``(lon, lat)`` points (in batches the server accepts); answers in input order."""
        pts = [[float(x), float(y)] for x, y in points]
        out: list[dict | None] = []
        for i in range(0, len(pts), batch) if pts else [0]:
            body = {"points": pts[i:i + batch]}
            if plan is not None:
                body["plan"] = plan
            if coords is not None:
                body["coords"] = coords
            out += self._request("POST", "/v1/lookup", json=body).json()["results"]
        return out


def _error(r: httpx.Response) -> ApiError:
    try:
        body = r.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return ApiError(r.status_code, str(body.get("detail") or r.reason_phrase), body.get("errors"), body)


def _frame(content: bytes, body: dict | None = None):
    """GeoJSON bytes (``body``: the same, parsed, when at hand) -> a GeoDataFrame (WGS 84), read by GDAL."""
    import geopandas as gpd
    import pyogrio

    if body is None and len(content) < 4096:
        body = json.loads(content)
    if body is not None and not body.get("features"):
        return gpd.GeoDataFrame(geometry=[], crs=4326)
    return pyogrio.read_dataframe(io.BytesIO(content))
