"""The allow-listed reading path: each accepted format (also zipped) is read by its own reader,
content wins over the name, and a network file is recognised by its first blob header."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.helpers.io import (assert_households_at, grid_units, households_csv, inside_points, one,
                                 points_frame)
from gridplan.geo.io import load_dataset, read_table, validate


@pytest.fixture
def units_geojson(tmp_path):
    p = tmp_path / "boundaries.geojson"
    grid_units().to_file(p)
    return p


def test_projected_shapefile_crs_comes_from_its_prj(tmp_path):
    """The .prj is read by pyproj (GDAL never sees it): a projected shapefile lands where it should."""
    u = grid_units().to_crs(4546)
    with pytest.warns((UserWarning, RuntimeWarning)):  # the Shapefile driver truncates long column names
        u.to_file(tmp_path / "b.shp")
    lon, lat, unit = inside_points(6)
    ds = load_dataset(tmp_path / "b.shp", households_csv(tmp_path / "h.csv", lon, lat))
    assert ds.units["unit_code"].tolist() == grid_units()["village_code"].tolist()
    assert_households_at(ds, lon, lat, unit, tol_deg=1e-7)
    (tmp_path / "b.prj").write_text("not a CRS")
    ds = load_dataset(tmp_path / "b.shp", households_csv(tmp_path / "h.csv", lon, lat), strict=False)
    assert not one(ds.problems, "bad_prj").fatal and one(ds.problems, "no_crs_projected").fatal


@pytest.mark.parametrize("inner", ["h.geojson", "h.gpkg", "h.csv", "h.parquet", "h.fgb", "nested/dir/h.tsv"])
def test_zipped_single_files_are_read(tmp_path, units_geojson, inner):
    lon, lat, unit = inside_points(7)
    pts = points_frame(lon, lat, id=[f"h{i}" for i in range(7)])
    f = tmp_path / "plain" / inner
    f.parent.mkdir(parents=True)
    if f.suffix == ".csv" or f.suffix == ".tsv":
        households_csv(f, lon, lat, ids=[f"h{i}" for i in range(7)], sep="\t" if f.suffix == ".tsv" else ",")
    elif f.suffix == ".parquet":
        pts.to_parquet(f)
    elif f.suffix == ".fgb":
        pts.to_file(f, SPATIAL_INDEX="NO")  # with an index FlatGeobuf stores features in Hilbert order
    else:
        pts.to_file(f)
    z = tmp_path / "households.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(f, inner)
        zf.writestr("__MACOSX/._h", b"resource fork")
    ds = load_dataset(units_geojson, z)
    assert ds.households["hh_id"].tolist() == [f"h{i}" for i in range(7)]
    assert_households_at(ds, lon, lat, unit)
    assert ds.sources["households"] == "households.zip"


def test_zips_that_are_not_one_dataset_are_refused(tmp_path, units_geojson):
    def zipped(name, members):
        z = tmp_path / name
        with zipfile.ZipFile(z, "w") as zf:
            for k, v in members.items():
                zf.writestr(k, v)
        return z

    two = zipped("two.zip", {"a.csv": "lon,lat\n110.005,19.505\n", "b.csv": "lon,lat\n110.005,19.505\n"})
    p = one(validate(units_geojson, two), "unsupported_format")
    assert p.fatal and p.source == "two.zip" and "a.csv" in p.message and "b.csv" in p.message
    inner = zipped("inner.zip", {"a.csv": "lon,lat\n110.005,19.505\n"})
    nested = zipped("nested.zip", {"inner.zip": inner.read_bytes()})
    p = one(validate(units_geojson, nested), "unsupported_format")
    assert p.source == "nested.zip" and "zip inside a zip" in p.message
    assert one(validate(units_geojson, zipped("empty.zip", {"dir/": ""})), "empty").source == "empty.zip"
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    p = one(validate(units_geojson, tmp_path / "broken.zip"), "unreadable")
    assert p.message.startswith("cannot read broken.zip") or p.message.startswith("cannot unpack broken.zip")


def test_a_file_is_what_its_content_says(tmp_path, units_geojson):
    """Content wins over the name; plain text named like a binary or JSON format is refused."""
    lon, lat, unit = inside_points(4)
    points_frame(lon, lat, id=list("abcd")).to_file(tmp_path / "h.gpkg")
    (tmp_path / "h.gpkg").rename(tmp_path / "households.dat")
    ds = load_dataset(units_geojson, tmp_path / "households.dat")
    assert ds.households["hh_id"].tolist() == list("abcd")
    (tmp_path / "h.geojson").write_text("lon,lat\n110.005,19.505\n")
    p = one(validate(units_geojson, tmp_path / "h.geojson"), "unreadable")
    assert p.source == "h.geojson" and "plain text" in p.message
    (tmp_path / "h.txt").write_bytes("lon\tlat\n110.005\t19.505\n".encode("utf-16"))
    assert "UTF-16" in one(validate(units_geojson, tmp_path / "h.txt"), "unreadable").message
    (tmp_path / "h.xml").write_text("<kml><Placemark/></kml>")
    assert "XML" in one(validate(units_geojson, tmp_path / "h.xml"), "unreadable").message


def test_geojson_read_without_gdal_keeps_ids_types_and_named_crs(tmp_path, units_geojson):
    lon, lat, unit = inside_points(3)
    feats = [{"type": "Feature", "id": f"0{i}", "properties": {"households": i + 1, "note": {"k": i}},
              "geometry": {"type": "Point", "coordinates": [float(lon[i]), float(lat[i])]}} for i in range(3)]
    feats.append({"type": "Feature", "id": "03", "properties": {"households": 1}, "geometry": None})
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:4326"}},
           "features": feats}
    (tmp_path / "h.geojson").write_text(json.dumps(doc))
    frame, problems = read_table(tmp_path / "h.geojson", role="households")
    assert frame["id"].tolist() == ["00", "01", "02", "03"] and frame["households"].tolist() == [1, 2, 3, 1]
    assert frame.crs.to_epsg() == 4326 and frame.geometry.isna().tolist() == [False, False, False, True]
    ds = load_dataset(units_geojson, tmp_path / "h.geojson")
    assert ds.households["hh_id"].tolist() == ["00", "01", "02"]
    assert_households_at(ds, lon, lat, unit)


# ----------------------------------------------------------------------------- network files
def test_network_file_is_recognised_by_its_first_blob_header(tmp_path):
    import pyrosm

    from gridplan.geo.formats import check_network, is_osm_pbf_head

    real = Path(pyrosm.get_data("test_pbf"))
    assert is_osm_pbf_head(real.read_bytes()[:70_000])
    assert check_network(real) == []
    for name, content in (("roads.osm.pbf", b"garbage" * 100), ("v.osm.pbf", b"<OGRVRTDataSource><OGRVRTLayer name=\"x\"/></OGRVRTDataSource>"),
                          ("cut.osm.pbf", real.read_bytes()[:10])):
        (tmp_path / name).write_bytes(content)
        p = one(check_network(tmp_path / name), "network_format")
        assert p.fatal and p.source == name
    assert one(check_network(tmp_path / "missing.pbf"), "unreadable").fatal


def test_pbf_is_not_read_as_households(tmp_path, units_geojson):
    import pyrosm

    shutil.copyfile(pyrosm.get_data("test_pbf"), tmp_path / "h.csv")
    p = next(p for p in validate(units_geojson, tmp_path / "h.csv") if p.fatal)
    assert p.source == "h.csv" and "network" in p.message
