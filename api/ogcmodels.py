"""GeoJSON response models of the OGC API – Features routes, built on geojson-pydantic.

The models document ``/ogc/collections/{id}/items`` and ``…/items/{featureId}`` in the OpenAPI
definitions, and :func:`feature_document` checks and writes the single-feature answer through
:class:`OgcFeature`. Pages of items are NOT built through the models: they are streamed feature by
feature (:mod:`gridplan.geo.featurestream`), and :class:`OgcFeaturePage` only describes their shape.
"""
from __future__ import annotations

import json
from typing import Any

from geojson_pydantic import Feature, FeatureCollection
from geojson_pydantic.geometries import Geometry
from pydantic import BaseModel, Field


class Link(BaseModel):
    """A link of an OGC API document."""

    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class OgcFeature(Feature[Geometry, dict[str, Any]]):
    """A feature: geometry in the answer's CRS, the layer's attributes as properties, links when alone."""

    links: list[Link] | None = Field(None, description="self and collection (single-feature answers)")


class OgcFeaturePage(FeatureCollection[OgcFeature]):
    """A page of items: the features, counts, the time of the answer and the self/next/prev links."""

    numberReturned: int = Field(description="features in this page")
    numberMatched: int | None = Field(None, description="features of the collection; absent when filtered")
    timeStamp: str = Field(description="when the page was written (RFC 3339)")
    links: list[Link]


def feature_document(doc: dict) -> str:
    """Return a feature as GeoJSON text after checking it against :class:`OgcFeature`.

    Parameters
    ----------
    doc : dict
        A GeoJSON Feature with ``links``.

    Returns
    -------
    str
        The feature as JSON text (``bbox`` omitted when absent, null properties kept).
    """
    out = OgcFeature.model_validate(doc).model_dump(mode="json")
    if out.get("links") is not None:
        out["links"] = [{k: v for k, v in link.items() if v is not None} for link in out["links"]]
    return json.dumps(out, ensure_ascii=False)
