"""Klaviyo's limits, identifiers and value rules: media types, tiers, sizes, metrics, times, ids."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

JSONAPI = "application/vnd.api+json"


ACCEPTED_MEDIA_TYPES = {JSONAPI, "application/json"}


REVISION_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")


EMAIL_FORMAT = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


INVALID_PHONE = "Invalid phone number format (Example of a valid format: +12345678901)"


# Klaviyo's tiers: (burst per second, steady per minute).
TIERS = {"XS": (1, 15), "S": (3, 60), "M": (10, 150), "L": (75, 750), "XL": (350, 3500)}


# Query options that move an endpoint to a slower tier: route -> (parameter, values, tier).
SLOW_OPTIONS = {
    "GET /api/profiles": ("additional-fields[profile]", {"predictive_analytics"}, "M"),
    "GET /api/profiles/{profile_id}": ("include", {"lists", "segments"}, "XS"),
    "GET /api/lists/{list_id}": ("additional-fields[list]", {"profile_count"}, "XS"),
}


IDENTIFIERS = ("email", "phone_number", "external_id")


PLAIN_FIELDS = ("first_name", "last_name", "organization", "locale", "title", "image")


PROFILE_ATTRIBUTES = frozenset(IDENTIFIERS + PLAIN_FIELDS + ("location", "properties", "_kx"))


EVENT_PROFILE_ATTRIBUTES = PROFILE_ATTRIBUTES | {"anonymous_id"}


SUBSCRIBE_ATTRIBUTES = frozenset(
    {"email", "phone_number", "subscriptions", "age_gated_date_of_birth"}
)


REVOKES_CONSENT = {"UNSUBSCRIBE", "SPAM_COMPLAINT"}


LIFTED_BY_SUBSCRIBE = {"UNSUBSCRIBE", "SPAM_COMPLAINT", "SPAM_REPORT", "USER_SUPPRESSED"}


MAX_BULK_IMPORT_PROFILES = 10_000


MAX_BULK_IMPORT_BYTES = 5_000_000


MAX_PROFILE_BYTES = 100_000


MAX_LIST_CHANGE = 1000


MAX_BULK_EVENTS = 1000


MAX_SUBSCRIBE = 1000


MAX_UNSUBSCRIBE = 100


MAX_EVENT_PROPERTIES = 400


EVENTS_PER_PAGE_CAP = (
    200  # the spec allows page[size] 1000 but says "a maximum of 200 events per page"
)


JOB_LIFETIME_SECONDS = 7 * 86400


YEAR_SECONDS = 365 * 86400


EPOCH_1990 = 631152000.0


UNSUBSCRIBED_METRIC = "Unsubscribed from Email Marketing"


SUBSCRIBED_METRIC = "Subscribed to Email Marketing"


SMS_UNSUBSCRIBED_METRIC = "Unsubscribed from SMS Marketing"


SMS_SUBSCRIBED_METRIC = "Subscribed to SMS Marketing"


AGE_GATE_YEARS = 21


METRIC_FOR_SUPPRESSION = {
    "UNSUBSCRIBE": UNSUBSCRIBED_METRIC,
    "SPAM_COMPLAINT": "Marked Email as Spam",
    "HARD_BOUNCE": "Bounced Email",
}


KLAVIYO_METRICS = {
    UNSUBSCRIBED_METRIC,
    SUBSCRIBED_METRIC,
    "Opened Email",
    "Clicked Email",
    "Received Email",
    "Marked Email as Spam",
    "Bounced Email",
    "Unsubscribed from List",
    SMS_UNSUBSCRIBED_METRIC,
    SMS_SUBSCRIBED_METRIC,
}


KLAVIYO_INTEGRATION = {
    "object": "integration",
    "id": "0rG4eQ",
    "key": "klaviyo",
    "name": "Klaviyo",
    "category": "Internal",
}


API_INTEGRATION = {
    "object": "integration",
    "id": "7FtS4J",
    "key": "api",
    "name": "API",
    "category": "API",
}


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


SHORT_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def parse_datetime(text: str) -> float:
    """Epoch seconds of an ISO 8601 datetime; naive values are UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def as_timestamp(value: float | str | None, default: float) -> float:
    if value is None:
        return default
    return parse_datetime(value) if isinstance(value, str) else float(value)


def ulid(milliseconds: int, sequence: int) -> str:
    """A ULID-shaped id ("01K…"): time first, so ids sort in creation order."""
    value = (milliseconds << 80) | (sequence & ((1 << 80) - 1))
    return "".join(CROCKFORD[(value >> (5 * shift)) & 31] for shift in reversed(range(26)))


def sort_text(timestamp: float | None) -> str:
    """A timestamp as text that sorts like the number; missing ones sort last."""
    return "~" if timestamp is None else f"{timestamp:018.6f}"


def merge_into(target: dict[str, Any], value: Any) -> bool:
    """Per-key update of a dict attribute; None clears it (pessimistic reading). True if changed."""
    if value is None:
        changed = bool(target)
        target.clear()
        return changed
    changed = any(target.get(key, object()) != item for key, item in value.items())
    target.update(value)
    return changed


def patch_properties(properties: dict[str, Any], patch: Any) -> bool:
    """meta.patch_properties: append/unappend values to array properties, unset keys."""
    if not isinstance(patch, dict):
        return False
    for key, value in (patch.get("append") or {}).items():
        current = properties.get(key)
        existing = current if isinstance(current, list) else ([] if current is None else [current])
        properties[key] = existing + (value if isinstance(value, list) else [value])
    for key, value in (patch.get("unappend") or {}).items():
        removed = value if isinstance(value, list) else [value]
        if isinstance(properties.get(key), list):
            properties[key] = [item for item in properties[key] if item not in removed]
    unset = patch.get("unset") or []
    for key in [unset] if isinstance(unset, str) else unset:
        properties.pop(key, None)
    return bool(patch.get("append") or patch.get("unappend") or unset)


def location_block(location: dict[str, Any]) -> dict[str, Any]:
    names = (
        "address1",
        "address2",
        "city",
        "country",
        "latitude",
        "longitude",
        "region",
        "zip",
        "timezone",
        "ip",
    )
    return {name: location.get(name) for name in names}
