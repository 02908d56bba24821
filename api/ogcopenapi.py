"""The OGC API – Features part of the service described as an OpenAPI 3.0 document (``/ogc/api``).

FastAPI writes OpenAPI 3.1 (``/openapi.json``); the OGC "OpenAPI 3.0" conformance class and
clients such as GDAL ask for 3.0. This module takes the ``/ogc`` paths of the app's document,
rewrites the few 3.1 constructs FastAPI uses into their 3.0 forms (``{"type": "null"}`` in
``anyOf``/``oneOf`` -> ``nullable``, ``const`` -> ``enum``, ``prefixItems`` -> ``items``, ``examples`` -> ``example``, numeric
``exclusiveMinimum``/``exclusiveMaximum`` -> the boolean form) and states the items parameters as
OGC API – Features Part 1/2 define them (``limit`` an integer 1..10,000 defaulting to 10, ``bbox``
an array of 4 or 6 numbers, ``crs``/``bbox-crs``/``filter-crs`` URIs, ``filter-lang`` one of the
two CQL2 encodings).
"""
from __future__ import annotations

import copy

OGC_PARAMS = {
    "limit": {"style": "form", "explode": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 10}},
    "offset": {"style": "form", "explode": False, "schema": {"type": "integer", "minimum": 0, "default": 0}},
    "bbox": {"style": "form", "explode": False,
             "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
    "bbox-crs": {"style": "form", "explode": False, "schema": {"type": "string", "format": "uri"}},
    "crs": {"style": "form", "explode": False, "schema": {"type": "string", "format": "uri"}},
    "datetime": {"style": "form", "explode": False, "schema": {"type": "string"}},
    "filter": {"style": "form", "explode": False, "schema": {"type": "string"}},
    "filter-lang": {"style": "form", "explode": False,
                    "schema": {"type": "string", "enum": ["cql2-text", "cql2-json"], "default": "cql2-text"}},
    "filter-crs": {"style": "form", "explode": False, "schema": {"type": "string", "format": "uri"}},
}


def _nullable(node: dict, key: str) -> None:
    """``anyOf``/``oneOf`` with a ``{"type": "null"}`` member -> the rest, ``nullable: true``."""
    members = node[key]
    rest = [m for m in members if not (isinstance(m, dict) and m.get("type") == "null")]
    if len(rest) == len(members):
        return
    del node[key]
    node["nullable"] = True
    if len(rest) == 1 and "$ref" not in rest[0]:
        for k, v in rest[0].items():
            node.setdefault(k, v)
    elif rest:
        node[key] = rest


def _keywords30(node: dict) -> None:
    """Rewrite the 3.1-only keywords of one schema object (not its subschemas) into 3.0 forms."""
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            _nullable(node, key)
    if isinstance(node.get("type"), list):
        types = [t for t in node["type"] if t != "null"]
        if len(types) < len(node["type"]):
            node["nullable"] = True
        node["type"] = types[0] if len(types) == 1 else "string"
    if "const" in node:
        node["enum"] = [node.pop("const")]
    if isinstance(node.get("prefixItems"), list):   # a tuple (GeoJSON positions, bbox) -> an array of its items
        pre = node.pop("prefixItems")
        node.setdefault("items", pre[0] if pre and all(p == pre[0] for p in pre) else {})
    if isinstance(node.get("examples"), list):
        ex = node.pop("examples")
        if ex:
            node["example"] = ex[0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), (int, float)) and not isinstance(node.get(bound), bool):
            node[plain] = node[bound]
            node[bound] = True
    if "$ref" in node and len(node) > 1:   # 3.0 ignores siblings of $ref
        ref = node.pop("$ref")
        node.clear()
        node["allOf"] = [{"$ref": ref}]


def _schema30(node):
    """Rewrite a document part, in place, from OpenAPI 3.1 / JSON Schema 2020-12 to OpenAPI 3.0."""
    if isinstance(node, list):
        for x in node:
            _schema30(x)
        return node
    if not isinstance(node, dict):
        return node
    _keywords30(node)
    for k, v in list(node.items()):
        if k in ("properties", "patternProperties", "$defs") and isinstance(v, dict):
            for sub in v.values():   # property names are not keywords
                _schema30(sub)
        elif isinstance(v, (dict, list)) and k not in ("example", "enum", "default"):
            _schema30(v)
    return node


def _refs(node, out: set) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            out.add(ref.rsplit("/", 1)[-1])
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)


def _params(op: dict) -> None:
    """State the items parameters as OGC API – Features defines them."""
    for p in op.get("parameters", []):
        std = OGC_PARAMS.get(p.get("name"))
        if std is not None and p.get("in") == "query":
            p.update(copy.deepcopy(std))


def openapi30(doc: dict, prefix: str = "/ogc") -> dict:
    """Return the OpenAPI 3.0 document of the ``prefix`` paths of the app's OpenAPI 3.1 ``doc``.

    Parameters
    ----------
    doc : dict
        The application's OpenAPI document (``app.openapi()``); it is not modified.
    prefix : str
        Keep the paths equal to or under this prefix.

    Returns
    -------
    dict
        A self-contained OpenAPI 3.0.3 document: those paths, the component schemas they refer to,
        and the security schemes.
    """
    paths = copy.deepcopy({p: v for p, v in doc.get("paths", {}).items() if p == prefix or p.startswith(prefix + "/")})
    for item in paths.values():
        for op in item.values():
            if isinstance(op, dict):
                _params(op)
    schemas = doc.get("components", {}).get("schemas", {})
    keep: set = set()
    _refs(paths, keep)
    todo = set(keep)
    while todo:
        found: set = set()
        for name in todo:
            _refs(schemas.get(name, {}), found)
        todo = found - keep
        keep |= found
    components = {"schemas": {k: copy.deepcopy(schemas[k]) for k in sorted(keep) if k in schemas}}
    if "securitySchemes" in doc.get("components", {}):
        components["securitySchemes"] = copy.deepcopy(doc["components"]["securitySchemes"])
    info = dict(doc.get("info", {}), title=f"{doc.get('info', {}).get('title', 'API')} – OGC API – Features")
    return {"openapi": "3.0.3", "info": info, "paths": _schema30(paths),
            "components": _schema30(components)}
