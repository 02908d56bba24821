"""Hostile inputs: nothing is read that was not sent, nothing is fetched, nothing inflates unbounded.

A local HTTP server (127.0.0.1, started per test, stopped after it) counts the requests a read
makes; it must see none. Another file's content (a secret CSV, /etc/passwd) must never appear in
a frame or a message.
"""
from __future__ import annotations

import http.server
import json
import sqlite3
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers.io import grid_units, households_csv, inside_points, one, points_frame
from gridplan.geo.io import load_dataset, load_lines, read_table, validate

SECRET = "TOPSECRET-7f3a"


# ----------------------------------------------------------------------------- fixtures
class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self):  # noqa: N802 - the stdlib's name
        self.server.hits.append(self.path)
        body = b"lon,lat,id\n110.005,19.505," + SECRET.encode() + b"\n"
        if self.path.endswith(".geojson"):
            body = json.dumps({"type": "FeatureCollection", "features": [
                {"type": "Feature", "properties": {"id": SECRET},
                 "geometry": {"type": "Point", "coordinates": [110.005, 19.505]}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A counting HTTP server on 127.0.0.1 that lives for one test."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    srv.hits = []
    srv.timeout = 1
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.fixture
def secret_csv(tmp_path):
    p = tmp_path / "secret" / "secret.csv"
    p.parent.mkdir()
    p.write_text(f"lon,lat,id,village_code\n110.005,19.505,{SECRET},{SECRET}\n")
    return p


@pytest.fixture
def units(tmp_path):
    p = tmp_path / "units.geojson"
    grid_units().to_file(p)
    return p


@pytest.fixture
def households(tmp_path):
    lon, lat, _ = inside_points(5)
    return households_csv(tmp_path / "hh.csv", lon, lat)


def vrt(source: str, layer: str) -> bytes:
    """An OGR VRT whose layer reads ``source`` (a file or a URL) with lon/lat point geometries."""
    return (f'<OGRVRTDataSource>\n  <OGRVRTLayer name="{layer}">\n    <SrcDataSource>{source}</SrcDataSource>\n'
            f'    <GeometryType>wkbPoint</GeometryType>\n'
            f'    <GeometryField encoding="PointFromColumns" x="lon" y="lat"/>\n'
            f'  </OGRVRTLayer>\n</OGRVRTDataSource>\n').encode()


def _all_text(problems, frame=None) -> str:
    text = " ".join(f"{p.source} {p.row} {p.message}" for p in problems)
    if frame is not None:
        text += frame.astype(str).to_string()
    return text


def assert_refused(problems, *, hits=None, where=None):
    """Refused with a fatal problem naming the client's file; nothing fetched, no other file's content,
    no server path and no exception class name in any message."""
    fatal = [p for p in problems if p.fatal]
    assert fatal, problems
    text = _all_text(problems)
    assert SECRET not in text and "root:x:0:0" not in text
    assert "/vsi" not in text and "gridplan-read-" not in text and "Error:" not in text and "Traceback" not in text
    if where is not None:
        assert str(where) not in text
    if hits is not None:
        assert hits == [], f"the reader made HTTP requests: {hits}"


# ----------------------------------------------------------------------------- VRTs
NAMES = ["h.vrt", "h.xml", "h.dat", "h.csv", "h.txt", "h.geojson", "h.gpkg", "h.shp", "h.fgb", "h.parquet", "h"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("role", ["households", "boundaries"])
def test_vrt_pointing_at_a_local_file_is_refused_under_any_name(tmp_path, units, households, secret_csv, name, role):
    hostile = tmp_path / name
    hostile.write_bytes(vrt(f"CSV:{secret_csv}", "secret"))
    args = {"boundaries": units, "households": households, role: hostile}
    problems = validate(args["boundaries"], args["households"])
    assert_refused(problems, where=tmp_path)
    p = next(p for p in problems if p.fatal and p.source == name)
    assert p.kind == "unsafe_input" and "VRT" in p.message
    frame, problems = read_table(hostile, role=role)
    assert frame is None
    assert_refused(problems)


@pytest.mark.parametrize("name", ["h.vrt", "h.csv", "h.geojson", "h.dat"])
def test_vrt_pointing_at_etc_passwd_is_refused(tmp_path, units, households, name):
    hostile = tmp_path / name
    hostile.write_bytes(vrt("CSV:/etc/passwd", "passwd"))
    problems = validate(units, hostile)
    assert_refused(problems)
    assert one(problems, "unsafe_input").source == name


@pytest.mark.parametrize("name", NAMES)
def test_vrt_pointing_at_a_url_fetches_nothing(tmp_path, units, server, name):
    url = f"/vsicurl/http://127.0.0.1:{server.server_port}/pts.csv"
    hostile = tmp_path / name
    hostile.write_bytes(vrt(url, "pts"))
    problems = validate(units, hostile)
    assert_refused(problems, hits=server.hits)
    lines, ps = load_lines(hostile, "EPSG:4546")
    assert len(lines) == 0
    assert_refused(ps, hits=server.hits)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("member", ["h.vrt", "h.csv", "h.shp", "data/h.geojson", "h.dat"])
def test_vrt_inside_a_zip_is_refused(tmp_path, units, server, secret_csv, member):
    url = f"/vsicurl/http://127.0.0.1:{server.server_port}/pts.csv"
    for i, src in enumerate((f"CSV:{secret_csv}", url)):
        members = {member: vrt(src, "x")}
        if member == "h.shp":  # a zipped "shapefile" whose .shp is really a VRT, with plausible sidecars
            members |= {"h.dbf": b"\x03" + b"\x00" * 31, "h.shx": b"\x00" * 100}
        z = _zip(tmp_path / f"households{i}.zip", members)
        problems = validate(units, z)
        assert_refused(problems, hits=server.hits, where=tmp_path)
        p = next(p for p in problems if p.fatal)
        assert p.source == z.name and member in p.message


def test_geojson_with_a_linked_crs_is_refused_without_fetching(tmp_path, units, server):
    lon, lat, _ = inside_points(3)
    doc = json.loads(points_frame(lon, lat, id=["a", "b", "c"]).to_json())
    href = f"http://127.0.0.1:{server.server_port}/crs.wkt"
    for crs in ({"type": "link", "properties": {"href": href, "type": "ogcwkt"}},
                {"type": "url", "properties": {"url": href}},
                {"type": "name", "properties": {"name": href}}):
        doc["crs"] = crs
        (tmp_path / "h.geojson").write_text(json.dumps(doc))
        problems = validate(units, tmp_path / "h.geojson")
        assert_refused(problems, hits=server.hits)
        assert any(p.source == "h.geojson" and p.fatal and "crs" in p.message for p in problems)
    # a named CRS is fine, and read
    doc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4490"}}
    (tmp_path / "h.geojson").write_text(json.dumps(doc))
    ds = load_dataset(units, tmp_path / "h.geojson", coords="cgcs2000")
    assert len(ds.households) == 3 and server.hits == []


def test_gpkg_view_layer_is_refused(tmp_path):
    p = tmp_path / "h.gpkg"
    lon, lat, _ = inside_points(4)
    points_frame(lon, lat, id=[1, 2, 3, 4]).to_file(p, layer="pts")
    con = sqlite3.connect(p)
    con.execute("CREATE VIEW v AS SELECT * FROM pts")
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) "
                "VALUES ('v', 'features', 'v', 4326)")
    con.execute("INSERT INTO gpkg_geometry_columns VALUES ('v', 'geom', 'POINT', 4326, 0, 0)")
    con.commit()
    con.close()
    frame, problems = read_table(p, role="households", layer="v")
    assert frame is None and one(problems, "unsafe_input").source == "h.gpkg"
    con = sqlite3.connect(p)
    con.execute("CREATE VIRTUAL TABLE vt USING rtree(id, minx, maxx)")
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES ('vt', 'attributes', 'vt')")
    con.commit()
    con.close()
    frame, problems = read_table(p, role="households", layer="vt")
    assert frame is None and "virtual" in one(problems, "unsafe_input").message
    frame, problems = read_table(p, role="households", layer="pts")
    assert frame["id"].tolist() == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- zip bombs and limits
class _Inflated:
    """Counts the bytes zipfile hands out while a test runs."""

    def __init__(self, monkeypatch):
        self.n = 0
        orig = zipfile.ZipExtFile.read

        def read(zef, n=-1):
            data = orig(zef, n)
            self.n += len(data)
            return data

        monkeypatch.setattr(zipfile.ZipExtFile, "read", read)


def _bomb(path: Path, name: str = "h.csv", size: int = 60 * 1024 * 1024) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open(name, "w") as out:
            line = b"110.005,19.505\n"
            out.write(b"lon,lat\n")
            block = line * (1 << 16)
            for _ in range(size // len(block)):
                out.write(block)
    return path


def test_zip_bomb_is_refused_before_inflating(tmp_path, units, monkeypatch):
    bomb = _bomb(tmp_path / "households.zip")
    assert bomb.stat().st_size <= 200 * 1024
    with zipfile.ZipFile(bomb) as z:
        assert sum(i.file_size for i in z.infolist()) >= 50 * 1024 * 1024
    inflated = _Inflated(monkeypatch)
    problems = validate(units, bomb)
    p = one(problems, "too_large")
    assert p.fatal and p.source == "households.zip" and "max_ratio" in p.message
    assert inflated.n == 0  # decided from the central directory


def _patch_sizes(path: Path, declared: int) -> None:
    """Make the zip's headers lie: every uncompressed size (local header and central directory)
    becomes ``declared``."""
    data = bytearray(path.read_bytes())
    i = data.find(b"PK\x03\x04")
    struct.pack_into("<I", data, i + 22, declared)
    j = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, j + 24, declared)
    path.write_bytes(bytes(data))


def test_zip_whose_headers_lie_is_bounded_while_streaming(tmp_path, units, monkeypatch):
    bomb = _bomb(tmp_path / "households.zip")
    _patch_sizes(bomb, 100_000)  # "100 KB": passes the central-directory checks
    inflated = _Inflated(monkeypatch)
    problems = validate(units, bomb)
    assert_refused(problems, where=tmp_path)
    assert inflated.n <= 2 * 1024 * 1024  # never inflated past what was declared (plus a chunk)


def test_zip_with_a_huge_directory_is_refused_before_listing(tmp_path, units, monkeypatch):
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(1500):
            zf.writestr(f"f{i}.csv", b"")
    built = []
    orig = zipfile.ZipFile.__init__
    monkeypatch.setattr(zipfile.ZipFile, "__init__", lambda self, *a, **k: built.append(1) or orig(self, *a, **k))
    p = one(validate(units, z), "unsupported_format")
    assert p.source == "many.zip" and "1,500 members" in p.message and built == []


def test_limits_are_named_in_the_problem(tmp_path, units):
    from gridplan.geo.formats import ReadLimits

    lon, lat, _ = inside_points(30)
    h = households_csv(tmp_path / "h.csv", lon, lat)
    p = one(validate(units, h, limits=ReadLimits(max_rows=20)), "too_large")
    assert p.fatal and p.source == "h.csv" and "max_rows = 20" in p.message and "30 rows" in p.message

    def limited(path, **kw):
        frame, problems = read_table(path, role="households", limits=ReadLimits(**kw))
        assert frame is None or any(p.fatal for p in problems)
        return one(problems, "too_large")

    assert "max_bytes = 100" in limited(h, max_bytes=100).message
    z = _zip(tmp_path / "h.zip", {"h.csv": h.read_bytes()})
    p = limited(z, max_bytes=100)
    assert p.source == "h.zip" and "max_bytes = 100" in p.message
    gj = tmp_path / "h.geojson"
    points_frame(lon, lat).to_file(gj)
    assert "max_json_bytes = 100" in limited(gj, max_json_bytes=100).message
    assert "max_rows = 20" in limited(gj, max_rows=20).message
    p = limited(gj, max_vertices=10)
    assert p.source == "h.geojson" and "30 vertices" in p.message and "max_vertices = 10" in p.message
    gp = tmp_path / "h.gpkg"
    points_frame(lon, lat).to_file(gp)
    assert "max_rows = 20" in limited(gp, max_rows=20).message
    pq = tmp_path / "h.parquet"
    points_frame(lon, lat).to_parquet(pq)
    assert "max_rows = 20" in limited(pq, max_rows=20).message
    assert "max_bytes = 500" in limited(pq, max_bytes=500).message
    # a highly compressible Parquet (64 MB of one repeated value in a small file) is refused, not inflated
    import pyarrow as pa
    import pyarrow.parquet as papq

    big = tmp_path / "big.parquet"
    papq.write_table(pa.table({"lon": pa.array(np.full(4_000_000, 110.005)),
                               "lat": pa.array(np.full(4_000_000, 19.505))}), big, compression="zstd")
    assert big.stat().st_size < 2 * 1024 * 1024
    p = limited(big, max_bytes=16 * 1024 * 1024, max_rows=10**7)
    assert p.source == "big.parquet" and "max_bytes" in p.message
    fgb = tmp_path / "h.fgb"
    points_frame(lon, lat).to_file(fgb)
    assert "max_rows = 20" in limited(fgb, max_rows=20).message
    # within the defaults, all of these are read
    assert not [q for q in validate(units, z) if q.fatal]


def test_limits_fit_the_generated_province(tmp_path):
    from gridplan.geo.formats import DEFAULT_LIMITS

    # benchmarks/make_province.py writes households.parquet: 932,791 rows (id, lon, lat, households,
    # population, weight), zstd, ~22 MB; a table of that shape is read whole under the defaults
    n = 932_791
    rng = np.random.default_rng(7)
    pd.DataFrame({"id": [f"4601{i:08d}" for i in range(n)], "lon": rng.uniform(108.6, 111.1, n),
                  "lat": rng.uniform(18.1, 20.2, n), "households": rng.integers(1, 40, n),
                  "population": rng.uniform(1, 120, n), "weight": rng.uniform(0, 2, n)}
                 ).to_parquet(tmp_path / "households.parquet", index=False, compression="zstd")
    assert (tmp_path / "households.parquet").stat().st_size > 15 * 1024 * 1024
    frame, problems = read_table(tmp_path / "households.parquet", role="households")
    assert problems == [] and len(frame) == n
    assert DEFAULT_LIMITS.max_rows >= 932_791 and DEFAULT_LIMITS.max_bytes >= 22 * 1024 * 1024 * 10
    assert DEFAULT_LIMITS.max_ratio == 100
    # a bomb's worth (>= 50 MB from <= 200 KB) is over the ratio, and 3,000,000 rows over max_rows
    assert 50 * 1024 * 1024 > DEFAULT_LIMITS.max_ratio * 200 * 1024
    assert DEFAULT_LIMITS.max_rows < 3_000_000


# ----------------------------------------------------------------------------- plain words
@pytest.mark.parametrize("name,content", [
    ("h.fgb", b"fgb\x03fgb\x00" + b"\x07" * 200),
    ("h.shp", b"\x00\x00\x27\x0a" + b"\x00" * 200),
    ("h.parquet", b"PAR1" + b"\x00" * 100 + b"PAR1"),
    ("h.gpkg", b"SQLite format 3\x00" + b"\x00" * 200),
    ("h.geojson", b'{"type": "FeatureCollection", "features": [}'),
])
def test_damaged_files_get_plain_words(tmp_path, units, name, content):
    (tmp_path / name).write_bytes(content)
    problems = validate(units, tmp_path / name)
    p = next(p for p in problems if p.fatal)
    assert p.source == name and p.message.startswith(f"cannot read {name}")
    assert_refused(problems, where=tmp_path)
    z = _zip(tmp_path / "h.zip", {name: content})
    problems = validate(units, z)
    assert_refused(problems, where=tmp_path)
    assert next(p for p in problems if p.fatal).source == "h.zip"


def test_problems_name_the_clients_file(tmp_path, units):
    saved = tmp_path / "jobs" / "abc" / "input" / "households.csv"
    saved.parent.mkdir(parents=True)
    saved.write_text("a,b\n1,2\n")
    problems = validate(units, saved, names={"households": "my village points.csv"})
    p = one(problems, "missing_column")
    assert p.source == "my village points.csv" and "my village points.csv" in p.message
    assert str(saved.parent) not in _all_text(problems)


# ----------------------------------------------------------------------------- GDAL stays usable
def test_lockdown_is_per_call_and_thread_local(tmp_path, server):
    """Reading a Shapefile locks this thread's GDAL down only for the call: afterwards (and in
    other threads) GDAL may fetch URLs again — e.g. a client reading the service over HTTP."""
    import pyogrio

    from gridplan.geo.gdal_guard import gdal_locked_down, thread_option

    lon, lat, _ = inside_points(3)
    points_frame(lon, lat, id=["a", "b", "c"]).to_file(tmp_path / "h.shp")
    frame, problems = read_table(tmp_path / "h.shp", role="households")
    assert frame["id"].tolist() == ["a", "b", "c"] and problems == []
    assert thread_option("GDAL_HTTP_PROXY") is None
    url = f"/vsicurl/http://127.0.0.1:{server.server_port}/pts.geojson"
    seen = {}

    def other():
        seen["frame"] = pyogrio.read_dataframe(url)

    with gdal_locked_down():
        t = threading.Thread(target=other)
        t.start()
        t.join(30)
    assert seen["frame"]["id"].tolist() == [SECRET]  # another thread was not locked down
    assert server.hits
    assert pyogrio.read_dataframe(url)["id"].tolist() == [SECRET]  # nor is this one, after the call


# ----------------------------------------------------------------------------- the HTTP surface
def test_http_upload_of_a_vrt_is_a_4xx_and_fetches_nothing(tmp_path, units, households, server, secret_csv):
    from fastapi.testclient import TestClient

    from gridplan.api.app import create_app
    from gridplan.api.auth import create_key
    from gridplan.api.settings import Settings

    data = tmp_path / "srv"
    key = create_key("planner", data_dir=str(data))
    url = f"/vsicurl/http://127.0.0.1:{server.server_port}/pts.csv"
    with TestClient(create_app(Settings(data_dir=str(data)))) as client:
        for i, body in enumerate((vrt(f"CSV:{secret_csv}", "s"), vrt(url, "u"))):
            files = {"boundaries": ("units.geojson", units.read_bytes(), "application/geo+json"),
                     "households": (f"households{i}.dat", body, "application/octet-stream")}
            r = client.post("/v1/jobs", files=files, headers={"X-API-Key": key})
            assert 400 <= r.status_code < 500, r.text
            assert SECRET not in r.text and str(data) not in r.text and "/vsi" not in r.text
            assert any(e["source"] == f"households{i}.dat" for e in r.json()["errors"]), r.text
    assert server.hits == []
