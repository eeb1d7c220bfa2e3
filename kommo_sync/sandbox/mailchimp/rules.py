"""Mailchimp's limits, statuses, default texts, and the member id (subscriber hash)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

API_ROOT = "/3.0"


ARCHIVE_PREFIX = "/batch-results/"


PROBLEM_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"


PROBLEM_CONTENT_TYPE = "application/problem+json; charset=utf-8"


JSON_CONTENT_TYPE = "application/json; charset=utf-8"


PROBLEM_LINK = (
    '<https://api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"'
)


STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")


BATCH_ITEM_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")


MERGE_TYPES = (
    "text",
    "number",
    "address",
    "phone",
    "date",
    "url",
    "imageurl",
    "radio",
    "dropdown",
    "birthday",
    "zip",
)


BATCH_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


DEFAULT_COUNT, MAX_COUNT = 10, 1000


BULK_LIMIT = 500


MERGE_FIELD_LIMIT = 30


MEMBER_TAGS_SHOWN = 50


TEXT_VALUE_BYTES = 255


RESULTS_PER_ARCHIVE_FILE = 50


ARCHIVE_URL_LIFETIME = 600.0


MERGE_TAG_PATTERN = re.compile(r"^[A-Z0-9_]{1,10}$")


FAKE_DOMAINS = frozenset(
    {"example.com", "example.net", "example.org", "test.com", "test.org", "mailinator.com"}
)


FAKE_TLDS = frozenset({"test", "example", "invalid", "localhost", "local"})


GENERIC_INVALID = (
    "The resource submitted could not be validated. For field-specific details, "
    "see the 'errors' array."
)


MERGE_INVALID = "Your merge fields were invalid."


NOT_FOUND_DETAIL = "The requested resource could not be found."


DEFAULT_UNSUBSCRIBE_REASON = "N/A (Unsubscribed by an admin)"


DEFAULT_TITLES = {
    400: "Bad Request",
    401: "API Key Invalid",
    403: "Forbidden",
    404: "Resource Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


DEFAULT_MERGE_FIELDS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("FNAME", "First Name", "text", {"size": 25}),
    ("LNAME", "Last Name", "text", {"size": 25}),
    ("ADDRESS", "Address", "address", {"default_country": 164}),
    ("PHONE", "Phone Number", "phone", {"phone_format": "none"}),
)


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 of the trimmed, lower-cased address."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def iso(timestamp: float | None) -> str:
    """Mailchimp's timestamp format, whole seconds: 2026-01-01T00:00:00+00:00 ('' for none)."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(int(timestamp), tz=UTC).isoformat()


def looks_fake(email: str) -> bool:
    """The sandbox's stand-in for Mailchimp's 'looks fake or invalid' heuristics."""
    local, _, domain = email.strip().lower().partition("@")
    labels = domain.split(".")
    if email.count("@") != 1 or not local or " " in email.strip() or len(labels) < 2:
        return True
    return not all(labels) or domain in FAKE_DOMAINS or labels[-1] in FAKE_TLDS
