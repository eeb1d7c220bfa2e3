"""Reading Kommo requests: `filter[...]` and `order[...]` queries, paging, batch-write bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from kommo_sync.sandbox.kommo.responses import (
    BadRequest,
    problem,
    validation_error,
    validation_failed,
)
from kommo_sync.sandbox.kommo.rules import WRITE_BATCH_LIMIT
from kommo_sync.sandbox.server import Request


def to_int(value: Any, path: str) -> int:
    """An integer query or body value, or a 400 naming the offending parameter."""
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(
            validation_failed(
                [
                    {
                        "request_id": "0",
                        "errors": [
                            validation_error(
                                "InvalidType", path, "This value should be of type int."
                            )
                        ],
                    }
                ]
            )
        ) from exc


def is_indexed_key(key: str, prefix: str) -> bool:
    """True for `prefix[]` and `prefix[<n>]` (the array forms of one filter)."""
    inner = key[len(prefix) :]
    return (
        key.startswith(prefix)
        and inner.startswith("[")
        and inner.endswith("]")
        and (inner == "[]" or inner[1:-1].isdigit())
    )


def filter_values(query: dict[str, list[str]], name: str) -> list[str]:
    """Values of `filter[name]`, `filter[name][]` and `filter[name][n]`, comma lists split."""
    prefix = f"filter[{name}]"
    found: list[str] = []
    for key, values in query.items():
        if key == prefix or is_indexed_key(key, prefix):
            for value in values:
                found.extend(part.strip() for part in value.split(",") if part.strip())
    return found


def filter_ints(query: dict[str, list[str]], name: str) -> list[int]:
    return [to_int(value, f"filter[{name}]") for value in filter_values(query, name)]


def range_filter(query: dict[str, list[str]], name: str) -> tuple[int | None, int | None]:
    """Inclusive bounds from `filter[name][from]`/`[to]` or the comma form `filter[name]=a,b`."""
    low = query.get(f"filter[{name}][from]", [None])[0]
    high = query.get(f"filter[{name}][to]", [None])[0]
    single = query.get(f"filter[{name}]", [None])[0]
    if single:
        low, _, rest = single.partition(",")
        high = rest or high
    return optional_int(low, f"filter[{name}]"), optional_int(high, f"filter[{name}]")


def optional_int(value: str | None, path: str) -> int | None:
    """None for an absent or empty bound, else the integer (400 naming `path` if it is not one)."""
    return None if value in (None, "") else to_int(value, path)


def within(value: int | None, low: int | None, high: int | None) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def order_spec(query: dict[str, list[str]], allowed: Sequence[str]) -> tuple[str, bool]:
    """(field, descending) from the first `order[field]=asc|desc`; id ascending by default."""
    for field in allowed:
        direction = query.get(f"order[{field}]")
        if direction:
            return field, direction[0].lower() == "desc"
    return "id", False


def positive_int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else None


def page_and_limit(
    query: dict[str, list[str]], default: int, maximum: int, oversize: int
) -> tuple[int, int]:
    """1-based page and page size; a limit above `maximum` silently becomes `oversize`."""
    limit = positive_int(query.get("limit", [None])[0]) or default
    page = positive_int(query.get("page", [None])[0]) or 1
    return page, oversize if limit > maximum else limit


def page_links(base: str, request: Request, page: int, limit: int) -> dict[str, Any]:
    """HAL links; `next` is always there, as the real API sends it even on the last page."""

    def href(number: int) -> dict[str, str]:
        params = [
            (k, v)
            for k, values in request.query.items()
            if k not in ("page", "limit")
            for v in values
        ] + [("limit", limit), ("page", number)]
        return {"href": f"{base}{request.path}?{urlencode(params)}"}

    links = {"self": href(page), "next": href(page + 1)}
    if page > 1:
        links.update(first=href(1), prev=href(page - 1))
    return links


def write_batch(request: Request) -> list[Any]:
    """The JSON array of a batch write: 400 when malformed, 422 over 250 items."""
    try:
        items = request.json()
    except ValueError as exc:
        raise BadRequest(problem(400, "Syntax error", "Bad Request")) from exc
    if not isinstance(items, list) or not items:
        raise BadRequest(
            validation_failed(
                [
                    {
                        "request_id": "0",
                        "errors": [
                            validation_error(
                                "InvalidType", "", "This value should be a non-empty array."
                            )
                        ],
                    }
                ]
            )
        )
    if len(items) > WRITE_BATCH_LIMIT:
        raise BadRequest(problem(422, "Limit 250 per page", "Unprocessable Entity"))
    return items
