"""A local Klaviyo (REST API, revision 2026-07-15) for tests, demos and benchmarks.

It behaves like the real API wherever the syncer can notice: JSON:API bodies and errors, the
`Klaviyo-API-Key` and `revision` headers, burst and steady rate limits per endpoint with
`Retry-After`, cursor paging with absolute `links.next`, profile upsert by any identifier with
409 on identifiers of different profiles, all-or-nothing validation of bulk requests,
bulk-import jobs that advance with the injected clock, events de-duplicated on `unique_id`,
and consent kept apart from list membership: only Bulk Subscribe grants consent, and it lifts
an earlier unsubscribe. Where Klaviyo's behaviour is unconfirmed the pessimistic variant is
implemented.
"""

from __future__ import annotations

import base64
import json
import math
import operator
import random
import re
import uuid
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import phonenumbers

from kommo_sync.clock import Clock
from kommo_sync.sandbox.server import App, Request, Response, SlidingWindow

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


# ---------------------------------------------------------------- errors


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


# ---------------------------------------------------------------- time and ids


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


# ---------------------------------------------------------------- validation


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


# ---------------------------------------------------------------- filters


@dataclass(frozen=True)
class Condition:
    op: str
    field: str
    value: Any = None
    quoted: bool = False


class FilterParser:
    """Parses Klaviyo's filter syntax: `equals(email,"a@b.c"),greater-than(updated,2026-01-01T00:00:00Z)`."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def parse(self) -> list[Condition]:
        conditions = [self._condition()]
        while self._take(","):
            conditions.append(self._condition())
        self._skip_space()
        if self.pos != len(self.text):
            raise ValueError("unexpected text after the last condition")
        return conditions

    def _condition(self) -> Condition:
        op = self._word()
        self._expect("(")
        name = self._word()
        value, quoted = self._value() if self._take(",") else (None, False)
        self._expect(")")
        return Condition(op, name, value, quoted)

    def _value(self) -> tuple[Any, bool]:
        self._skip_space()
        char = self.text[self.pos : self.pos + 1]
        if char and char in "'\"":
            return self._string(char), True
        if char == "[":
            return self._list(), True
        return self._bare(), False

    def _list(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while not self._take("]"):
            if items:
                self._expect(",")
            items.append(self._value()[0])
        return items

    def _string(self, quote: str) -> str:
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise ValueError("unterminated string")
        value, self.pos = self.text[self.pos + 1 : end], end + 1
        return value

    def _bare(self) -> str:
        match = re.compile(r"[^,)\]]+").match(self.text, self.pos)
        if not match or not match.group().strip():
            raise ValueError("missing value")
        self.pos = match.end()
        return match.group().strip()

    def _word(self) -> str:
        self._skip_space()
        match = re.compile(r"[A-Za-z0-9_.$-]+").match(self.text, self.pos)
        if not match:
            raise ValueError("expected a name")
        self.pos = match.end()
        return match.group()

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _take(self, char: str) -> bool:
        self._skip_space()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def _expect(self, char: str) -> None:
        if not self._take(char):
            raise ValueError(f"expected '{char}'")


COMPARISONS = frozenset({"greater-than", "greater-or-equal", "less-than", "less-or-equal"})
EQUALITY = frozenset({"equals", "any"})
COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": operator.eq,
    "any": lambda value, options: value in options,
    "greater-than": operator.gt,
    "greater-or-equal": operator.ge,
    "less-than": operator.lt,
    "less-or-equal": operator.le,
    "has": lambda value, _: True,
}
FilterSpec = dict[str, tuple[str, frozenset[str]]]


def invalid_filter(reason: str) -> ApiError:
    return invalid(f"Invalid filter provided. {reason}", parameter="filter")


def parse_filter(text: str | None, spec: FilterSpec) -> list[Condition]:
    """Parsed and typed conditions; 400 for syntax, fields or operators the endpoint does not allow."""
    if not text:
        return []
    try:
        conditions = FilterParser(text).parse()
    except ValueError as exc:
        raise invalid_filter(f"Could not parse '{text}': {exc}.") from exc
    return [typed_condition(condition, spec) for condition in conditions]


def typed_condition(condition: Condition, spec: FilterSpec) -> Condition:
    kind, operators = spec.get(condition.field, ("", frozenset()))
    if not kind:
        raise invalid_filter(f"'{condition.field}' is not a valid field for this endpoint.")
    if condition.op not in operators:
        raise invalid_filter(f"'{condition.op}' is not a valid operator for '{condition.field}'.")
    return replace(condition, value=typed_value(condition, kind))


def typed_value(condition: Condition, kind: str) -> Any:
    value = condition.value
    if kind == "relation":
        return None
    if condition.op == "any":
        if not isinstance(value, list):
            raise invalid_filter(f"'any' needs a list for '{condition.field}'.")
        return [normalized(condition.field, str(item)) for item in value]
    if kind == "string":
        if not condition.quoted:
            raise invalid_filter(f"String values must be quoted: '{value}'.")
        return normalized(condition.field, value)
    if condition.quoted:
        raise invalid_filter(f"Datetimes must be unquoted: '{value}'.")
    return filter_datetime(value)


def filter_datetime(value: str) -> float:
    if re.fullmatch(r"\d+", value):
        return float(value)
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise invalid_filter(f"'{value}' is not a valid datetime.") from exc


def normalized(field_name: str, value: str) -> str:
    return value.strip().lower() if field_name.endswith("email") else value


def satisfies(values: Iterable[Any], condition: Condition) -> bool:
    compare = COMPARATORS[condition.op]
    return any(value is not None and compare(value, condition.value) for value in values)


def string_field(*operators: str) -> tuple[str, frozenset[str]]:
    return ("string", frozenset(operators))


def datetime_field(*operators: str) -> tuple[str, frozenset[str]]:
    return ("datetime", frozenset(operators))


SUPPRESSION = "subscriptions.email.marketing.suppression"
LIST_SUPPRESSIONS = "subscriptions.email.marketing.list_suppressions"
PROFILE_FILTERS: FilterSpec = {
    "id": string_field(*EQUALITY),
    "email": string_field(*EQUALITY),
    "phone_number": string_field(*EQUALITY),
    "external_id": string_field(*EQUALITY),
    "created": datetime_field("greater-than", "less-than"),
    "updated": datetime_field("greater-than", "less-than"),
    f"{SUPPRESSION}.reason": string_field("equals"),
    f"{SUPPRESSION}.timestamp": datetime_field(*COMPARISONS),
    f"{LIST_SUPPRESSIONS}.reason": string_field("equals"),
    f"{LIST_SUPPRESSIONS}.timestamp": datetime_field(*COMPARISONS),
    f"{LIST_SUPPRESSIONS}.list_id": string_field("equals"),
}
EVENT_FILTERS: FilterSpec = {
    "metric_id": string_field("equals"),
    "profile_id": string_field("equals"),
    "profile": ("relation", frozenset({"has"})),
    "metric": ("relation", frozenset({"has"})),
    "datetime": datetime_field(*COMPARISONS),
    "timestamp": datetime_field(*COMPARISONS),
}
METRIC_FILTERS: FilterSpec = {
    "integration.name": string_field("equals"),
    "integration.category": string_field("equals"),
}
LIST_FILTERS: FilterSpec = {
    "name": string_field(*EQUALITY),
    "id": string_field(*EQUALITY),
    "created": datetime_field("greater-than"),
    "updated": datetime_field("greater-than"),
}
JOB_FILTERS: FilterSpec = {"status": string_field(*EQUALITY)}
MEMBER_FILTERS: FilterSpec = {
    "email": string_field(*EQUALITY),
    "phone_number": string_field(*EQUALITY),
    "joined_group_at": datetime_field(*COMPARISONS),
}


# ---------------------------------------------------------------- records


@dataclass
class Profile:
    id: str
    created: float
    updated: float
    fields: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)
    consent: str = "NEVER_SUBSCRIBED"
    consent_timestamp: float | None = None
    consent_updated: float | None = None
    method: str | None = None
    method_detail: str | None = None
    custom_method_detail: str | None = None
    double_optin: bool | None = None
    suppressions: list[dict[str, Any]] = field(default_factory=list)
    list_suppressions: list[dict[str, Any]] = field(default_factory=list)
    last_event_date: float | None = None

    def filter_values(self, name: str) -> list[Any]:
        if name == "id":
            return [self.id]
        if name in IDENTIFIERS:
            value = self.fields.get(name)
            return [normalized(name, value) if value else None]
        if name in ("created", "updated"):
            return [getattr(self, name)]
        block, _, attribute = name.rpartition(".")
        entries = self.suppressions if block == SUPPRESSION else self.list_suppressions
        return [entry.get(attribute) for entry in entries]


@dataclass
class KlaviyoList:
    id: str
    name: str
    created: float
    updated: float
    opt_in_process: str = "single_opt_in"
    members: dict[str, float] = field(default_factory=dict)  # profile id -> joined_group_at


@dataclass
class Metric:
    id: str
    name: str
    created: float
    integration: dict[str, Any]


@dataclass
class Event:
    id: str
    uuid: str
    metric_id: str
    profile_id: str
    time: float
    properties: dict[str, Any]
    value: float | None
    value_currency: str | None
    unique_id: str | None

    def filter_values(self, name: str) -> list[Any]:
        if name in ("metric_id", "metric"):
            return [self.metric_id]
        if name in ("profile_id", "profile"):
            return [self.profile_id]
        return [self.time]


@dataclass
class ImportJob:
    id: str
    created: float
    rows: list[dict[str, Any]]
    list_ids: list[str]
    completed_at: float | None = None
    profile_ids: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rushed: bool = False  # hurried by jobs_finish_at_once: started and due when created

    @property
    def started(self) -> float:
        return self.created if self.rushed else self.created + JOB_STAGE_SECONDS

    @property
    def finishes(self) -> float:
        if self.rushed:
            return self.created
        return self.started + JOB_STAGE_SECONDS + JOB_SECONDS_PER_PROFILE * len(self.rows)

    def status(self, now: float) -> str:
        if self.completed_at is not None:
            return "complete"
        return "processing" if now >= self.started else "queued"


class ProfileStore:
    """Profiles by id plus unique indexes on email (case-insensitive), phone_number and external_id."""

    def __init__(self) -> None:
        self.by_id: dict[str, Profile] = {}
        self.index: dict[str, dict[str, str]] = {name: {} for name in IDENTIFIERS}

    def get(self, profile_id: str | None) -> Profile | None:
        return self.by_id.get(profile_id) if profile_id else None

    def find(self, name: str, value: str | None) -> Profile | None:
        if not value:
            return None
        return self.get(self.index[name].get(normalized(name, value)))

    def owners(self, attributes: dict[str, Any]) -> dict[str, Profile]:
        """The existing profile holding each identifier the attributes name, in identifier order."""
        found = {name: self.find(name, attributes.get(name)) for name in IDENTIFIERS}
        return {name: profile for name, profile in found.items() if profile is not None}

    def add(self, profile: Profile) -> None:
        self.by_id[profile.id] = profile

    def set_identifier(self, profile: Profile, name: str, value: str | None) -> bool:
        old = profile.fields.get(name)
        if old == value:
            return False
        if old:
            self.index[name].pop(normalized(name, old), None)
        if value:
            self.index[name][normalized(name, value)] = profile.id
        profile.fields[name] = value
        return True


class RateLimit:
    """Klaviyo's windows for one endpoint: burst per second, steady per minute, optionally per day."""

    def __init__(self, clock: Clock, tier: str, daily: int | None = None):
        burst, steady = TIERS[tier]
        self.windows = [SlidingWindow(clock, burst, 1.0), SlidingWindow(clock, steady, 60.0)]
        if daily:
            self.windows.append(SlidingWindow(clock, daily, 86400.0))

    def retry_after(self) -> int | None:
        """None when the request is admitted, else whole seconds until every window has room."""
        wait = max(self._wait(window) for window in self.windows)
        if wait > 0:
            return max(1, math.ceil(wait))
        if not all(window.admit() for window in self.windows):
            return 1
        return None

    @staticmethod
    def _wait(window: SlidingWindow) -> float:
        with window.lock:
            now = window.clock.monotonic()
            while window.stamps and window.stamps[0] <= now - window.window:
                window.stamps.popleft()
            if len(window.stamps) < window.limit:
                return 0.0
            return window.stamps[0] + window.window - now


# ---------------------------------------------------------------- the sandbox


class KlaviyoSandbox(App):
    """In-memory Klaviyo: profiles, lists, metrics, events and bulk-import jobs behind the REST API."""

    def __init__(
        self,
        clock: Clock | None = None,
        api_key: str = "pk_sandbox_0000000000000000",
        revision: str = "2026-07-15",
    ):
        super().__init__(clock)
        self.api_key, self.revision = api_key, revision
        self.profiles = ProfileStore()
        self.lists: dict[str, KlaviyoList] = {}
        self.metrics: dict[str, Metric] = {}
        self.metric_ids_by_name: dict[str, str] = {}
        self.event_log: list[Event] = []
        self.event_keys: set[tuple[str, str, str]] = set()
        self.jobs: dict[str, ImportJob] = {}
        self.pending_jobs: list[ImportJob] = []
        self.failures: deque[ApiError | Response] = deque()
        self.route_info: dict[tuple[str, str], tuple[str, str, int | None]] = {}
        self.limits: dict[str, RateLimit] = {}
        self.sequence = 0
        self.short_ids = random.Random(11)
        # Test switches: paging `links.next` points back at the served page; bulk jobs never
        # finish (imports stay queued/processing, subscribe/event jobs are never applied) or
        # finish at once; sorting a subscriptions-filtered profile query is refused; no rate
        # limits (for clients that do not pace themselves, as in-process runs on a clock that never waits).
        self.next_link_loop = False
        self.jobs_never_finish = False
        self.jobs_finish_at_once = False
        self.refuse_sort_with_subscription_filter = False
        self.rate_limited = True
        self._register_routes()

    # ------------------------------------------------------------ hooks for tests

    def add_list(
        self, name: str, list_id: str | None = None, opt_in_process: str = "single_opt_in"
    ) -> str:
        """Seed a list; returns its id."""
        with self.lock:
            klaviyo_list = self._new_list(name, opt_in_process, list_id)
            return klaviyo_list.id

    def add_profile(
        self,
        email: str | None = None,
        phone_number: str | None = None,
        *,
        lists: Iterable[str] = (),
        subscribed: bool = False,
        **attributes: Any,
    ) -> str:
        """Seed a profile (ValueError on invalid or taken identifiers); returns its id."""
        attributes = {
            key: value
            for key, value in {"email": email, "phone_number": phone_number, **attributes}.items()
            if value is not None
        }
        with self.lock:
            errors = attribute_errors(attributes, "/data/attributes", PROFILE_ATTRIBUTES)
            if errors or not has_identifier(attributes) or self.profiles.owners(attributes):
                raise ValueError(
                    f"cannot seed profile {attributes}: {errors or 'identifier missing or taken'}"
                )
            profile = self._new_profile()
            self._apply_attributes(profile, attributes)
            for list_id in lists:
                self.lists[list_id].members[profile.id] = self.clock.now()
            if subscribed:
                self._subscribe(profile, self.clock.now(), "API", None)
            return profile.id

    def unsubscribe(
        self,
        email: str,
        at: float | str | None = None,
        reason: str = "UNSUBSCRIBE",
        method: str = "PREFERENCE_PAGE",
        list_id: str | None = None,
    ) -> str:
        """A person unsubscribes in Klaviyo (or bounces, or complains); returns the profile id.

        Global: a suppression with `reason` (UNSUBSCRIBE, SPAM_COMPLAINT, HARD_BOUNCE, …), consent
        UNSUBSCRIBED for UNSUBSCRIBE and SPAM_COMPLAINT, and the matching event ("Unsubscribed from
        Email Marketing", "Marked Email as Spam", "Bounced Email"). With `list_id`: only a list
        suppression, removal from the list and an "Unsubscribed from List" event. An unknown
        email gets a new profile.
        """
        with self.lock:
            self._finish_due_jobs()
            profile = self._profile_for_email(email)
            moment = as_timestamp(at, self.clock.now())
            if list_id:
                self._unsubscribe_from_list(profile, list_id, moment)
            else:
                self._suppress(profile, moment, reason, method)
            return profile.id

    def add_activity(
        self,
        email: str,
        metric: str,
        at: float | str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> str | None:
        """Campaign activity ("Opened Email", "Clicked Email", …) by a person; returns the event id."""
        with self.lock:
            self._finish_due_jobs()
            profile = self._profile_for_email(email)
            moment = as_timestamp(at, self.clock.now())
            unique_id = str(uuid.uuid4())
            event = self._record_event(
                metric, profile, moment, dict(properties or {}), unique_id=unique_id
            )
            return event.id if event else None

    def profile_by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            self._finish_due_jobs()
            profile = self.profiles.find("email", email)
            return self._profile_snapshot(profile) if profile else None

    def profile_by_id(self, profile_id: str) -> dict[str, Any] | None:
        with self.lock:
            self._finish_due_jobs()
            profile = self.profiles.get(profile_id)
            return self._profile_snapshot(profile) if profile else None

    def list_members(self, list_id: str) -> set[str]:
        with self.lock:
            self._finish_due_jobs()
            return set(self.lists[list_id].members)

    def events(self, metric: str | None = None) -> list[dict[str, Any]]:
        """Stored events (after de-duplication), oldest first, optionally of one metric name."""
        with self.lock:
            self._finish_due_jobs()
            return [
                self._event_snapshot(event)
                for event in self.event_log
                if metric is None or self.metrics[event.metric_id].name == metric
            ]

    def fail_next(self, n: int, status: int, body: dict[str, Any] | str | None = None) -> None:
        """The next `n` requests fail with `status`: a JSON:API body by default, or `body`
        (a dict as JSON, a str as text/html, like Cloudflare's pages)."""
        with self.lock:
            for _ in range(n):
                self.failures.append(self._failure(status, body))

    # ------------------------------------------------------------ routing, auth, limits

    def _register_routes(self) -> None:
        add = self._add_route
        add("GET", "/api/accounts", self._get_accounts, "XS")
        add("POST", "/api/profile-import", self._import_profile, "L")
        add("GET", "/api/profiles", self._get_profiles, "L")
        add("GET", "/api/profiles/{profile_id}", self._get_profile, "L")
        add("POST", "/api/profile-bulk-import-jobs", self._create_import_job, "M")
        add("GET", "/api/profile-bulk-import-jobs", self._get_import_jobs, "M")
        add("GET", "/api/profile-bulk-import-jobs/{job_id}", self._get_import_job, "M")
        add(
            "GET",
            "/api/profile-bulk-import-jobs/{job_id}/import-errors",
            self._get_import_errors,
            "M",
        )
        add("GET", "/api/profile-bulk-import-jobs/{job_id}/profiles", self._get_job_profiles, "M")
        add(
            "GET",
            "/api/profile-bulk-import-jobs/{job_id}/relationships/profiles",
            self._get_job_profile_ids,
            "M",
        )
        add("POST", "/api/lists", self._create_list, "M", daily=150)
        add("GET", "/api/lists", self._get_lists, "L")
        add("GET", "/api/lists/{list_id}", self._get_list, "L")
        add("POST", "/api/lists/{list_id}/relationships/profiles", self._add_to_list, "M")
        add("DELETE", "/api/lists/{list_id}/relationships/profiles", self._remove_from_list, "M")
        add("GET", "/api/lists/{list_id}/relationships/profiles", self._get_list_profile_ids, "L")
        add("GET", "/api/lists/{list_id}/profiles", self._get_list_profiles, "L")
        add("POST", "/api/events", self._create_event, "XL")
        add("GET", "/api/events", self._get_events, "XL")
        add("POST", "/api/event-bulk-create-jobs", self._bulk_create_events, "M")
        add("GET", "/api/metrics", self._get_metrics, "M")
        add("GET", "/api/metrics/{metric_id}", self._get_metric, "M")
        add("POST", "/api/profile-subscription-bulk-create-jobs", self._bulk_subscribe, "L")
        add("POST", "/api/profile-subscription-bulk-delete-jobs", self._bulk_unsubscribe, "L")

    def _add_route(
        self,
        method: str,
        pattern: str,
        handler: Callable[[Request], Response],
        tier: str,
        daily: int | None = None,
    ) -> None:
        self.route(method, pattern, self._guarded(handler))
        self.route_info[(method, self.routes[-1][1].pattern)] = (f"{method} {pattern}", tier, daily)

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Run a handler under the state lock, after due jobs finish, turning ApiError into its response."""

        def run(request: Request) -> Response:
            with self.lock:
                self._finish_due_jobs()
                try:
                    return handler(request)
                except ApiError as exc:
                    return exc.response()

        return run

    def before(self, request: Request) -> Response | None:
        try:
            self._fail_injected()
            self._check_auth(request)
            self._check_revision(request)
            self._check_media_type(request)
            self._check_rate_limit(request)
        except ApiError as exc:
            return exc.response()
        except _InjectedResponse as injected:
            return injected.response
        return None

    def not_found(self, request: Request, method_mismatch: bool = False) -> Response:
        if method_mismatch:
            return ApiError(
                405,
                [
                    error_object(
                        405,
                        "method_not_allowed",
                        "Method not allowed.",
                        f'Method "{request.method}" not allowed.',
                    )
                ],
            ).response()
        return not_found_error(f"No route for {request.method} {request.path}.").response()

    def failure_response(self, status: int, body: Any) -> Response:
        failure = self._failure(status, body)
        return failure.response() if isinstance(failure, ApiError) else failure

    def _failure(self, status: int, body: dict[str, Any] | str | None) -> ApiError | Response:
        if body is None:
            return default_failure(status)
        if isinstance(body, str):
            return Response(status, None, "text/html", raw=body.encode("utf-8"))
        headers = {"Retry-After": "1"} if status == 429 else {}
        return Response(status, body, JSONAPI, headers)

    def _fail_injected(self) -> None:
        with self.lock:
            failure = self.failures.popleft() if self.failures else None
        if isinstance(failure, ApiError):
            raise failure
        if failure is not None:
            raise _InjectedResponse(failure)

    def _check_auth(self, request: Request) -> None:
        scheme, _, key = (request.header("authorization") or "").partition(" ")
        if scheme != "Klaviyo-API-Key" or not key.strip():
            raise ApiError(
                401,
                [
                    error_object(
                        401,
                        "not_authenticated",
                        "Authentication credentials were not provided.",
                        "Missing or invalid authorization scheme. Please use Klaviyo-API-Key.",
                    )
                ],
            )
        if key.strip() != self.api_key:
            raise ApiError(
                401,
                [
                    error_object(
                        401,
                        "authentication_failed",
                        "Incorrect authentication credentials.",
                        "Incorrect authentication credentials.",
                    )
                ],
            )

    def _check_revision(self, request: Request) -> None:
        revision = request.header("revision")
        if not revision:
            raise invalid("The 'revision' header is required.", parameter="revision")
        if not REVISION_FORMAT.match(revision):
            raise invalid(
                f"Invalid revision '{revision}' (format: YYYY-MM-DD[.suffix]).",
                parameter="revision",
            )
        if revision != self.revision:
            raise not_found_error("No valid revisions found for method")

    def _check_media_type(self, request: Request) -> None:
        if not request.body:
            return
        media_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if media_type not in ACCEPTED_MEDIA_TYPES:
            raise ApiError(
                415,
                [
                    error_object(
                        415,
                        "unsupported_media_type",
                        "Unsupported media type.",
                        f'Unsupported media type "{media_type}" in request.',
                    )
                ],
            )

    def _check_rate_limit(self, request: Request) -> None:
        info = self._route_of(request) if self.rate_limited else None
        if info is None:
            return
        name, tier, daily = info
        option = SLOW_OPTIONS.get(name)
        if option and self._query_values(request, option[0]) & option[1]:
            name, tier = f"{name} ({option[2]})", option[2]
        with self.lock:
            if name not in self.limits:
                self.limits[name] = RateLimit(self.clock, tier, daily)
            limit = self.limits[name]
        seconds = limit.retry_after()
        if seconds is not None:
            raise throttled(seconds)

    def _route_of(self, request: Request) -> tuple[str, str, int | None] | None:
        for method, regex, _ in self.routes:
            if method == request.method and regex.match(request.path):
                return self.route_info[(method, regex.pattern)]
        return None

    @staticmethod
    def _query_values(request: Request, name: str) -> set[str]:
        return {
            part.strip()
            for value in request.query.get(name, [])
            for part in value.split(",")
            if part.strip()
        }

    # ------------------------------------------------------------ request helpers

    def _data(self, request: Request, expected_type: str | None) -> Any:
        try:
            body = request.json()
        except ValueError as exc:
            raise ApiError(
                400,
                [
                    error_object(
                        400, "parse_error", "Malformed request.", f"JSON parse error - {exc}"
                    )
                ],
            ) from exc
        if not isinstance(body, dict) or "data" not in body:
            raise invalid("'data' is a required field.", "/data")
        data = body["data"]
        if expected_type and (not isinstance(data, dict) or data.get("type") != expected_type):
            raise invalid(f"The resource type must be '{expected_type}'.", "/data/type")
        return data

    def _base(self, request: Request) -> str:
        return f"http://{request.header('host') or 'localhost'}"

    def _url(self, request: Request, overrides: dict[str, str] | None = None) -> str:
        query = {name: list(values) for name, values in request.query.items()}
        query.update({name: [value] for name, value in (overrides or {}).items()})
        encoded = urlencode(query, doseq=True)
        return f"{self._base(request)}{request.path}" + (f"?{encoded}" if encoded else "")

    def _page_size(self, request: Request, default: int, maximum: int) -> int:
        raw = request.arg("page[size]")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= maximum:
            raise invalid(
                f"Page size must be an integer between 1 and {maximum}.", parameter="page[size]"
            )
        return int(raw)

    def _cursor(self, request: Request) -> tuple[str, str] | None:
        raw = request.arg("page[cursor]")
        if not raw:
            return None
        try:
            key = json.loads(base64.urlsafe_b64decode(raw.encode()).decode())
            return (str(key[0]), str(key[1]))
        except (ValueError, IndexError, TypeError) as exc:
            raise invalid("Invalid page cursor.", parameter="page[cursor]") from exc

    def _paginate(
        self,
        request: Request,
        records: Iterable[Any],
        sort_key: Callable[[Any], str],
        sizes: tuple[int, int],
        descending: bool = False,
        cap: int | None = None,
    ) -> tuple[list[Any], dict[str, str | None]]:
        """One page of `records` in (sort_key, id) order after the cursor, plus JSON:API links."""
        size = min(self._page_size(request, *sizes), cap or sizes[1])
        entries = sorted(
            (((sort_key(record), record.id), record) for record in records), key=lambda e: e[0]
        )
        cursor = self._cursor(request)
        if descending:
            end = bisect_left(entries, cursor, key=lambda e: e[0]) if cursor else len(entries)
            chunk, more = entries[max(0, end - size) : end][::-1], end > size
        else:
            start = bisect_right(entries, cursor, key=lambda e: e[0]) if cursor else 0
            chunk, more = entries[start : start + size], start + size < len(entries)
        next_url = None
        if more and chunk:
            token = base64.urlsafe_b64encode(json.dumps(list(chunk[-1][0])).encode()).decode()
            next_url = self._url(request, {"page[cursor]": token})
        if self.next_link_loop:
            next_url = self._url(request)
        return [record for _, record in chunk], {
            "self": self._url(request),
            "next": next_url,
            "prev": None,
        }

    def _sort(
        self, request: Request, allowed: dict[str, Callable[[Any], str]], default: str
    ) -> tuple[Callable[[Any], str], bool]:
        raw = request.arg("sort") or default
        name = raw.lstrip("-")
        if name not in allowed:
            raise invalid(f"'{raw}' is not a valid sort field.", parameter="sort")
        return allowed[name], raw.startswith("-")

    def _next_id(self) -> str:
        self.sequence += 1
        return ulid(int(self.clock.now() * 1000), self.sequence)

    def _short_id(self, taken: dict[str, Any]) -> str:
        while True:
            candidate = "".join(self.short_ids.choice(SHORT_ID_ALPHABET) for _ in range(6))
            if candidate not in taken:
                return candidate

    # ------------------------------------------------------------ profiles: state

    def _new_profile(self) -> Profile:
        now = self.clock.now()
        profile = Profile(self._next_id(), now, now)
        self.profiles.add(profile)
        return profile

    def _profile_for_email(self, email: str) -> Profile:
        profile = self.profiles.find("email", email)
        if profile is None:
            profile = self._new_profile()
            self.profiles.set_identifier(profile, "email", email)
        return profile

    def _resolve(self, profile_id: str | None, attributes: dict[str, Any]) -> Profile | None:
        """The existing profile a request names; None for a new one.

        Identifiers of two different profiles give 409 duplicate_profile (the email's owner is
        reported). So does a new email whose phone or external id belongs to a profile with
        another email: an email that matches nothing never takes over someone else's profile.
        An id whose other identifiers belong elsewhere gives the observed 404.
        """
        owners = self.profiles.owners(attributes)
        if profile_id:
            target = self.profiles.get(profile_id)
            if target is None or any(owner.id != profile_id for owner in owners.values()):
                raise not_found_error(f"A profile with id {profile_id} does not exist.")
            return target
        distinct = {owner.id: owner for owner in owners.values()}
        if len(distinct) > 1:
            raise duplicate_profile(next(iter(owners.values())).id)
        found = next(iter(distinct.values()), None)
        if (
            found is not None
            and attributes.get("email")
            and "email" not in owners
            and found.fields.get("email")
        ):
            raise duplicate_profile(found.id)
        return found

    def _upsert(
        self,
        profile_id: str | None,
        attributes: dict[str, Any],
        meta: Any,
        pointer: str = "/data/attributes",
    ) -> tuple[Profile, bool]:
        """Create or update a profile; True when it was created. Consent is never touched."""
        profile = self._resolve(profile_id, attributes)
        created = profile is None
        if profile is None:
            if not has_identifier(attributes):
                raise invalid(
                    "One of 'email', 'phone_number' or 'external_id' is required.", pointer
                )
            profile = self._new_profile()
        self._apply_attributes(profile, attributes, meta)
        return profile, created

    def _apply_attributes(
        self, profile: Profile, attributes: dict[str, Any], meta: Any = None
    ) -> None:
        changed = False
        for name, value in attributes.items():
            if name in IDENTIFIERS:
                changed |= self.profiles.set_identifier(profile, name, value)
            elif name in PLAIN_FIELDS and profile.fields.get(name) != value:
                profile.fields[name], changed = value, True
            elif name in ("properties", "location"):
                changed |= merge_into(getattr(profile, name), value)
        if isinstance(meta, dict):
            changed |= patch_properties(profile.properties, meta.get("patch_properties"))
        if changed:
            profile.updated = self.clock.now()

    def _profile_lists(self, profile_id: str) -> list[str]:
        return sorted(
            list_id
            for list_id, klaviyo_list in self.lists.items()
            if profile_id in klaviyo_list.members
        )

    # ------------------------------------------------------------ consent

    def _subscribe(
        self,
        profile: Profile,
        consented_at: float,
        method: str,
        source: str | None,
        list_id: str | None = None,
    ) -> None:
        """Bulk Subscribe: consent SUBSCRIBED, and UNSUBSCRIBE/spam/manual suppressions lifted."""
        now = self.clock.now()
        profile.consent, profile.consent_timestamp, profile.consent_updated = (
            "SUBSCRIBED",
            consented_at,
            now,
        )
        profile.method, profile.method_detail, profile.custom_method_detail = method, "", source
        profile.double_optin = False
        profile.suppressions = [
            s for s in profile.suppressions if s["reason"] not in LIFTED_BY_SUBSCRIBE
        ]
        if list_id:
            profile.list_suppressions = [
                s for s in profile.list_suppressions if s["list_id"] != list_id
            ]
            self.lists[list_id].members.setdefault(profile.id, now)
        profile.updated = now
        self._record_event(
            SUBSCRIBED_METRIC,
            profile,
            now,
            {"List": list_id} if list_id else {},
            unique_id=str(uuid.uuid4()),
        )

    def _suppress(self, profile: Profile, moment: float, reason: str, method: str) -> None:
        if reason in REVOKES_CONSENT:
            profile.consent, profile.consent_timestamp = "UNSUBSCRIBED", moment
            profile.method, profile.method_detail = method, ""
        profile.consent_updated = profile.updated = self.clock.now()
        profile.suppressions = [s for s in profile.suppressions if s["reason"] != reason]
        profile.suppressions.append({"reason": reason, "timestamp": moment})
        metric = METRIC_FOR_SUPPRESSION.get(reason)
        if metric:
            self._record_event(
                metric, profile, moment, {"Method": method}, unique_id=str(uuid.uuid4())
            )

    def _unsubscribe_from_list(self, profile: Profile, list_id: str, moment: float) -> None:
        self.lists[list_id].members.pop(profile.id, None)
        profile.list_suppressions.append(
            {"list_id": list_id, "reason": "USER_SUPPRESSED", "timestamp": moment}
        )
        profile.updated = self.clock.now()
        self._record_event(
            "Unsubscribed from List",
            profile,
            moment,
            {"List": list_id},
            unique_id=str(uuid.uuid4()),
        )

    # ------------------------------------------------------------ profiles: rendering

    def _profile_resource(
        self,
        request: Request,
        profile: Profile,
        subscriptions: bool = False,
        fields: set[str] | None = None,
    ) -> dict[str, Any]:
        base = self._base(request)
        attributes = self._profile_attributes(profile, subscriptions)
        if fields:
            attributes = {name: value for name, value in attributes.items() if name in fields}
        related = {
            name: {
                "links": {
                    "self": f"{base}/api/profiles/{profile.id}/relationships/{name}/",
                    "related": f"{base}/api/profiles/{profile.id}/{name}/",
                }
            }
            for name in ("lists", "segments")
        }
        return {
            "type": "profile",
            "id": profile.id,
            "attributes": attributes,
            "relationships": related,
            "links": {"self": f"{base}/api/profiles/{profile.id}/"},
        }

    def _profile_attributes(self, profile: Profile, subscriptions: bool) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            name: profile.fields.get(name) for name in IDENTIFIERS + PLAIN_FIELDS
        }
        attributes.update(
            created=iso(profile.created),
            updated=iso(profile.updated),
            last_event_date=iso(profile.last_event_date),
            location=location_block(profile.location),
            properties=dict(profile.properties),
        )
        if subscriptions:
            attributes["subscriptions"] = self._subscriptions_block(profile)
        return attributes

    def _subscriptions_block(self, profile: Profile) -> dict[str, Any]:
        marketing = {
            "can_receive_email_marketing": not profile.suppressions,
            "consent": profile.consent,
            "consent_timestamp": iso(profile.consent_timestamp),
            "last_updated": iso(profile.consent_updated),
            "method": profile.method,
            "method_detail": profile.method_detail,
            "custom_method_detail": profile.custom_method_detail,
            "double_optin": profile.double_optin,
            "suppression": [
                {"reason": s["reason"], "timestamp": iso(s["timestamp"])}
                for s in profile.suppressions
            ],
            "list_suppressions": [
                {"list_id": s["list_id"], "reason": s["reason"], "timestamp": iso(s["timestamp"])}
                for s in profile.list_suppressions
            ],
        }
        sms = {
            "marketing": {
                "can_receive_sms_marketing": False,
                "consent": "NEVER_SUBSCRIBED",
                "consent_timestamp": None,
                "method": None,
                "method_detail": None,
                "last_updated": None,
            }
        }
        return {"email": {"marketing": marketing}, "sms": sms}

    def _profile_snapshot(self, profile: Profile) -> dict[str, Any]:
        return {
            "id": profile.id,
            **self._profile_attributes(profile, subscriptions=True),
            "lists": self._profile_lists(profile.id),
        }

    def _wants_subscriptions(self, request: Request) -> bool:
        return "subscriptions" in self._query_values(request, "additional-fields[profile]")

    def _profile_fields(self, request: Request) -> set[str] | None:
        return self._query_values(request, "fields[profile]") or None

    # ------------------------------------------------------------ profiles: endpoints

    def _get_accounts(self, request: Request) -> Response:
        account = {
            "type": "account",
            "id": "SbX0K1",
            "attributes": {
                "test_account": True,
                "public_api_key": "SbX0K1",
                "timezone": "UTC",
                "preferred_currency": "USD",
                "contact_information": {"organization_name": "Sandbox", "website_url": None},
            },
            "links": {"self": f"{self._base(request)}/api/accounts/SbX0K1/"},
        }
        return Response(
            200,
            {"data": [account], "links": {"self": self._url(request), "next": None, "prev": None}},
            JSONAPI,
        )

    def _import_profile(self, request: Request) -> Response:
        data = self._data(request, "profile")
        attributes = data.get("attributes")
        errors = attribute_errors(attributes, "/data/attributes", PROFILE_ATTRIBUTES)
        if errors:
            raise ApiError(400, errors)
        profile, created = self._upsert(data.get("id"), attributes, data.get("meta"))
        resource = self._profile_resource(
            request, profile, self._wants_subscriptions(request), self._profile_fields(request)
        )
        return Response(
            201 if created else 200,
            {"data": resource, "links": {"self": resource["links"]["self"]}},
            JSONAPI,
        )

    def _get_profile(self, request: Request) -> Response:
        profile = self.profiles.get(request.params["profile_id"])
        if profile is None:
            raise not_found_error(
                f"A profile with id {request.params['profile_id']} does not exist."
            )
        resource = self._profile_resource(
            request, profile, self._wants_subscriptions(request), self._profile_fields(request)
        )
        body: dict[str, Any] = {"data": resource, "links": {"self": self._url(request)}}
        if "lists" in self._query_values(request, "include"):
            list_ids = self._profile_lists(profile.id)
            resource["relationships"]["lists"]["data"] = [
                {"type": "list", "id": i} for i in list_ids
            ]
            body["included"] = [self._list_resource(request, self.lists[i]) for i in list_ids]
        return Response(200, body, JSONAPI)

    def _get_profiles(self, request: Request) -> Response:
        self._refuse_sorted_subscription_filter(request)
        conditions = parse_filter(request.arg("filter"), PROFILE_FILTERS)
        sort_key, descending = self._sort(request, PROFILE_SORTS, "id")
        candidates = self._indexed_candidates(conditions)
        matching = (
            p for p in candidates if all(satisfies(p.filter_values(c.field), c) for c in conditions)
        )
        page, links = self._paginate(request, matching, sort_key, (20, 100), descending)
        subscriptions, fields = self._wants_subscriptions(request), self._profile_fields(request)
        data = [self._profile_resource(request, p, subscriptions, fields) for p in page]
        return Response(200, {"data": data, "links": links}, JSONAPI)

    def _refuse_sorted_subscription_filter(self, request: Request) -> None:
        """The refuse_sort_with_subscription_filter switch: a 400 seen from the real API."""
        if (
            self.refuse_sort_with_subscription_filter
            and "sort" in request.query
            and "subscriptions" in (request.arg("filter") or "")
        ):
            raise invalid(
                "You may not filter on subscriptions and sort at the same time.", parameter="sort"
            )

    def _indexed_candidates(self, conditions: list[Condition]) -> Iterable[Profile]:
        """Profiles an id or identifier condition narrows the search to; all profiles otherwise."""
        for condition in conditions:
            if condition.field in ("id",) + IDENTIFIERS:
                values = condition.value if condition.op == "any" else [condition.value]
                found = (
                    self.profiles.get(v)
                    if condition.field == "id"
                    else self.profiles.find(condition.field, v)
                    for v in values
                )
                return {p.id: p for p in found if p is not None}.values()
        return list(self.profiles.by_id.values())

    # ------------------------------------------------------------ bulk import jobs

    def _create_import_job(self, request: Request) -> Response:
        if len(request.body) > MAX_BULK_IMPORT_BYTES:
            raise ApiError(
                413,
                [
                    error_object(
                        413,
                        "request_too_large",
                        "Request too large.",
                        "The maximum allowed payload size is 5MB.",
                    )
                ],
            )
        data = self._data(request, "profile-bulk-import-job")
        rows = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(rows, list) or not 1 <= len(rows) <= MAX_BULK_IMPORT_PROFILES:
            raise invalid(
                f"Between 1 and {MAX_BULK_IMPORT_PROFILES} profiles are allowed per job.",
                "/data/attributes/profiles/data",
            )
        list_ids = self._job_list_ids(data)
        errors = [
            error for index, row in enumerate(rows) for error in self._import_row_errors(index, row)
        ]
        if errors:
            raise ApiError(400, errors)
        job = ImportJob(self._next_id(), self.clock.now(), rows, list_ids)
        self.jobs[job.id] = job
        self.pending_jobs.append(job)
        return Response(
            202,
            {"data": self._job_resource(request, job), "links": {"self": self._url(request)}},
            JSONAPI,
        )

    def _job_list_ids(self, data: dict[str, Any]) -> list[str]:
        entries = (((data.get("relationships") or {}).get("lists") or {}).get("data")) or []
        list_ids = [entry.get("id") for entry in entries if isinstance(entry, dict)]
        for list_id in list_ids:
            if list_id not in self.lists:
                raise invalid(f"List ID {list_id} does not exist.", "/data")
        return list_ids

    def _import_row_errors(self, index: int, row: Any) -> list[dict[str, Any]]:
        """Synchronous validation of one row; any error refuses the whole job (observed behaviour)."""
        pointer = f"/data/attributes/profiles/data/{index}"
        if not isinstance(row, dict) or row.get("type") != "profile":
            return [invalid_object("The resource type must be 'profile'.", f"{pointer}/type")]
        if json_size(row) > MAX_PROFILE_BYTES:
            return [
                invalid_object("The maximum allowed payload size per-profile is 100KB.", pointer)
            ]
        attributes = row.get("attributes")
        errors = attribute_errors(attributes, f"{pointer}/attributes", PROFILE_ATTRIBUTES)
        if not errors and not row.get("id") and not has_identifier(attributes):
            errors.append(
                invalid_object(
                    "One of 'email', 'phone_number' or 'external_id' is required.",
                    f"{pointer}/attributes",
                )
            )
        return errors

    def _finish_due_jobs(self) -> None:
        """Complete every job whose processing time has passed on the injected clock."""
        if self.jobs_never_finish:
            return
        for job in self.pending_jobs:
            job.rushed = job.rushed or self.jobs_finish_at_once
        now = self.clock.now()
        due = sorted(
            (job for job in self.pending_jobs if job.finishes <= now), key=lambda job: job.finishes
        )
        for job in due:
            self.pending_jobs.remove(job)
            self._run_import_job(job)
            job.completed_at = job.finishes

    def _run_import_job(self, job: ImportJob) -> None:
        for index, row in enumerate(job.rows):
            try:
                profile, _ = self._upsert(row.get("id"), row["attributes"], row.get("meta"))
            except ApiError as exc:
                job.errors.append(self._import_error(index, row, exc))
                continue
            job.profile_ids.append(profile.id)
            for list_id in job.list_ids:
                self.lists[list_id].members.setdefault(profile.id, job.finishes)

    def _import_error(self, index: int, row: dict[str, Any], exc: ApiError) -> dict[str, Any]:
        error = exc.errors[0]
        return {
            "type": "import-error",
            "id": str(uuid.uuid4()),
            "attributes": {
                "code": error["code"],
                "title": error["title"],
                "detail": error["detail"],
                "source": {"pointer": f"/data/attributes/profiles/data/{index}"},
                "original_payload": row.get("attributes"),
            },
        }

    def _job(self, request: Request) -> ImportJob:
        job = self.jobs.get(request.params["job_id"])
        if job is None:
            raise not_found_error(
                f"A profile bulk import job with id {request.params['job_id']} does not exist."
            )
        return job

    def _job_resource(self, request: Request, job: ImportJob) -> dict[str, Any]:
        base, now = self._base(request), self.clock.now()
        status = job.status(now)
        done = status == "complete"
        job_url = f"{base}/api/profile-bulk-import-jobs/{job.id}"
        related = {
            name: {
                "links": {
                    "self": f"{job_url}/relationships/{name}/",
                    "related": f"{job_url}/{name}/",
                }
            }
            for name in ("lists", "profiles", "import-errors")
        }
        related["lists"]["data"] = [{"type": "list", "id": list_id} for list_id in job.list_ids]
        attributes = {
            "status": status,
            "created_at": iso(job.created),
            "total_count": len(job.rows),
            "completed_count": len(job.profile_ids) if done else 0,
            "failed_count": len(job.errors) if done else 0,
            "completed_at": iso(job.completed_at),
            "expires_at": iso(job.created + JOB_LIFETIME_SECONDS),
            "started_at": iso(job.started) if status != "queued" else None,
        }
        return {
            "type": "profile-bulk-import-job",
            "id": job.id,
            "attributes": attributes,
            "relationships": related,
            "links": {"self": f"{job_url}/"},
        }

    def _get_import_job(self, request: Request) -> Response:
        job = self._job(request)
        body: dict[str, Any] = {
            "data": self._job_resource(request, job),
            "links": {"self": self._url(request)},
        }
        if "lists" in self._query_values(request, "include"):
            body["included"] = [self._list_resource(request, self.lists[i]) for i in job.list_ids]
        return Response(200, body, JSONAPI)

    def _get_import_jobs(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), JOB_FILTERS)
        raw_sort = request.arg("sort") or "created_at"
        if raw_sort.lstrip("-") != "created_at":
            raise invalid(f"'{raw_sort}' is not a valid sort field.", parameter="sort")
        now = self.clock.now()
        matching = [
            job
            for job in self.jobs.values()
            if all(satisfies([job.status(now)], c) for c in conditions)
        ]
        page, links = self._paginate(
            request,
            matching,
            lambda job: sort_text(job.created),
            (20, 100),
            raw_sort.startswith("-"),
        )
        return Response(
            200,
            {"data": [self._job_resource(request, job) for job in page], "links": links},
            JSONAPI,
        )

    def _get_import_errors(self, request: Request) -> Response:
        job = self._job(request)
        page, links = self._paginate(
            request,
            [_Keyed(e["id"], str(i).zfill(6), e) for i, e in enumerate(job.errors)],
            lambda keyed: keyed.key,
            (20, 100),
        )
        return Response(200, {"data": [keyed.item for keyed in page], "links": links}, JSONAPI)

    def _job_profiles(self, request: Request) -> tuple[list[Profile], dict[str, str | None]]:
        job = self._job(request)
        keyed = [
            _Keyed(pid, str(i).zfill(6), self.profiles.by_id[pid])
            for i, pid in enumerate(job.profile_ids)
        ]
        page, links = self._paginate(request, keyed, lambda k: k.key, (20, 100))
        return [k.item for k in page], links

    def _get_job_profiles(self, request: Request) -> Response:
        profiles, links = self._job_profiles(request)
        subscriptions = self._wants_subscriptions(request)
        data = [
            self._profile_resource(request, p, subscriptions, self._profile_fields(request))
            for p in profiles
        ]
        return Response(200, {"data": data, "links": links}, JSONAPI)

    def _get_job_profile_ids(self, request: Request) -> Response:
        profiles, links = self._job_profiles(request)
        return Response(
            200,
            {"data": [{"type": "profile", "id": p.id} for p in profiles], "links": links},
            JSONAPI,
        )

    # ------------------------------------------------------------ lists

    def _new_list(self, name: str, opt_in_process: str, list_id: str | None = None) -> KlaviyoList:
        now = self.clock.now()
        klaviyo_list = KlaviyoList(
            list_id or self._short_id(self.lists), name, now, now, opt_in_process
        )
        self.lists[klaviyo_list.id] = klaviyo_list
        return klaviyo_list

    def _list_resource(
        self, request: Request, klaviyo_list: KlaviyoList, profile_count: bool = False
    ) -> dict[str, Any]:
        base = self._base(request)
        attributes: dict[str, Any] = {
            "name": klaviyo_list.name,
            "created": iso(klaviyo_list.created),
            "updated": iso(klaviyo_list.updated),
            "opt_in_process": klaviyo_list.opt_in_process,
        }
        if profile_count:
            attributes["profile_count"] = len(klaviyo_list.members)
        return {
            "type": "list",
            "id": klaviyo_list.id,
            "attributes": attributes,
            "links": {"self": f"{base}/api/lists/{klaviyo_list.id}/"},
        }

    def _list(self, request: Request) -> KlaviyoList:
        klaviyo_list = self.lists.get(request.params["list_id"])
        if klaviyo_list is None:
            raise not_found_error(f"A list with id {request.params['list_id']} does not exist.")
        return klaviyo_list

    def _create_list(self, request: Request) -> Response:
        data = self._data(request, "list")
        attributes = data.get("attributes") or {}
        name = attributes.get("name")
        if not isinstance(name, str) or not name.strip():
            raise invalid("'name' is a required field.", "/data/attributes/name")
        opt_in = attributes.get("opt_in_process") or "single_opt_in"
        if opt_in not in ("single_opt_in", "double_opt_in"):
            raise invalid(
                f"'{opt_in}' is not a valid opt_in_process.", "/data/attributes/opt_in_process"
            )
        klaviyo_list = self._new_list(name, opt_in)
        return Response(201, {"data": self._list_resource(request, klaviyo_list)}, JSONAPI)

    def _get_lists(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), LIST_FILTERS)
        sort_key, descending = self._sort(request, LIST_SORTS, "id")
        matching = [
            klaviyo_list
            for klaviyo_list in self.lists.values()
            if all(satisfies(list_filter_values(klaviyo_list, c.field), c) for c in conditions)
        ]
        page, links = self._paginate(request, matching, sort_key, (10, 10), descending)
        return Response(
            200,
            {"data": [self._list_resource(request, item) for item in page], "links": links},
            JSONAPI,
        )

    def _get_list(self, request: Request) -> Response:
        counted = "profile_count" in self._query_values(request, "additional-fields[list]")
        return Response(
            200,
            {
                "data": self._list_resource(request, self._list(request), counted),
                "links": {"self": self._url(request)},
            },
            JSONAPI,
        )

    def _list_change(self, request: Request) -> tuple[KlaviyoList, list[str]]:
        """The list and profile ids of an add/remove request; unknown ids refuse the whole request."""
        klaviyo_list = self._list(request)
        data = self._data(request, None)
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_LIST_CHANGE:
            raise invalid(
                f"Between 1 and {MAX_LIST_CHANGE} profiles are allowed per request.", "/data"
            )
        errors = []
        for index, entry in enumerate(data):
            if not isinstance(entry, dict) or entry.get("type") != "profile":
                errors.append(
                    invalid_object("The resource type must be 'profile'.", f"/data/{index}/type")
                )
            elif self.profiles.get(entry.get("id")) is None:
                errors.append(
                    invalid_object(
                        f"A profile with id {entry.get('id')} does not exist.", f"/data/{index}/id"
                    )
                )
        if errors:
            raise ApiError(400, errors)
        return klaviyo_list, [entry["id"] for entry in data]

    def _add_to_list(self, request: Request) -> Response:
        klaviyo_list, profile_ids = self._list_change(request)
        now = self.clock.now()
        for profile_id in profile_ids:
            klaviyo_list.members.setdefault(profile_id, now)
        return Response(204, None, JSONAPI)

    def _remove_from_list(self, request: Request) -> Response:
        klaviyo_list, profile_ids = self._list_change(request)
        for profile_id in profile_ids:
            klaviyo_list.members.pop(profile_id, None)
        return Response(204, None, JSONAPI)

    def _list_member_page(self, request: Request) -> tuple[list[Profile], dict[str, str | None]]:
        klaviyo_list = self._list(request)
        conditions = parse_filter(request.arg("filter"), MEMBER_FILTERS)
        raw_sort = request.arg("sort") or "joined_group_at"
        if raw_sort.lstrip("-") != "joined_group_at":
            raise invalid(f"'{raw_sort}' is not a valid sort field.", parameter="sort")
        members = [
            _Keyed(pid, sort_text(joined), self.profiles.by_id[pid])
            for pid, joined in klaviyo_list.members.items()
            if all(
                satisfies(member_filter_values(self.profiles.by_id[pid], joined, c.field), c)
                for c in conditions
            )
        ]
        page, links = self._paginate(
            request, members, lambda k: k.key, (20, 100), raw_sort.startswith("-")
        )
        return [k.item for k in page], links

    def _get_list_profile_ids(self, request: Request) -> Response:
        profiles, links = self._list_member_page(request)
        return Response(
            200,
            {"data": [{"type": "profile", "id": p.id} for p in profiles], "links": links},
            JSONAPI,
        )

    def _get_list_profiles(self, request: Request) -> Response:
        profiles, links = self._list_member_page(request)
        subscriptions, fields = self._wants_subscriptions(request), self._profile_fields(request)
        data = [self._profile_resource(request, p, subscriptions, fields) for p in profiles]
        return Response(200, {"data": data, "links": links}, JSONAPI)

    # ------------------------------------------------------------ metrics and events: state

    def _metric(self, name: str) -> Metric:
        """The metric of that name, created on first use (as Klaviyo does)."""
        metric_id = self.metric_ids_by_name.get(name)
        if metric_id is None:
            integration = KLAVIYO_INTEGRATION if name in KLAVIYO_METRICS else API_INTEGRATION
            metric = Metric(self._short_id(self.metrics), name, self.clock.now(), integration)
            self.metrics[metric.id], self.metric_ids_by_name[name] = metric, metric.id
            metric_id = metric.id
        return self.metrics[metric_id]

    def _event_key(
        self, metric_name: str, profile_id: str, time: float, unique_id: str | None
    ) -> tuple:
        """Klaviyo's de-duplication key: without unique_id, the time to the second stands in."""
        return (metric_name, profile_id, unique_id or str(int(time)))

    def _record_event(
        self,
        metric_name: str,
        profile: Profile,
        time: float,
        properties: dict[str, Any],
        value: float | None = None,
        currency: str | None = None,
        unique_id: str | None = None,
    ) -> Event | None:
        """Store an event unless one with the same metric, profile and unique_id exists."""
        key = self._event_key(metric_name, profile.id, time, unique_id)
        if key in self.event_keys:
            return None
        self.event_keys.add(key)
        metric = self._metric(metric_name)
        event = Event(
            self._next_id(),
            str(uuid.uuid4()),
            metric.id,
            profile.id,
            float(int(time)),
            properties,
            value,
            currency,
            unique_id,
        )
        self.event_log.append(event)
        profile.last_event_date = max(profile.last_event_date or 0.0, event.time)
        return event

    def _event_properties(self, event: Event) -> dict[str, Any]:
        extra: dict[str, Any] = {"$event_id": event.unique_id or str(int(event.time))}
        if event.value is not None:
            extra["$value"] = event.value
        if event.value_currency:
            extra["$value_currency"] = event.value_currency
        return {**event.properties, **extra}

    def _event_snapshot(self, event: Event) -> dict[str, Any]:
        profile = self.profiles.by_id[event.profile_id]
        return {
            "id": event.id,
            "metric": self.metrics[event.metric_id].name,
            "profile_id": event.profile_id,
            "email": profile.fields.get("email"),
            "time": event.time,
            "datetime": iso(event.time),
            "properties": dict(event.properties),
            "value": event.value,
            "value_currency": event.value_currency,
            "unique_id": event.unique_id,
        }

    # ------------------------------------------------------------ events: writing

    def _create_event(self, request: Request) -> Response:
        data = self._data(request, "event")
        attributes = data.get("attributes")
        if not isinstance(attributes, dict):
            raise invalid("'attributes' is a required field.", "/data/attributes")
        profile_data = (attributes.get("profile") or {}).get("data")
        errors = self._event_errors(attributes, "/data/attributes")
        errors += self._event_profile_errors(
            profile_data, "/data/attributes/profile/data", meta_inside=True
        )
        if errors:
            raise ApiError(400, errors)
        profile_attributes = dict(profile_data.get("attributes") or {})
        meta = profile_attributes.pop("meta", None)
        profile = self._event_profile(profile_data.get("id"), profile_attributes, meta)
        self._store_event(attributes, profile)
        return Response(202, None, JSONAPI)

    def _event_errors(self, attributes: dict[str, Any], pointer: str) -> list[dict[str, Any]]:
        """Validation of an event's own attributes (not its profile)."""
        errors = []
        properties = attributes.get("properties")
        if not isinstance(properties, dict):
            errors.append(
                invalid_object("'properties' is a required field.", f"{pointer}/properties")
            )
        elif len(properties) > MAX_EVENT_PROPERTIES:
            errors.append(
                invalid_object("An event may have at most 400 properties.", f"{pointer}/properties")
            )
        name = (((attributes.get("metric") or {}).get("data") or {}).get("attributes") or {}).get(
            "name"
        )
        if not isinstance(name, str) or not name or len(name) >= 128:
            errors.append(
                invalid_object(
                    "A metric name of fewer than 128 characters is required.",
                    f"{pointer}/metric/data/attributes/name",
                )
            )
        errors += self._event_time_errors(attributes.get("time"), f"{pointer}/time")
        value = attributes.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            errors.append(invalid_object("'value' must be a number.", f"{pointer}/value"))
        return errors

    def _event_time_errors(self, raw: Any, pointer: str) -> list[dict[str, Any]]:
        if raw is None:
            return []
        try:
            moment = parse_datetime(raw) if isinstance(raw, str) else None
        except ValueError:
            moment = None
        if moment is None:
            return [invalid_object(f"'{raw}' is not a valid datetime.", pointer)]
        if not EPOCH_1990 < moment <= self.clock.now() + YEAR_SECONDS:
            return [
                invalid_object(
                    "The time must be after 1990 and at most 1 year in the future.", pointer
                )
            ]
        return []

    def _event_profile_errors(
        self, profile_data: Any, pointer: str, meta_inside: bool
    ) -> list[dict[str, Any]]:
        """An event's profile: single events carry `meta` inside attributes, bulk ones beside them."""
        if not isinstance(profile_data, dict) or profile_data.get("type") != "profile":
            return [invalid_object("A profile of type 'profile' is required.", pointer)]
        allowed = EVENT_PROFILE_ATTRIBUTES | ({"meta"} if meta_inside else set())
        resource_keys = {"type", "id", "attributes"} | (set() if meta_inside else {"meta"})
        errors = [
            invalid_object(
                f"'{name}' is not a valid field for the resource 'profile'.", f"{pointer}/{name}"
            )
            for name in profile_data
            if name not in resource_keys
        ]
        attributes = profile_data.get("attributes") or {}
        errors += attribute_errors(attributes, f"{pointer}/attributes", frozenset(allowed))
        if not errors and not profile_data.get("id") and not has_identifier(attributes):
            errors.append(
                invalid_object(
                    "A profile identifier (id, email, phone_number or external_id) is required.",
                    f"{pointer}/attributes",
                )
            )
        return errors

    def _event_profile(
        self, profile_id: str | None, attributes: dict[str, Any], meta: Any
    ) -> Profile:
        attributes = {k: v for k, v in attributes.items() if k not in ("anonymous_id", "_kx")}
        profile, _ = self._upsert(profile_id, attributes, meta)
        return profile

    def _store_event(self, attributes: dict[str, Any], profile: Profile) -> Event | None:
        raw_time = attributes.get("time")
        moment = parse_datetime(raw_time) if raw_time else self.clock.now()
        name = attributes["metric"]["data"]["attributes"]["name"]
        return self._record_event(
            name,
            profile,
            moment,
            dict(attributes["properties"]),
            attributes.get("value"),
            attributes.get("value_currency"),
            attributes.get("unique_id"),
        )

    def _bulk_create_events(self, request: Request) -> Response:
        data = self._data(request, "event-bulk-create-job")
        pointer = "/data/attributes/events-bulk-create/data"
        entries = ((data.get("attributes") or {}).get("events-bulk-create") or {}).get("data")
        if not isinstance(entries, list) or not entries:
            raise invalid("'events-bulk-create' needs at least one entry.", pointer)
        errors = [
            error
            for index, entry in enumerate(entries)
            for error in self._bulk_entry_errors(entry, f"{pointer}/{index}")
        ]
        if errors:
            raise ApiError(400, errors)
        if sum(len(entry["attributes"]["events"]["data"]) for entry in entries) > MAX_BULK_EVENTS:
            raise invalid(f"At most {MAX_BULK_EVENTS} events are allowed per request.", pointer)
        self._refuse_repeated_unique_ids(entries, pointer)
        for (
            entry
        ) in entries:  # a profile conflict refuses the whole request before anything is stored
            profile_data = entry["attributes"]["profile"]["data"]
            self._resolve(profile_data.get("id"), profile_data.get("attributes") or {})
        if self.jobs_never_finish:
            return Response(202, None, JSONAPI)
        for entry in entries:
            profile_data = entry["attributes"]["profile"]["data"]
            profile = self._event_profile(
                profile_data.get("id"),
                dict(profile_data.get("attributes") or {}),
                profile_data.get("meta"),
            )
            for event in entry["attributes"]["events"]["data"]:
                self._store_event(event["attributes"], profile)
        return Response(202, None, JSONAPI)

    def _bulk_entry_errors(self, entry: Any, pointer: str) -> list[dict[str, Any]]:
        attributes = entry.get("attributes") if isinstance(entry, dict) else None
        if not isinstance(attributes, dict):
            return [invalid_object("'attributes' is a required field.", f"{pointer}/attributes")]
        profile_data = (attributes.get("profile") or {}).get("data")
        errors = self._event_profile_errors(
            profile_data, f"{pointer}/attributes/profile/data", meta_inside=False
        )
        events = (attributes.get("events") or {}).get("data")
        if not isinstance(events, list) or not events:
            return errors + [
                invalid_object("'events' needs at least one event.", f"{pointer}/attributes/events")
            ]
        for index, event in enumerate(events):
            event_pointer = f"{pointer}/attributes/events/data/{index}/attributes"
            event_attributes = event.get("attributes") if isinstance(event, dict) else None
            if not isinstance(event_attributes, dict):
                errors.append(invalid_object("'attributes' is a required field.", event_pointer))
            else:
                errors += self._event_errors(event_attributes, event_pointer)
        return errors

    def _refuse_repeated_unique_ids(self, entries: list[dict[str, Any]], pointer: str) -> None:
        """Spec: a unique_id repeated for one profile and metric fails the whole bulk request."""
        seen: set[tuple] = set()
        for index, entry in enumerate(entries):
            person = self._person_key(entry["attributes"]["profile"]["data"])
            for number, event in enumerate(entry["attributes"]["events"]["data"]):
                attributes = event["attributes"]
                raw_time = attributes.get("time")
                moment = parse_datetime(raw_time) if raw_time else self.clock.now()
                key = self._event_key(
                    attributes["metric"]["data"]["attributes"]["name"],
                    person,
                    moment,
                    attributes.get("unique_id"),
                )
                if key in seen:
                    raise invalid(
                        f"The unique_id '{key[2]}' is repeated for the same profile and metric.",
                        f"{pointer}/{index}/attributes/events/data/{number}/attributes/unique_id",
                    )
                seen.add(key)

    def _person_key(self, profile_data: dict[str, Any]) -> str:
        """Who an event entry is about: the existing profile, else its first identifier."""
        attributes = profile_data.get("attributes") or {}
        owners = self.profiles.owners(attributes)
        if profile_data.get("id"):
            return profile_data["id"]
        if owners:
            return next(iter(owners.values())).id
        name = next(name for name in IDENTIFIERS if attributes.get(name))
        return f"{name}:{normalized(name, attributes[name])}"

    # ------------------------------------------------------------ events and metrics: reading

    def _get_events(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), EVENT_FILTERS)
        sort_key, descending = self._sort(request, EVENT_SORTS, "datetime")
        matching = (
            e
            for e in self.event_log
            if all(satisfies(e.filter_values(c.field), c) for c in conditions)
        )
        page, links = self._paginate(
            request, matching, sort_key, (200, 1000), descending, EVENTS_PER_PAGE_CAP
        )
        body: dict[str, Any] = {
            "data": [self._event_resource(request, e) for e in page],
            "links": links,
        }
        included = self._event_includes(request, page)
        if included is not None:
            body["included"] = included
        return Response(200, body, JSONAPI)

    def _event_resource(self, request: Request, event: Event) -> dict[str, Any]:
        base = self._base(request)
        event_url = f"{base}/api/events/{event.id}"
        related = {
            "profile": {
                "data": {"type": "profile", "id": event.profile_id},
                "links": {
                    "self": f"{event_url}/relationships/profile/",
                    "related": f"{event_url}/profile/",
                },
            },
            "metric": {
                "data": {"type": "metric", "id": event.metric_id},
                "links": {
                    "self": f"{event_url}/relationships/metric/",
                    "related": f"{event_url}/metric/",
                },
            },
        }
        attributes = {
            "timestamp": int(event.time),
            "event_properties": self._event_properties(event),
            "datetime": iso(event.time),
            "uuid": event.uuid,
        }
        return {
            "type": "event",
            "id": event.id,
            "attributes": attributes,
            "relationships": related,
            "links": {"self": f"{event_url}/"},
        }

    def _event_includes(self, request: Request, events: list[Event]) -> list[dict[str, Any]] | None:
        include = self._query_values(request, "include")
        unknown = include - {"profile", "metric", "attributions"}
        if unknown:
            raise invalid(f"'{sorted(unknown)[0]}' is not a valid include.", parameter="include")
        if not include:
            return None
        included: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            if "profile" in include:
                included[("profile", event.profile_id)] = self._profile_resource(
                    request,
                    self.profiles.by_id[event.profile_id],
                    fields=self._profile_fields(request),
                )
            if "metric" in include:
                included[("metric", event.metric_id)] = self._metric_resource(
                    request, self.metrics[event.metric_id]
                )
        return list(included.values())

    def _metric_resource(self, request: Request, metric: Metric) -> dict[str, Any]:
        return {
            "type": "metric",
            "id": metric.id,
            "attributes": {
                "name": metric.name,
                "created": iso(metric.created),
                "updated": iso(metric.created),
                "integration": dict(metric.integration),
            },
            "links": {"self": f"{self._base(request)}/api/metrics/{metric.id}/"},
        }

    def _get_metrics(self, request: Request) -> Response:
        conditions = parse_filter(request.arg("filter"), METRIC_FILTERS)
        matching = [
            m
            for m in self.metrics.values()
            if all(satisfies([m.integration.get(c.field.split(".")[1])], c) for c in conditions)
        ]
        page, links = self._paginate(request, matching, lambda m: m.id, (200, 200))
        return Response(
            200,
            {"data": [self._metric_resource(request, m) for m in page], "links": links},
            JSONAPI,
        )

    def _get_metric(self, request: Request) -> Response:
        metric = self.metrics.get(request.params["metric_id"])
        if metric is None:
            raise not_found_error(f"A metric with id {request.params['metric_id']} does not exist.")
        return Response(200, {"data": self._metric_resource(request, metric)}, JSONAPI)

    # ------------------------------------------------------------ consent endpoints

    def _consent_rows(
        self, request: Request, job_type: str, maximum: int
    ) -> tuple[dict[str, Any], list[Any]]:
        data = self._data(request, job_type)
        rows = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(rows, list) or not 1 <= len(rows) <= maximum:
            raise invalid(
                f"Between 1 and {maximum} profiles are allowed per request.",
                "/data/attributes/profiles/data",
            )
        return data, rows

    def _consent_list(self, data: dict[str, Any]) -> KlaviyoList | None:
        list_id = ((((data.get("relationships") or {}).get("list") or {}).get("data")) or {}).get(
            "id"
        )
        if list_id is None:
            return None
        if list_id not in self.lists:
            raise invalid(f"List not found with id {list_id}", "/data/relationships/list/data/id")
        return self.lists[list_id]

    def _bulk_subscribe(self, request: Request) -> Response:
        data, rows = self._consent_rows(
            request, "profile-subscription-bulk-create-job", MAX_SUBSCRIBE
        )
        attributes = data.get("attributes") or {}
        historical = attributes.get("historical_import") is True
        klaviyo_list = self._consent_list(data)
        errors = [
            error
            for index, row in enumerate(rows)
            for error in self._subscribe_row_errors(index, row, historical)
        ]
        if errors:
            raise ApiError(400, errors)
        if self.jobs_never_finish:
            return Response(202, None, JSONAPI)
        for row in rows:
            self._subscribe_row(row, historical, klaviyo_list, attributes.get("custom_source"))
        return Response(202, None, JSONAPI)

    def _subscribe_row_errors(self, index: int, row: Any, historical: bool) -> list[dict[str, Any]]:
        pointer = f"/data/attributes/profiles/data/{index}/attributes"
        attributes = row.get("attributes") if isinstance(row, dict) else None
        errors = attribute_errors(attributes, pointer, SUBSCRIBE_ATTRIBUTES)
        if errors:
            return errors
        if not (attributes.get("email") or attributes.get("phone_number") or row.get("id")):
            errors.append(invalid_object("An email or phone_number is required.", pointer))
        marketing = ((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing")
        if marketing is not None:
            errors += self._consent_errors(
                marketing, f"{pointer}/subscriptions/email/marketing", historical
            )
        return errors

    def _consent_errors(
        self, marketing: Any, pointer: str, historical: bool
    ) -> list[dict[str, Any]]:
        if not isinstance(marketing, dict) or marketing.get("consent") != "SUBSCRIBED":
            return [
                invalid_object(
                    "The only supported consent value is 'SUBSCRIBED'.", f"{pointer}/consent"
                )
            ]
        consented_at = marketing.get("consented_at")
        if consented_at is not None and not historical:
            return [
                invalid_object(
                    "'consented_at' may only be set with historical_import.",
                    f"{pointer}/consented_at",
                )
            ]
        if historical and consented_at is None:
            return [
                invalid_object(
                    "'consented_at' is required with historical_import.", f"{pointer}/consented_at"
                )
            ]
        if historical and (
            self._event_time_errors(consented_at, "")
            or parse_datetime(consented_at) > self.clock.now()
        ):
            return [
                invalid_object(
                    "'consented_at' must be a datetime in the past.", f"{pointer}/consented_at"
                )
            ]
        return []

    def _subscribe_row(
        self,
        row: dict[str, Any],
        historical: bool,
        klaviyo_list: KlaviyoList | None,
        source: str | None,
    ) -> None:
        attributes = row["attributes"]
        marketing = ((attributes.get("subscriptions") or {}).get("email") or {}).get("marketing")
        profile = self._consent_profile(row)
        if marketing is None:
            return
        if klaviyo_list and klaviyo_list.opt_in_process == "double_opt_in" and not historical:
            return  # waits for the person to confirm; nothing changes yet
        consented_at = parse_datetime(marketing["consented_at"]) if historical else self.clock.now()
        self._subscribe(
            profile, consented_at, "API", source, klaviyo_list.id if klaviyo_list else None
        )

    def _consent_profile(self, row: dict[str, Any]) -> Profile:
        """The profile a consent row names (id, email, then phone), created when unknown."""
        attributes = row["attributes"]
        profile = (
            self.profiles.get(row.get("id"))
            or self.profiles.find("email", attributes.get("email"))
            or self.profiles.find("phone_number", attributes.get("phone_number"))
        )
        if profile is None:
            profile = self._new_profile()
            self._apply_attributes(
                profile,
                {k: attributes.get(k) for k in ("email", "phone_number") if attributes.get(k)},
            )
        return profile

    def _bulk_unsubscribe(self, request: Request) -> Response:
        data, rows = self._consent_rows(
            request, "profile-subscription-bulk-delete-job", MAX_UNSUBSCRIBE
        )
        klaviyo_list = self._consent_list(data)
        errors = [
            error
            for index, row in enumerate(rows)
            for error in self._unsubscribe_row_errors(index, row)
        ]
        if errors:
            raise ApiError(400, errors)
        if self.jobs_never_finish:
            return Response(202, None, JSONAPI)
        now = self.clock.now()
        for row in rows:
            profile = self._consent_profile(row)
            if klaviyo_list and profile.id in klaviyo_list.members:
                self._unsubscribe_from_list(profile, klaviyo_list.id, now)
            else:
                self._suppress(profile, now, "UNSUBSCRIBE", "API")
        return Response(202, None, JSONAPI)

    def _unsubscribe_row_errors(self, index: int, row: Any) -> list[dict[str, Any]]:
        pointer = f"/data/attributes/profiles/data/{index}/attributes"
        attributes = row.get("attributes") if isinstance(row, dict) else None
        errors = attribute_errors(
            attributes, pointer, SUBSCRIBE_ATTRIBUTES - {"age_gated_date_of_birth"}
        )
        if errors:
            return errors
        if not (attributes.get("email") or attributes.get("phone_number")):
            return [invalid_object("An email or phone_number is required.", pointer)]
        marketing = ((attributes.get("subscriptions") or {}).get("email") or {}).get(
            "marketing"
        ) or {}
        if marketing.get("consent") != "UNSUBSCRIBED":
            return [
                invalid_object(
                    "The only supported consent value is 'UNSUBSCRIBED'.",
                    f"{pointer}/subscriptions/email/marketing/consent",
                )
            ]
        return []


class _InjectedResponse(Exception):
    """A canned response from `fail_next`, carried out of `before`."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


@dataclass
class _Keyed:
    """A record with an explicit sort key, for paging lists that keep insertion order."""

    id: str
    key: str
    item: Any


def merge_into(target: dict[str, Any], value: Any) -> bool:
    """Per-key update of a dict attribute; None clears it (the pessimistic reading). True if changed."""
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


def list_filter_values(klaviyo_list: KlaviyoList, name: str) -> list[Any]:
    return [getattr(klaviyo_list, name)]


def member_filter_values(profile: Profile, joined: float, name: str) -> list[Any]:
    return [joined] if name == "joined_group_at" else profile.filter_values(name)


def latest(entries: list[dict[str, Any]]) -> float | None:
    return max((entry["timestamp"] for entry in entries), default=None)


PROFILE_SORTS: dict[str, Callable[[Any], str]] = {
    "id": lambda p: p.id,
    "created": lambda p: sort_text(p.created),
    "updated": lambda p: sort_text(p.updated),
    "email": lambda p: normalized("email", p.fields.get("email") or "~"),
    f"{SUPPRESSION}.timestamp": lambda p: sort_text(latest(p.suppressions)),
    f"{LIST_SUPPRESSIONS}.timestamp": lambda p: sort_text(latest(p.list_suppressions)),
}
EVENT_SORTS: dict[str, Callable[[Any], str]] = {
    "datetime": lambda e: sort_text(e.time),
    "timestamp": lambda e: sort_text(e.time),
}
LIST_SORTS: dict[str, Callable[[Any], str]] = {
    "id": lambda item: item.id,
    "name": lambda item: item.name,
    "created": lambda item: sort_text(item.created),
    "updated": lambda item: sort_text(item.updated),
}
