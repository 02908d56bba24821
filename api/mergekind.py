"""The ``merge`` job kind over HTTP: the repeated ``layers`` upload, its ``layer_names``, ``layer_id_fields``.

A merge job (``kind=merge``) uploads the boundaries and households as a plan does, plus one
file per department's legacy grid layer in the repeated multipart field ``layers``. The form
field ``layer_names`` names them in the same order (a JSON list or comma-separated text; by
default each file's stem), and ``params`` may carry ``layer_id_fields`` (``{name: id field}``;
the id field otherwise defaults to the layer's first unique column). One legacy layer is
enough: a merge of one layer re-balances that department's grids while following its lines,
and the crosswalk still maps its old grids to the new ones.

Each layer is stored as the job input ``layer:NAME`` (what ``optimize.merge.run_merge`` reads)
and checked at submit time like every other upload (``api.submitcheck``), read as a polygon
layer with its id field.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from gridplan.api.problems import ProblemError, error_item

NAME_RX = re.compile(r"^[\w.-]{1,40}$")    # letters (any script), digits, _ . - : a safe key and file-name part
ROLE_PREFIX = "layer:"


def _refuse(source: str, title: str, problems: list[str], row=None) -> ProblemError:
    return ProblemError(422, title, [error_item(source, row, p) for p in problems], kind="invalid-upload")


def parse_layer_names(raw: str | None, client_names: list[str]) -> list[str]:
    """Return the layer names, one per uploaded ``layers`` file (a 422 naming ``layer_names`` otherwise).

    Parameters
    ----------
    raw : str or None
        The ``layer_names`` form field: a JSON list of strings, or comma-separated names; empty or
        absent: each file's stem (``police.gpkg`` -> ``police``).
    client_names : list of str
        The file names the client gave, in upload order.

    Returns
    -------
    list of str
        The names, in upload order: each matching ``NAME_RX``, all different.
    """
    if raw is None or not raw.strip():
        names, given = [_stem(n) for n in client_names], False
    elif raw.strip().startswith("["):
        try:
            names = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise _refuse("layer_names", "layer_names is not a valid JSON list", [str(e)[:200]])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _refuse("layer_names", "layer_names must be a list of strings", ["expected a JSON list of strings"])
        names, given = [n.strip() for n in names], True
    else:
        names, given = [n.strip() for n in raw.split(",")], True
    if len(names) != len(client_names):
        raise _refuse("layer_names", "layer_names does not match the layers uploaded",
                      [f"{len(names)} name(s) for {len(client_names)} layers file(s): give one name per file, "
                       "in the order of the files"])
    bad = [f"layers[{i}] ({c}): {'the name' if given else 'its file name stem'} {n[:60]!r} is not a layer name "
           "(1 to 40 letters, digits, '_', '.' or '-')" + ("" if given else "; name it in layer_names")
           for i, (n, c) in enumerate(zip(names, client_names)) if not NAME_RX.match(n)]
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen and NAME_RX.match(n):
            bad.append(f"layers[{i}] ({client_names[i]}): the layer name {n!r} is given twice "
                       f"(also layers[{seen[n]}]); every layer needs its own name")
        seen.setdefault(n, i)
    if bad:
        raise _refuse("layer_names", "the layer names are not usable: see errors", bad)
    return names


def _stem(client_name: str) -> str:
    name = client_name
    for double in (".shp.zip", ".gpkg.zip", ".geojson.zip"):
        if name.lower().endswith(double):
            return name[: -len(double)]
    return Path(name).stem


def merge_layer_roles(kind_name: str, uploads: list, raw_names: str | None, max_layers: int,
                      client_name) -> list[tuple[str, object, str]]:
    """Return ``(role, upload, client name)`` for each ``layers`` file of a job; 422 when they do not fit.

    Parameters
    ----------
    kind_name : str
        The job's kind: only ``merge`` takes ``layers`` and ``layer_names``.
    uploads : list
        The ``layers`` uploads (``UploadFile``), in order.
    raw_names : str or None
        The ``layer_names`` form field.
    max_layers : int
        The ``max_merge_layers`` setting.
    client_name : callable
        ``(filename, fallback) -> str``: the client's file name without directories.

    Returns
    -------
    list of tuple
        ``("layer:NAME", upload, client file name)`` per layer, in upload order.
    """
    if kind_name != "merge":
        if raw_names is not None and raw_names.strip():
            raise _refuse("layer_names", f"a {kind_name} job takes no layer_names",
                          ["layer_names names the layers of a merge job (kind=merge)"])
        return []
    if len(uploads) > max_layers:
        raise _refuse("layers", f"too many legacy layers: {len(uploads)}",
                      [f"a merge job takes at most {max_layers} layers files (setting max_merge_layers)"])
    clients = [client_name(u.filename, f"layers[{i}]") for i, u in enumerate(uploads)]
    names = parse_layer_names(raw_names, clients) if uploads else []
    return [(ROLE_PREFIX + n, u, c) for n, u, c in zip(names, uploads, clients)]


def check_id_fields(params: dict) -> dict:
    """Check ``layer_id_fields`` (``{name: field}``, optional) and return the params without it (422 naming it)."""
    rest = dict(params)
    fields = rest.pop("layer_id_fields", None)
    if fields is None:
        return rest
    ok = isinstance(fields, dict) and all(isinstance(k, str) and isinstance(v, str) and 0 < len(v) <= 200
                                          for k, v in fields.items())
    if not ok:
        raise ProblemError(422, "params has invalid options: layer_id_fields",
                           [error_item("params", "layer_id_fields", "layer_id_fields: expected an object of "
                                       "layer name -> id field name (non-empty text)")], kind="invalid-params")
    return rest


def check_id_field_names(params: dict, roles: list[str]) -> None:
    """Refuse (422 naming ``layer_id_fields``) an id field given for a layer the job does not upload."""
    names = [r[len(ROLE_PREFIX):] for r in roles]
    unknown = sorted(set(params.get("layer_id_fields") or {}) - set(names))
    if unknown:
        raise ProblemError(422, "params has invalid options: layer_id_fields",
                           [error_item("params", "layer_id_fields", f"layer_id_fields: no layer named {n[:60]!r} "
                                       f"(the layers are {', '.join(names)})") for n in unknown],
                           kind="invalid-params")


def check_layers(paths: dict, params: dict, names: dict, limits) -> list:
    """Read each stored ``layer:NAME`` upload as a legacy polygon layer; return its problems (the child's side).

    Parameters
    ----------
    paths : dict
        role -> saved path; the ``layer:NAME`` roles are checked.
    params : dict
        The job's params (``coords``, ``layer_id_fields``).
    names : dict
        role -> the client's file name.
    limits : geo.io.ReadLimits
        The service's read limits.

    Returns
    -------
    list of geo.problems.Problem
        Every problem found (fatal and not), named by the client's file names.
    """
    from gridplan.geo.read import read_input
    from gridplan.optimize.legacy import load_layer

    fields = params.get("layer_id_fields") or {}
    problems = []
    for role, path in paths.items():
        if not role.startswith(ROLE_PREFIX):
            continue
        name, client = role[len(ROLE_PREFIX):], names.get(role) or role
        raw = read_input(str(path), f"{name} layer", limits=limits, name=client)   # the read limits apply here
        if not raw.ok:
            problems += raw.problems
            continue
        problems += load_layer(name, raw.frame, "EPSG:4326", params.get("coords", "wgs84"), fields.get(name),
                               file_name=client)[1]
    return [_as_http_problem(p) for p in problems]


def _as_http_problem(p):
    """Reword the boundaries' and the CLI's wording for a legacy layer sent over HTTP."""
    from gridplan.geo.problems import Problem

    msg = p.message.replace("boundaries must be polygons", "a legacy grid layer must be polygons")
    msg = re.sub(r"Name it as --layer ([\w.-]+)=FILE:ID_FIELD", r"Name it in params as layer_id_fields {\"\1\": FIELD}",
                 msg)
    return Problem(p.source, p.row, p.kind, msg, p.fatal, p.count)
