"""Klaviyo's checks on profile attributes: email and E.164 formats, identifiers, sizes."""

from __future__ import annotations

import json
import re
from typing import Any

import phonenumbers

from kommo_sync.sandbox.klaviyo.errors import invalid_object

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
JOB_STAGE_SECONDS = 1.0
JOB_SECONDS_PER_PROFILE = 0.001
JOB_LIFETIME_SECONDS = 7 * 86400
YEAR_SECONDS = 365 * 86400
EPOCH_1990 = 631152000.0

UNSUBSCRIBED_METRIC = "Unsubscribed from Email Marketing"
SUBSCRIBED_METRIC = "Subscribed to Email Marketing"
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


def is_email(value: Any) -> bool:
    return isinstance(value, str) and bool(EMAIL_FORMAT.match(value))


def is_e164(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith("+"):
        return False
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(number)
        and phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == value
    )


def attribute_errors(
    attributes: Any, pointer: str, allowed: frozenset[str]
) -> list[dict[str, Any]]:
    """Validation errors of one profile's attributes, each pointing at the offending field."""
    if not isinstance(attributes, dict):
        return [invalid_object("'attributes' must be an object.", pointer)]
    errors = [
        invalid_object(
            f"'{name}' is not a valid field for the resource 'profile'.", f"{pointer}/{name}"
        )
        for name in attributes
        if name not in allowed
    ]
    email, phone = attributes.get("email"), attributes.get("phone_number")
    if email is not None and not is_email(email):
        errors.append(invalid_object("Invalid email address", f"{pointer}/email"))
    if phone is not None and not is_e164(phone):
        errors.append(invalid_object(INVALID_PHONE, f"{pointer}/phone_number"))
    for name in ("properties", "location"):
        if attributes.get(name) is not None and not isinstance(attributes[name], dict):
            errors.append(invalid_object(f"'{name}' must be an object.", f"{pointer}/{name}"))
    return errors


def has_identifier(attributes: dict[str, Any]) -> bool:
    return any(attributes.get(name) for name in IDENTIFIERS)


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))
