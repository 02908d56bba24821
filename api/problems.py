"""RFC 9457 problem+json responses: ``type``, ``title``, ``status``, ``detail`` (+ ``errors``)."""
from __future__ import annotations

from http import HTTPStatus

import orjson
from starlette.responses import Response

PROBLEM_TYPE = "https://gridplan.dev/problems/"
MEDIA = "application/problem+json"


def problem_body(status: int, detail: str, errors: list[dict] | None = None, title: str | None = None,
                 kind: str | None = None) -> dict:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body = {"type": PROBLEM_TYPE + (kind or phrase.lower().replace(" ", "-")),
            "title": title or phrase, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body


def problem(status: int, detail: str, errors: list[dict] | None = None, title: str | None = None,
            kind: str | None = None, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(problem_body(status, detail, errors, title, kind)), status_code=status,
                    media_type=MEDIA, headers=headers)


def error_item(source: str, row, problem_text: str) -> dict:
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
        return problem(self.status, self.detail, self.errors, kind=self.kind, headers=self.headers)
