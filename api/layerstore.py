"""Result layers of finished jobs: in PostGIS (PostgreSQL) or in the job's ``plan.gpkg`` (SQLite).

With PostgreSQL each finished job's layers are copied into tables ``gridplan_layers.j<id>_<layer>``
from which the layer routes read; with SQLite the routes read the job's GeoPackage. The methods
here are part of :class:`gridplan.api.store.Store`.
"""
from __future__ import annotations

import sqlalchemy as sa

LAYERS = ("grids", "stations", "service_areas", "households", "units", "workers", "micro_grids", "crosswalk")
PG_SCHEMA = "gridplan_layers"


class LayerStore:
    """The layer half of :class:`~gridplan.api.store.Store` (it needs ``settings``, ``engine``, ``out_dir``)."""

    def layer_table(self, job_id: str, layer: str) -> str:
        """Return the PostGIS table name of a job's layer (in schema ``PG_SCHEMA``)."""
        return f"j{job_id}_{layer}"

    def publish_layers(self, job_id: str) -> None:
        """Copy the finished job's plan.gpkg layers into PostGIS tables (PostgreSQL; no-op for SQLite)."""
        if not self.settings.is_postgres:
            return
        import pyogrio

        gpkg = self.out_dir(job_id) / "plan.gpkg"
        with self.engine.begin() as c:
            c.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
            c.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
        for name, _ in pyogrio.list_layers(gpkg):
            if name not in LAYERS:
                continue
            gdf = pyogrio.read_dataframe(gpkg, layer=name)
            gdf = gdf.rename_geometry("geom") if gdf.geometry.name != "geom" else gdf
            gdf.to_postgis(self.layer_table(job_id, name), self.engine, schema=PG_SCHEMA, if_exists="replace",
                           index=False)

    def has_layer(self, job_id: str, layer: str) -> bool:
        """Tell whether a job's results hold ``layer`` (a PostGIS table, or a layer of its plan.gpkg)."""
        if self.settings.is_postgres:
            insp = sa.inspect(self.engine)
            return insp.has_table(self.layer_table(job_id, layer), schema=PG_SCHEMA)
        import pyogrio

        gpkg = self.out_dir(job_id) / "plan.gpkg"
        return gpkg.exists() and layer in {n for n, _ in pyogrio.list_layers(gpkg)}

    def read_layer(self, job_id: str, layer: str):
        """Read a job's layer as a WGS 84 GeoDataFrame."""
        if self.settings.is_postgres:
            import geopandas as gpd

            return gpd.read_postgis(sa.text(f'SELECT * FROM "{PG_SCHEMA}"."{self.layer_table(job_id, layer)}"'),
                                    self.engine, geom_col="geom")
        import pyogrio

        return pyogrio.read_dataframe(self.out_dir(job_id) / "plan.gpkg", layer=layer)

    def drop_layers(self, job_id: str) -> None:
        """Drop a job's PostGIS layer tables (no-op for SQLite)."""
        if not self.settings.is_postgres:
            return
        with self.engine.begin() as c:
            for name in LAYERS:
                c.execute(sa.text(f'DROP TABLE IF EXISTS "{PG_SCHEMA}"."{self.layer_table(job_id, name)}"'))

