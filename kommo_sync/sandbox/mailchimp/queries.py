"""Reading Mailchimp requests: paging and time arguments, JSON bodies, required fields, and the
`fields` / `exclude_fields` selections of a response."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kommo_sync.sandbox.mailchimp.errors import ApiError, field_error, invalid
from kommo_sync.sandbox.mailchimp.rules import DEFAULT_COUNT, MAX_COUNT
from kommo_sync.sandbox.server import Request


def page_args(request: Request) -> tuple[int, int]:
    """count (default 10, silently capped at 1000) and offset."""
    try:
        count = int(request.arg("count", str(DEFAULT_COUNT)) or DEFAULT_COUNT)
        offset = int(request.arg("offset", "0") or 0)
    except ValueError:
        raise field_error("count", "count and offset must be integers.") from None
    if count < 0 or offset < 0:
        raise field_error("count", "count and offset must not be negative.")
    return min(count, MAX_COUNT), offset


def time_arg(request: Request, name: str) -> float | None:
    """An ISO 8601 query parameter as epoch seconds; an unparsable one is a 400."""
    text = request.arg(name)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise field_error(name, f"{text} is not a valid ISO 8601 date-time.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def flag(request: Request, name: str) -> bool:
    return (request.arg(name) or "").lower() == "true"


def json_object(request: Request) -> dict[str, Any]:
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(
            400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
        ) from None
    if not isinstance(body, dict):
        raise invalid(
            errors=[
                {
                    "field": "",
                    "message": f"Schema describes object, {type(body).__name__} found instead",
                }
            ]
        )
    return body


def require(body: dict[str, Any], names: Iterable[str]) -> None:
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise invalid(
            errors=[
                {"field": name, "message": f"Required fields were not provided: {name}"}
                for name in missing
            ],
            field_name=missing[0],
        )


def check_status_value(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    value = body.get(name)
    if value is not None and value not in allowed:
        raise field_error(
            name, "Data presented is not one of the accepted values: " + ", ".join(allowed) + "."
        )


def select_fields(value: Any, paths: list[list[str]]) -> Any:
    """Keep only the dotted `fields` paths (lists are walked through)."""
    if isinstance(value, list):
        return [select_fields(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        rests = [path[1:] for path in paths if path[0] == key]
        if rests:
            kept[key] = item if any(not rest for rest in rests) else select_fields(item, rests)
    return kept


def exclude_fields(value: Any, paths: list[list[str]]) -> Any:
    """Drop the dotted `exclude_fields` paths."""
    if isinstance(value, list):
        return [exclude_fields(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        rests = [path[1:] for path in paths if path[0] == key]
        if not any(not rest for rest in rests):
            kept[key] = exclude_fields(item, rests) if rests else item
    return kept


def dotted_paths(request: Request, name: str) -> list[list[str]]:
    joined = ",".join(request.query.get(name, []))
    return [part.strip().split(".") for part in joined.split(",") if part.strip()]


def truncate_bytes(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
