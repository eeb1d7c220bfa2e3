"""Mailchimp's errors as problem documents (application/problem+json), one maker per case."""

from __future__ import annotations

import uuid
from typing import Any

from kommo_sync.sandbox.mailchimp.rules import (
    GENERIC_INVALID,
    NOT_FOUND_DETAIL,
    PROBLEM_CONTENT_TYPE,
    PROBLEM_LINK,
    PROBLEM_TYPE,
)
from kommo_sync.sandbox.server import Response


def problem(
    status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None
) -> Response:
    """An application/problem+json error body with the headers Mailchimp sends."""
    instance = str(uuid.uuid4())
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    return Response(
        status, body, PROBLEM_CONTENT_TYPE, {"X-Request-Id": instance, "Link": PROBLEM_LINK}
    )


class ApiError(Exception):
    """A vendor error raised inside a handler; `field` names the culprit for bulk error rows."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        field_name: str = "",
    ):
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.field_name = errors, field_name

    def response(self) -> Response:
        return problem(self.status, self.title, self.detail, self.errors)


def not_found() -> ApiError:
    return ApiError(404, "Resource Not Found", NOT_FOUND_DETAIL)


def invalid(
    detail: str = GENERIC_INVALID, errors: list[dict[str, str]] | None = None, field_name: str = ""
) -> ApiError:
    return ApiError(400, "Invalid Resource", detail, errors, field_name)


def field_error(field_name: str, message: str) -> ApiError:
    return invalid(errors=[{"field": field_name, "message": message}], field_name=field_name)


def fake_email_error(email: str) -> ApiError:
    return invalid(
        f"{email} looks fake or invalid, please enter a real email address.",
        field_name="email_address",
    )


def forgotten_error(email: str) -> ApiError:
    return ApiError(
        400,
        "Forgotten Email Not Subscribed",
        f"{email} was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list.",
        field_name="email_address",
    )


def compliance_error(email: str) -> ApiError:
    return ApiError(
        400,
        "Member In Compliance State",
        f"{email} is in a compliance state due to unsubscribe, bounce, or compliance "
        "review and cannot be subscribed.",
        field_name="status",
    )


def member_exists_error(email: str) -> ApiError:
    return ApiError(
        400,
        "Member Exists",
        f"{email} is already a list member. Use PUT to insert or update list members.",
        field_name="email_address",
    )


def contact_exists_text(email: str) -> str:
    return (
        f"{email} is already a list member, do you want to update? "
        "please provide update_existing:true in the request body"
    )
