"""Kommo's answers: HAL bodies and links, problem+json errors, validation failures, 429s."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from kommo_sync.sandbox.kommo.rules import HAL, PROBLEM
from kommo_sync.sandbox.server import Response


class BadRequest(Exception):
    """Raised inside a handler to answer with a ready error response."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> Response:
    """An application/problem+json error in Kommo's shape."""
    body = {
        "title": title or HTTPStatus(status).phrase,
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(status, body, PROBLEM)


def validation_error(code: str, path: str, detail: str) -> dict[str, str]:
    return {"code": code, "path": path, "detail": detail}


def validation_failed(items: list[dict[str, Any]]) -> Response:
    """400 with a `validation-errors` list, one entry per rejected request item."""
    return problem(400, "Request validation failed", "Bad Request", **{"validation-errors": items})


def hal(body: dict[str, Any]) -> Response:
    return Response(200, body, HAL)


def link(base: str, path: str) -> dict[str, dict[str, str]]:
    return {"self": {"href": f"{base}{path}"}}


def reference(base: str, collection: str, entity_id: int) -> dict[str, Any]:
    """An embedded `{id, _links}` pointer to another entity."""
    return {"id": entity_id, "_links": link(base, f"/api/v4/{collection}/{entity_id}")}


def too_many_requests() -> Response:
    """429 with `retry_after` in the body and no Retry-After header."""
    return problem(
        429,
        "You have sent too many requests in a given amount of time. Please try again later.",
        "Too Many Requests",
        retry_after=1,
    )


def plain_text(status: int, text: str) -> Response:
    return Response(status, None, "text/html", raw=text.encode("utf-8"))
