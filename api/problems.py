"""RFC 9457 problem+json responses: ``type``, ``title``, ``status``, ``detail`` (+ ``errors``).

Every body passes :func:`scrub` on its way out, so no detail or error item carries a server path
(the data directory, ``/vsizip//…`` and other GDAL virtual paths, any absolute path), an exception
class name or a GDAL error prefix: a path becomes its last part (the file name), the rest goes.
"""
from __future__ import annotations

import re
import threading
from http import HTTPStatus

import orjson
from starlette.responses import Response

PROBLEM_TYPE = "https://gridplan.dev/problems/"
MEDIA = "application/problem+json"


_VSI = re.compile(r"/vsi[a-z0-9_]+/+(?:[^\s'\"`,;()]*/)?([^\s'\"`,;()/]*)")
_ABS = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"`,;:()]+){2,}/?")
_CLASS = re.compile(r"\b(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Warning)\b\s*:?\s*")
_GDAL = re.compile(r"\b(?:CPLE_\w+|OGRERR_\w+|ERROR \d+)\b\s*:?\s*|\bin (?:OGR|GDAL|GEOS)\w*\s*:?\s*")
_HINT = re.compile(r";?\s*It might help to specify the correct driver explicitly.*$", re.DOTALL)
_prefixes: list[str] = []
_lock = threading.Lock()


def hide_prefix(path: str) -> None:
    """Register a server directory that :func:`scrub` must strip, even written as a relative path.

    The app registers the data directory as given and as resolved.
    """
    p = str(path).rstrip("/")
    if p and p not in _prefixes:
        with _lock:
            _prefixes.append(p)
            _prefixes.sort(key=len, reverse=True)


def _last_part(m: re.Match) -> str:
    return m.group(0).rstrip("/").rsplit("/", 1)[-1]


def scrub(text) -> str:
    """``text`` without server paths, exception class names or GDAL error prefixes.

    Parameters
    ----------
    text : str or None
        A message bound for a client.

    Returns
    -------
    str or None
        The message with every path replaced by its last part (a file name) and every
        ``SomethingError:``, ``CPLE_…``, ``ERROR 1:`` removed; ``None`` stays ``None``.
    """
    if text is None:
        return None
    s = str(text)
    for p in _prefixes:
        if p in s:
            s = re.sub(r"(?<![\w.-])" + re.escape(p) + r"/(?:[^\s'\"`,;()]*/)?", "", s)
    s = _HINT.sub("", s)
    s = _VSI.sub(lambda m: m.group(1), s)
    s = _ABS.sub(_last_part, s)
    s = _GDAL.sub("", s)
    s = _CLASS.sub("", s)
    return re.sub(r"\s{2,}", " ", s).strip() or "invalid input"


def _scrub_item(it: dict) -> dict:
    return {k: (scrub(v) if isinstance(v, str) else v) for k, v in it.items()}


def problem_body(status: int, detail: str, errors: list[dict] | None = None, title: str | None = None,
                 kind: str | None = None) -> dict:
    """Return an RFC 9457 problem+json body, its detail and error items scrubbed of server paths."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = {"type": PROBLEM_TYPE + (kind or phrase.lower().replace(" ", "-")),
            "title": title or phrase, "status": status, "detail": scrub(detail)}
    if errors is not None:
        body["errors"] = [_scrub_item(e) if isinstance(e, dict) else e for e in errors]
    return body


def problem(status: int, detail: str, errors: list[dict] | None = None, title: str | None = None,
            kind: str | None = None, headers: dict | None = None) -> Response:
    """Return a problem+json response (see :func:`problem_body`)."""
    return Response(orjson.dumps(problem_body(status, detail, errors, title, kind)), status_code=status,
                    media_type=MEDIA, headers=headers)


def error_item(source: str, row, problem_text: str) -> dict:
    """Return one ``errors`` item: where (``source`` file or field, ``row``) and what the problem is."""
    return {"source": source, "row": None if row is None else str(row), "problem": problem_text}


def from_problems(problems) -> list[dict]:
    """geo.problems.Problem records -> the contract's ``errors`` items."""
    return [error_item(p.source, p.row, p.message) for p in problems]


class ProblemError(Exception):
    """Raised inside handlers; rendered as problem+json by the app's exception handler."""

    def __init__(self, status: int, detail: str, errors: list[dict] | None = None, kind: str | None = None,
                 headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.kind, self.headers = status, detail, errors, kind, headers

    def response(self) -> Response:
        """Return this error as a problem+json response."""
        return problem(self.status, self.detail, self.errors, kind=self.kind, headers=self.headers)
