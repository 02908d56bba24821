"""``gridplan export --pmtiles``: the archive reads back with the pmtiles reader and its tiles are the server's."""
from __future__ import annotations

import gzip

import mapbox_vector_tile
import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import TileType
from typer.testing import CliRunner

from gridplan.api.cli import app
from gridplan.geo.tiles import TMS, read_tile_source, render_tile
from tests.helpers.api import write_tiny_plan


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory):
    return write_tiny_plan(tmp_path_factory.mktemp("export") / "plan")


def run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    r.text = " ".join(r.output.split())   # rich wraps long messages
    return r


def test_export_writes_a_pmtiles_archive_whose_tiles_decode_to_the_plan(plan_dir, tmp_path):
    out = tmp_path / "plan.pmtiles"
    r = run("export", "--plan", plan_dir, "--pmtiles", out, "--min-zoom", 10, "--max-zoom", 14)
    assert r.exit_code == 0, r.output
    with open(out, "rb") as f:
        reader = Reader(MmapSource(f))
        h = reader.header()
        assert h["tile_type"] == TileType.MVT and (h["min_zoom"], h["max_zoom"]) == (10, 14)
        assert h["min_lon_e7"] / 1e7 == pytest.approx(120.0, abs=0.02)
        meta = reader.metadata()
        assert {v["id"] for v in meta["vector_layers"]} == {"grids", "units", "service_areas", "stations"}
        t = TMS.tile(120.02, 30.01, 12)
        data = gzip.decompress(reader.get(12, t.x, t.y))
        grids = mapbox_vector_tile.decode(data)["grids"]["features"]
        assert len(grids) == 8
        assert data == render_tile(read_tile_source(plan_dir), 12, t.x, t.y)   # the server's tile, byte for byte
        zooms = {z for (z, _, _), _ in all_tiles(reader.get_bytes)}
        assert zooms == set(range(10, 15))


def test_export_options_and_missing_plans_are_named(plan_dir, tmp_path):
    r = run("export", "--plan", plan_dir, "--pmtiles", tmp_path / "a.pmtiles", "--min-zoom", 9, "--max-zoom", 5)
    assert r.exit_code == 2 and "--min-zoom 9 is above --max-zoom 5" in r.text
    r = run("export", "--plan", plan_dir, "--pmtiles", tmp_path / "a.pmtiles", "--max-zoom", 30)
    assert r.exit_code == 2 and "--max-zoom" in r.text
    r = run("export", "--plan", tmp_path / "nowhere", "--pmtiles", tmp_path / "a.pmtiles")
    assert r.exit_code == 1 and "no plan.gpkg" in r.text
    assert not (tmp_path / "a.pmtiles").exists()
    r = run("export", "--plan", plan_dir)
    assert r.exit_code == 2 and "--pmtiles" in r.text
