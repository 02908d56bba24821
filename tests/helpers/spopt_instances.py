"""spopt's locate test instances, built as its conftest builds them (tests that reproduce its answers)."""
from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


def data_dir() -> Path:
    """spopt's locate test data directory (spopt must be importable)."""
    import spopt
    return Path(spopt.__file__).parent / "tests" / "test_locate" / "data"


def load(name: str):
    """One of spopt's locate test files: a pickle or a CSV."""
    path = data_dir() / name
    if name.endswith(".pkl"):
        with open(path, "rb") as f:
            return pickle.load(f)
    return pd.read_csv(path)


def network_instance(client_count: int | None, facility_count: int):
    """spopt's ``network_instance``: clients and facilities on a 10x10 lattice (seeds 5 and 6), snapped.

    Returns (clients GeoDataFrame or None, facilities GeoDataFrame, network cost matrix).
    """
    import geopandas
    import spaghetti
    from spopt.locate.util import simulated_geo_points
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lattice = spaghetti.regular_lattice((0, 0, 10, 10), 9, exterior=True)
        ntw = spaghetti.Network(in_data=lattice)
        gdf = spaghetti.element_as_gdf(ntw, arcs=True)
        street = geopandas.GeoDataFrame(geopandas.GeoSeries(gdf["geometry"].buffer(0.2).union_all()),
                                        crs=gdf.crs, columns=["geometry"])
        clients = None
        if client_count:
            ntw.snapobservations(simulated_geo_points(street, needed=client_count, seed=5), "clients", attribute=True)
            clients = spaghetti.element_as_gdf(ntw, pp_name="clients", snapped=True)
        ntw.snapobservations(simulated_geo_points(street, needed=facility_count, seed=6), "facilities",
                             attribute=True)
        facilities = spaghetti.element_as_gdf(ntw, pp_name="facilities", snapped=True)
        source = ntw.pointpatterns["clients" if client_count else "facilities"]
        cost = ntw.allneighbordistances(sourcepattern=source, destpattern=ntw.pointpatterns["facilities"])
    return clients, facilities, np.asarray(cost, float)


def san_francisco() -> tuple[np.ndarray, np.ndarray]:
    """spopt's San Francisco instance: 205 tracts x 16 stores network distances, and POP2000."""
    nd = load("SF_network_distance_candidateStore_16_censusTract_205_new.csv")
    piv = nd.pivot_table(values="distance", index="DestinationName", columns="name")
    dem = load("SF_demand_205_centroid_uniform_weight.csv").sort_values("NAME").reset_index()
    return piv.to_numpy(), dem.POP2000.to_numpy().astype(float)


def schools() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """spopt's capacitated p-median instance: student x school minutes, capacities, priority-1 schools."""
    tt = load("example_subject_student_school_journeys.csv")
    cost = tt.pivot_table(columns="school", fill_value=10000, index="student", sort=False,
                          values="time").astype(int).values
    fac = load("example_subject_schools.csv")
    return cost.astype(float), fac["Count"].to_numpy(float), fac[fac["priority"] == 1].index.to_numpy()
