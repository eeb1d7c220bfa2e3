"""Klaviyo's JSON:API error documents, and the exception that carries one out of a handler."""

from __future__ import annotations

import uuid
from typing import Any

from kommo_sync.sandbox.klaviyo.rules import JSONAPI
from kommo_sync.sandbox.server import Response


class ApiError(Exception):
    """JSON:API errors that end a request; raised deep in validation, answered by the route."""

    def __init__(
        self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None
    ):
        super().__init__(errors[0]["detail"] if errors else str(status))
        self.status, self.errors, self.headers = status, errors, headers or {}

    def response(self) -> Response:
        return Response(self.status, {"errors": self.errors}, JSONAPI, self.headers)


def error_object(
    status: int,
    code: str,
    title: str,
    detail: str,
    pointer: str | None = None,
    parameter: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    source = {"parameter": parameter} if parameter else {"pointer": pointer or "/data/"}
    return {
        "id": str(uuid.uuid4()),
        "status": status,
        "code": code,
        "title": title,
        "detail": detail,
        "source": source,
        "links": {},
        "meta": meta or {},
    }


def invalid_object(
    detail: str, pointer: str | None = None, parameter: str | None = None
) -> dict[str, Any]:
    return error_object(400, "invalid", "Invalid input.", detail, pointer, parameter)


def invalid(detail: str, pointer: str | None = None, parameter: str | None = None) -> ApiError:
    return ApiError(400, [invalid_object(detail, pointer, parameter)])


def not_found_error(detail: str) -> ApiError:
    return ApiError(404, [error_object(404, "not_found", "Not found.", detail)])


def duplicate_profile(profile_id: str) -> ApiError:
    return ApiError(
        409,
        [
            error_object(
                409,
                "duplicate_profile",
                "Conflict.",
                "A profile already exists with one of these identifiers.",
                "/data/attributes",
                meta={"duplicate_profile_id": profile_id},
            )
        ],
    )


def throttled(seconds: int) -> ApiError:
    unit = "second" if seconds == 1 else "seconds"
    body = error_object(
        429,
        "throttled",
        "Request was throttled.",
        f"Request was throttled. Expected available in {seconds} {unit}.",
        "/data",
    )
    body["links"] = {
        "type": "https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling#rate-limits"
    }
    return ApiError(429, [body], {"Retry-After": str(seconds)})


def default_failure(status: int) -> ApiError:
    """The body `fail_next` sends when the test gives none."""
    if status == 429:
        return throttled(1)
    if status >= 500:
        return ApiError(
            status,
            [error_object(status, "error", "A server error occurred.", "A server error occurred.")],
        )
    return ApiError(status, [error_object(status, "error", "Request failed.", "Request failed.")])


class InjectedResponse(Exception):
    """A canned response from `fail_next`, carried out of `before`."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response
