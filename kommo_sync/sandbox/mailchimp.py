"""A local Mailchimp Marketing API v3 (served at /3.0/...) for tests, the demo and benchmarks.

In memory: audiences with members keyed by subscriber hash, merge fields, tags (static
segments), campaigns with open/click activity, and /batches jobs that run on the injected clock.
It reproduces the vendor quirks from shared/api/mailchimp.md: problem+json errors, the
10-simultaneous-connections 429, the consent (compliance state) rules, fake-email rejections,
count defaulting to 10, sync_tags wiping tags, tag-search prefix matching and the tar.gz batch
archive. Where the notes mark a behaviour UNCONFIRMED, the sandbox does the pessimistic variant.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import itertools
import json
import random
import re
import tarfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kommo_sync.clock import Clock
from kommo_sync.sandbox.server import App, Handler, Request, Response

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
DEFAULT_MERGE_FIELDS = (
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


@dataclass
class Member:
    email_address: str
    status: str
    unique_email_id: str
    contact_id: str
    web_id: int
    last_changed: float
    timestamp_opt: float | None
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: dict[int, float] = field(default_factory=dict)  # tag id -> date added
    unsubscribe_reason: str = ""
    email_type: str = "html"
    language: str = ""
    vip: bool = False

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)


@dataclass
class Segment:
    id: int
    name: str
    created_at: float
    updated_at: float
    member_ids: set[str] = field(default_factory=set)


@dataclass
class Audience:
    id: str
    name: str
    web_id: int
    created_at: float
    members: dict[str, Member] = field(default_factory=dict)
    merge_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    segments: dict[int, Segment] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)  # casefolded tag name -> id
    forgotten: set[str] = field(default_factory=set)


@dataclass
class Campaign:
    id: str
    title: str
    list_id: str
    web_id: int
    create_time: float
    send_time: float
    activity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # email -> events


@dataclass
class Batch:
    id: str
    operations: list[dict[str, Any]]
    submitted_at: float
    starts_at: float
    finishes_at: float
    results: list[dict[str, Any]] | None = None
    archive: bytes = b""

    def progress(self, now: float) -> tuple[str, int]:
        """(status, finished_operations) at `now`; batches run one after another."""
        total = len(self.operations)
        if self.results is not None:
            return "finished", len(self.results)
        if now < self.starts_at:
            return "pending", 0
        share = (now - self.starts_at) / max(self.finishes_at - self.starts_at, 1e-9)
        return "started", min(total, int(total * share))

    @property
    def errored(self) -> int:
        """Operations whose status code is not 200 (the docs: 'returned a non-200 response')."""
        return sum(1 for result in self.results or [] if result["status_code"] != 200)


def _page_args(request: Request) -> tuple[int, int]:
    """count (default 10, silently capped at 1000) and offset."""
    try:
        count = int(request.arg("count", str(DEFAULT_COUNT)) or DEFAULT_COUNT)
        offset = int(request.arg("offset", "0") or 0)
    except ValueError:
        raise field_error("count", "count and offset must be integers.") from None
    if count < 0 or offset < 0:
        raise field_error("count", "count and offset must not be negative.")
    return min(count, MAX_COUNT), offset


def _time_arg(request: Request, name: str) -> float | None:
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


def _flag(request: Request, name: str) -> bool:
    return (request.arg(name) or "").lower() == "true"


def _json_object(request: Request) -> dict[str, Any]:
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


def _require(body: dict[str, Any], names: Iterable[str]) -> None:
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise invalid(
            errors=[
                {"field": name, "message": f"Required fields were not provided: {name}"}
                for name in missing
            ],
            field_name=missing[0],
        )


def _check_status_value(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    value = body.get(name)
    if value is not None and value not in allowed:
        raise field_error(
            name, "Data presented is not one of the accepted values: " + ", ".join(allowed) + "."
        )


def _select_fields(value: Any, paths: list[list[str]]) -> Any:
    """Keep only the dotted `fields` paths (lists are walked through)."""
    if isinstance(value, list):
        return [_select_fields(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        rests = [path[1:] for path in paths if path[0] == key]
        if rests:
            kept[key] = item if any(not rest for rest in rests) else _select_fields(item, rests)
    return kept


def _exclude_fields(value: Any, paths: list[list[str]]) -> Any:
    """Drop the dotted `exclude_fields` paths."""
    if isinstance(value, list):
        return [_exclude_fields(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        rests = [path[1:] for path in paths if path[0] == key]
        if not any(not rest for rest in rests):
            kept[key] = _exclude_fields(item, rests) if rests else item
    return kept


def _dotted_paths(request: Request, name: str) -> list[list[str]]:
    joined = ",".join(request.query.get(name, []))
    return [part.strip().split(".") for part in joined.split(",") if part.strip()]


def _truncate_bytes(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


class MailchimpSandbox(App):
    """Mailchimp Marketing API v3 in memory; see the module docstring for the quirks."""

    def __init__(
        self,
        clock: Clock | None = None,
        api_key: str = "sandboxkey0000000000000000000000-us1",
        max_connections: int = 10,
    ):
        super().__init__(clock)
        self.api_key = api_key
        self.max_connections = max_connections
        self.bodiless_throttle = False
        # Test switches: collections ignore `offset`; /batches jobs never finish, or finish at once.
        self.ignore_offset = False
        self.batches_never_finish = False
        self.jobs_finish_at_once = False
        self.in_flight = 0
        self.peak_in_flight = 0
        self.audiences: dict[str, Audience] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.batches: dict[str, Batch] = {}
        self._batch_queue: deque[Batch] = deque()
        self._last_batch_finish = 0.0
        self._failures: deque[tuple[int, Any]] = deque()
        self._slots = threading.Lock()
        self._local = threading.local()
        self._ids = itertools.count(1)
        self._batch_order = random.Random(11)
        self._register_routes()

    # ----- seeding and inspection hooks (tests, demo) -----

    def add_list(self, name: str, list_id: str | None = None) -> str:
        """Create an audience with the default merge fields of a new Mailchimp audience."""
        with self.lock:
            number = next(self._ids)
            list_id = list_id or self._make_id("list", number)
            audience = Audience(list_id, name, number, self.clock.now())
            for order, (tag, label, kind, options) in enumerate(DEFAULT_MERGE_FIELDS, start=2):
                self._store_merge_field(
                    audience,
                    {
                        "tag": tag,
                        "name": label,
                        "type": kind,
                        "options": dict(options),
                        "display_order": order,
                    },
                )
            self.audiences[list_id] = audience
            return list_id

    def add_merge_field(
        self, list_id: str, tag: str, name: str, field_type: str = "text", required: bool = False
    ) -> dict[str, Any]:
        with self.lock:
            return self._store_merge_field(
                self._audience_or_raise(list_id),
                {"tag": tag, "name": name, "type": field_type, "required": required},
            )

    def add_tag(self, list_id: str, name: str) -> int:
        """Create (or find) a tag; returns its id, which is also its static segment id."""
        with self.lock:
            return self._tag_named(self._audience_or_raise(list_id), name, create=True).id

    def add_member(
        self,
        list_id: str,
        email: str,
        status: str = "subscribed",
        merge_fields: dict[str, Any] | None = None,
        tags: Iterable[str] = (),
        last_changed: float | None = None,
    ) -> dict[str, Any]:
        """Seed a member without the API's validation (any address, any merge field)."""
        with self.lock:
            audience = self._audience_or_raise(list_id)
            member = self._new_member(audience, email, status)
            member.merge_fields.update(merge_fields or {})
            if last_changed is not None:
                member.last_changed = last_changed
            audience.members[member.id] = member
            for name in tags:
                self._tag_member(audience, member, name)
            return self._member_json(audience, member)

    def unsubscribe(
        self,
        list_id: str,
        email: str,
        at: float | None = None,
        reason: str = "I no longer want to receive these emails",
    ) -> dict[str, Any]:
        return self._set_opted_out(list_id, email, "unsubscribed", at, reason)

    def clean(
        self, list_id: str, email: str, at: float | None = None, reason: str = "hard bounce"
    ) -> dict[str, Any]:
        return self._set_opted_out(list_id, email, "cleaned", at, reason)

    def forget(self, list_id: str, email: str) -> None:
        """GDPR delete-permanent: the member goes, and re-adding the address is refused."""
        with self.lock:
            self._forget(self._audience_or_raise(list_id), subscriber_hash(email))

    def member(self, list_id: str, email: str) -> dict[str, Any] | None:
        with self.lock:
            self._settle_batches()
            audience = self._audience_or_raise(list_id)
            member = audience.members.get(subscriber_hash(email))
            return self._member_json(audience, member) if member else None

    def members(self, list_id: str) -> list[dict[str, Any]]:
        with self.lock:
            self._settle_batches()
            audience = self._audience_or_raise(list_id)
            return [self._member_json(audience, member) for member in audience.members.values()]

    def member_tags(self, list_id: str, email: str) -> set[str]:
        with self.lock:
            self._settle_batches()
            audience = self._audience_or_raise(list_id)
            member = audience.members.get(subscriber_hash(email))
            return {tag["name"] for tag in self._tag_list(audience, member)} if member else set()

    def add_campaign(self, title: str, list_id: str, send_time: float | None = None) -> str:
        """A regular campaign; status 'sent' once send_time (default: now) has passed."""
        with self.lock:
            self._audience_or_raise(list_id)
            number = next(self._ids)
            now = self.clock.now()
            campaign = Campaign(
                self._make_id("campaign", number),
                title,
                list_id,
                number,
                now,
                now if send_time is None else send_time,
            )
            self.campaigns[campaign.id] = campaign
            return campaign.id

    def add_activity(
        self,
        campaign_id: str,
        email: str,
        action: str,
        at: float | None = None,
        url: str | None = None,
    ) -> None:
        """Record an open, click or bounce, served by GET /reports/{id}/email-activity."""
        if action not in ("open", "click", "bounce"):
            raise ValueError(f"unknown activity action {action!r}")
        event = {
            "action": action,
            "timestamp": self.clock.now() if at is None else at,
            "url": url or "",
            "type": "hard" if action == "bounce" else "",
        }
        with self.lock:
            self.campaigns[campaign_id].activity.setdefault(email.strip(), []).append(event)

    def fail_next(self, n: int, status: int, body: Any = None) -> None:
        """The next `n` API requests fail with `status`.

        body None: the usual problem+json for that status (502: an HTML page, like the CDN);
        a dict: that JSON; a str or bytes (e.g. ""): sent raw, as the bodiless 429/403 under load.
        """
        with self.lock:
            self._failures.extend([(status, body)] * n)

    # ----- plumbing: routes, connections, auth, injected failures -----

    def _register_routes(self) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/lists", self._get_lists),
            ("GET", "/lists/{list_id}", self._get_list),
            ("POST", "/lists/{list_id}", self._batch_subscribe),
            ("GET", "/lists/{list_id}/members", self._get_members),
            ("POST", "/lists/{list_id}/members", self._post_member),
            ("GET", "/lists/{list_id}/members/{hash}", self._get_member),
            ("PUT", "/lists/{list_id}/members/{hash}", self._put_member),
            ("PATCH", "/lists/{list_id}/members/{hash}", self._patch_member),
            (
                "POST",
                "/lists/{list_id}/members/{hash}/actions/delete-permanent",
                self._delete_permanent,
            ),
            ("GET", "/lists/{list_id}/members/{hash}/tags", self._get_member_tags),
            ("POST", "/lists/{list_id}/members/{hash}/tags", self._post_member_tags),
            ("GET", "/lists/{list_id}/merge-fields", self._get_merge_fields),
            ("POST", "/lists/{list_id}/merge-fields", self._post_merge_field),
            ("GET", "/lists/{list_id}/segments", self._get_segments),
            ("POST", "/lists/{list_id}/segments", self._post_segment),
            ("GET", "/lists/{list_id}/segments/{segment_id}", self._get_segment),
            ("POST", "/lists/{list_id}/segments/{segment_id}", self._post_segment_members),
            ("DELETE", "/lists/{list_id}/segments/{segment_id}", self._delete_segment),
            ("GET", "/lists/{list_id}/tag-search", self._tag_search),
            ("GET", "/campaigns", self._get_campaigns),
            ("GET", "/reports/{campaign_id}/email-activity", self._get_email_activity),
            ("POST", "/batches", self._post_batch),
            ("GET", "/batches", self._get_batches),
            ("GET", "/batches/{batch_id}", self._get_batch),
            ("DELETE", "/batches/{batch_id}", self._delete_batch),
        ]
        for method, pattern, handler in routes:
            self.route(method, API_ROOT + pattern, self._api(handler))
        self.route("GET", ARCHIVE_PREFIX + "{archive}", self._download_archive)

    def _api(self, handler: Handler) -> Handler:
        """Run a handler under the state lock; ApiError → problem+json; apply fields filters."""

        def wrapped(request: Request) -> Response:
            try:
                with self.lock:
                    response = handler(request)
            except ApiError as error:
                return error.response()
            return self._filter_fields(request, response)

        return wrapped

    def _filter_fields(self, request: Request, response: Response) -> Response:
        if response.status != 200 or not isinstance(response.body, dict):
            return response
        if request.query.get("fields"):
            response.body = _select_fields(response.body, _dotted_paths(request, "fields"))
        elif request.query.get("exclude_fields"):
            response.body = _exclude_fields(response.body, _dotted_paths(request, "exclude_fields"))
        return response

    def dispatch(self, request: Request) -> Response:
        """Count requests in flight around the whole exchange (latency included)."""
        if request.path.startswith(ARCHIVE_PREFIX):
            return super().dispatch(request)
        admitted = self._take_slot()
        self._local.throttled = not admitted
        try:
            return super().dispatch(request)
        finally:
            if admitted:
                with self._slots:
                    self.in_flight -= 1

    def _take_slot(self) -> bool:
        with self._slots:
            if self.in_flight >= self.max_connections:
                return False
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            return True

    def before(self, request: Request) -> Response | None:
        if request.path.startswith(ARCHIVE_PREFIX):
            return None
        if getattr(self._local, "throttled", False):
            return self._throttled()
        injected = self._injected_failure()
        if injected is not None:
            return injected
        refused = self._auth_failure(request)
        if refused is not None:
            return refused
        with self.lock:
            self._settle_batches()
        return None

    def _throttled(self) -> Response:
        if self.bodiless_throttle:
            return Response(429, content_type="text/html", raw=b"")
        return problem(
            429,
            "Too Many Requests",
            f"You have exceeded the limit of {self.max_connections} simultaneous connections.",
        )

    def _injected_failure(self) -> Response | None:
        with self.lock:
            if not self._failures:
                return None
            status, body = self._failures.popleft()
        return self.failure_response(status, body)

    def failure_response(self, status: int, body: Any) -> Response:
        if isinstance(body, dict):
            return Response(status, body, PROBLEM_CONTENT_TYPE)
        if isinstance(body, (str, bytes)):
            raw = body.encode("utf-8") if isinstance(body, str) else body
            return Response(status, content_type="text/html", raw=raw)
        if status == 502:
            return Response(
                502,
                content_type="text/html",
                raw=b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            )
        return problem(status, DEFAULT_TITLES.get(status, "Error"), "An injected sandbox failure.")

    def _auth_failure(self, request: Request) -> Response | None:
        header = (request.header("authorization") or "").strip()
        if not header:
            return problem(401, "API Key Missing", "Your request did not include an API key.")
        if self._presented_key(header) != self.api_key:
            return problem(
                401,
                "API Key Invalid",
                "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
            )
        return None

    @staticmethod
    def _presented_key(header: str) -> str:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "bearer":
            return credential.strip()
        if scheme.lower() != "basic":
            return ""
        try:
            decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[2]

    def not_found(self, request: Request, method_mismatch: bool = False) -> Response:
        if method_mismatch:
            return problem(
                405,
                "Method Not Allowed",
                "The requested method and resource are "
                "not compatible. See the Allow header for this resource's available "
                "methods.",
            )
        return problem(404, "Resource Not Found", NOT_FOUND_DETAIL)

    def _make_id(self, kind: str, number: int) -> str:
        return hashlib.md5(f"{kind}-{number}".encode()).hexdigest()[:10]

    def _page(self, items: list[Any], request: Request) -> list[Any]:
        count, offset = _page_args(request)
        start = 0 if self.ignore_offset else offset
        return items[start : start + count]

    # ----- lookups -----

    def _audience_or_raise(self, list_id: str) -> Audience:
        audience = self.audiences.get(list_id)
        if audience is None:
            raise KeyError(f"no audience {list_id!r}")
        return audience

    def _audience(self, request: Request) -> Audience:
        audience = self.audiences.get(request.params["list_id"])
        if audience is None:
            raise not_found()
        return audience

    @staticmethod
    def _hash_param(request: Request) -> str:
        """The path's subscriber hash; an email address there is accepted too (as the spec says)."""
        value = unquote(request.params["hash"])
        return subscriber_hash(value) if "@" in value else value

    def _member_or_404(self, audience: Audience, request: Request) -> Member:
        member = audience.members.get(self._hash_param(request))
        if member is None:
            raise not_found()
        return member

    # ----- JSON shapes -----

    def _member_json(self, audience: Audience, member: Member) -> dict[str, Any]:
        tags = self._tag_list(audience, member)
        merge = {tag: member.merge_fields.get(tag, "") for tag in audience.merge_fields}
        body: dict[str, Any] = {
            "id": member.id,
            "email_address": member.email_address,
            "unique_email_id": member.unique_email_id,
            "contact_id": member.contact_id,
            "full_name": " ".join(str(merge.get(t) or "") for t in ("FNAME", "LNAME")).strip(),
            "web_id": member.web_id,
            "email_type": member.email_type,
            "status": member.status,
            "consents_to_one_to_one_messaging": True,
            "merge_fields": merge,
            "interests": {},
            "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": "",
            "timestamp_signup": "",
            "ip_opt": "",
            "timestamp_opt": iso(member.timestamp_opt),
            "member_rating": 2,
            "last_changed": iso(member.last_changed),
            "language": member.language,
            "vip": member.vip,
            "email_client": "",
            "location": {
                "latitude": 0,
                "longitude": 0,
                "gmtoff": 0,
                "dstoff": 0,
                "country_code": "",
                "timezone": "",
                "region": "",
            },
            "marketing_permissions": [],
            "source": "API - Generic",
            "tags_count": len(tags),
            "tags": [{"id": tag["id"], "name": tag["name"]} for tag in tags[:MEMBER_TAGS_SHOWN]],
            "list_id": audience.id,
        }
        if member.status in ("unsubscribed", "cleaned") and member.unsubscribe_reason:
            body["unsubscribe_reason"] = member.unsubscribe_reason
        return body

    def _tag_list(self, audience: Audience, member: Member) -> list[dict[str, Any]]:
        ordered = sorted(member.tags.items(), key=lambda item: (item[1], item[0]))
        return [
            {"id": tag_id, "name": audience.segments[tag_id].name, "date_added": iso(added)}
            for tag_id, added in ordered
        ]

    def _segment_json(
        self, audience: Audience, segment: Segment, included: tuple[str, ...] = ("subscribed",)
    ) -> dict[str, Any]:
        count = sum(
            1 for member_id in segment.member_ids if audience.members[member_id].status in included
        )
        return {
            "id": segment.id,
            "name": segment.name,
            "member_count": count,
            "type": "static",
            "created_at": iso(segment.created_at),
            "updated_at": iso(segment.updated_at),
            "list_id": audience.id,
        }

    def _list_json(self, audience: Audience) -> dict[str, Any]:
        counts = {status: 0 for status in STATUSES}
        for member in audience.members.values():
            counts[member.status] = counts.get(member.status, 0) + 1
        return {
            "id": audience.id,
            "web_id": audience.web_id,
            "name": audience.name,
            "date_created": iso(audience.created_at),
            "double_optin": False,
            "email_type_option": False,
            "visibility": "prv",
            "stats": {
                "member_count": counts["subscribed"],
                "unsubscribe_count": counts["unsubscribed"],
                "cleaned_count": counts["cleaned"],
                "merge_field_count": len(audience.merge_fields),
            },
        }

    # ----- members: creation, updates, the consent rules -----

    def _new_member(self, audience: Audience, email: str, status: str) -> Member:
        now = self.clock.now()
        number = next(self._ids)
        key = f"{audience.id}:{email.strip().lower()}".encode()
        return Member(
            email.strip(),
            status,
            hashlib.md5(key).hexdigest()[:10],
            hashlib.sha1(key).hexdigest()[:32],
            number,
            int(now),
            now if status in ("subscribed", "pending") else None,
        )

    def _create_member(
        self,
        audience: Audience,
        email: str,
        status: str,
        body: dict[str, Any],
        skip_merge_validation: bool,
    ) -> Member:
        """Validate and add a new member; tags in the body apply (they are create-only)."""
        member_id = subscriber_hash(email)
        if member_id in audience.forgotten:
            raise forgotten_error(email)
        if looks_fake(email):
            raise fake_email_error(email)
        values = self._valid_merge_values(audience, body.get("merge_fields"))
        if not skip_merge_validation:
            self._check_required_merge_fields(audience, values)
        member = self._new_member(audience, email, status)
        member.merge_fields.update(values)
        self._apply_scalars(member, body)
        audience.members[member_id] = member
        for name in body.get("tags") or []:
            if isinstance(name, str) and name.strip():
                self._tag_member(audience, member, name)
        return member

    def _update_member(self, audience: Audience, member: Member, body: dict[str, Any]) -> None:
        """Validate everything first, then apply; last_changed moves only on a real change."""
        values = self._valid_merge_values(audience, body.get("merge_fields"))
        new_status = body.get("status")
        if new_status:
            self._check_transition(member, new_status)
        new_email = (body.get("email_address") or member.email_address).strip()
        renamed = subscriber_hash(new_email) != member.id
        if renamed:
            self._check_rename_target(audience, new_email)
        changed = self._apply_merge_values(member, values)
        changed = self._apply_status(member, new_status) or changed
        changed = self._apply_scalars(member, body) or changed
        if renamed:
            self._rename(audience, member, new_email)
        elif new_email != member.email_address:
            member.email_address = new_email
        if changed or renamed:
            member.last_changed = int(self.clock.now())

    @staticmethod
    def _check_transition(member: Member, new_status: str) -> None:
        """Opted-out members cannot be (re)subscribed; unsubscribed ones may go 'pending'."""
        blocked = {"unsubscribed": ("subscribed",), "cleaned": ("subscribed", "pending")}
        if new_status in blocked.get(member.status, ()):
            raise compliance_error(member.email_address)

    def _apply_status(self, member: Member, new_status: str | None) -> bool:
        if not new_status or new_status == member.status:
            return False
        member.status = new_status
        if new_status == "unsubscribed":
            member.unsubscribe_reason = DEFAULT_UNSUBSCRIBE_REASON
        if new_status in ("subscribed", "pending"):
            member.timestamp_opt = self.clock.now()
            member.unsubscribe_reason = ""
        return True

    @staticmethod
    def _apply_merge_values(member: Member, values: dict[str, Any]) -> bool:
        changed = any(member.merge_fields.get(tag) != value for tag, value in values.items())
        member.merge_fields.update(values)
        return changed

    @staticmethod
    def _apply_scalars(member: Member, body: dict[str, Any]) -> bool:
        changed = False
        for name in ("email_type", "language", "vip"):
            if name in body and getattr(member, name) != body[name]:
                setattr(member, name, body[name])
                changed = True
        return changed

    @staticmethod
    def _check_rename_target(audience: Audience, new_email: str) -> None:
        new_id = subscriber_hash(new_email)
        if new_id in audience.members:
            raise member_exists_error(new_email)
        if new_id in audience.forgotten:
            raise forgotten_error(new_email)
        if looks_fake(new_email):
            raise fake_email_error(new_email)

    @staticmethod
    def _rename(audience: Audience, member: Member, new_email: str) -> None:
        """Email change: contact_id and unique_email_id stay, the id becomes the new hash."""
        old_id = member.id
        del audience.members[old_id]
        member.email_address = new_email
        audience.members[member.id] = member
        for tag_id in member.tags:
            audience.segments[tag_id].member_ids.discard(old_id)
            audience.segments[tag_id].member_ids.add(member.id)

    def _set_opted_out(
        self, list_id: str, email: str, status: str, at: float | None, reason: str
    ) -> dict[str, Any]:
        with self.lock:
            audience = self._audience_or_raise(list_id)
            member = audience.members[subscriber_hash(email)]
            member.status, member.unsubscribe_reason = status, reason
            member.last_changed = int(self.clock.now() if at is None else at)
            return self._member_json(audience, member)

    @staticmethod
    def _forget(audience: Audience, member_id: str) -> None:
        member = audience.members.pop(member_id, None)
        for tag_id in member.tags if member else ():
            audience.segments[tag_id].member_ids.discard(member_id)
        audience.forgotten.add(member_id)

    # ----- merge fields -----

    def _valid_merge_values(self, audience: Audience, values: Any) -> dict[str, Any]:
        """The body's merge_fields, checked against the list's fields (unknown tags refused)."""
        if values is None:
            return {}
        if not isinstance(values, dict):
            raise field_error(
                "merge_fields", f"Schema describes object, {type(values).__name__} found instead"
            )
        errors, cleaned = [], {}
        for tag, value in values.items():
            merge_field = audience.merge_fields.get(tag)
            message = (
                f"Merge field {tag} does not exist on this audience."
                if merge_field is None
                else self._merge_value_problem(merge_field, value)
            )
            if message:
                errors.append({"field": tag, "message": message})
            else:
                cleaned[tag] = self._normalised_merge_value(merge_field, value)
        if errors:
            raise invalid(MERGE_INVALID, errors, field_name=errors[0]["field"])
        return cleaned

    @staticmethod
    def _merge_value_problem(merge_field: dict[str, Any], value: Any) -> str:
        kind = merge_field["type"]
        if value in (None, ""):
            return ""
        if kind == "address":
            complete = isinstance(value, dict) and all(
                value.get(key) for key in ("addr1", "city", "state", "zip")
            )
            return "" if complete else "Please enter a complete address"
        if isinstance(value, (dict, list)):
            return "Data did not match any of the schemas described in anyOf"
        if kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", str(value)):
            return "Please enter a number"
        choices = merge_field.get("options", {}).get("choices")
        if kind in ("radio", "dropdown") and choices and value not in choices:
            return "Please choose one of the options"
        return ""

    @staticmethod
    def _normalised_merge_value(merge_field: dict[str, Any], value: Any) -> Any:
        """Text values are cut at 255 bytes, as Mailchimp does; null becomes ''."""
        if value is None:
            return ""
        if isinstance(value, str) and merge_field["type"] != "address":
            return _truncate_bytes(value, TEXT_VALUE_BYTES)
        return value

    @staticmethod
    def _check_required_merge_fields(audience: Audience, values: dict[str, Any]) -> None:
        errors = [
            {"field": tag, "message": "Please enter a value"}
            for tag, merge_field in audience.merge_fields.items()
            if merge_field["required"] and values.get(tag) in (None, "")
        ]
        if errors:
            raise invalid(MERGE_INVALID, errors, field_name=errors[0]["field"])

    def _store_merge_field(self, audience: Audience, spec: dict[str, Any]) -> dict[str, Any]:
        merge_id = max((f["merge_id"] for f in audience.merge_fields.values()), default=0) + 1
        tag = spec.get("tag") or f"MMERGE{merge_id}"
        merge_field = {
            "merge_id": merge_id,
            "tag": tag,
            "name": spec["name"],
            "type": spec["type"],
            "required": bool(spec.get("required", False)),
            "default_value": spec.get("default_value", ""),
            "public": bool(spec.get("public", False)),
            "display_order": spec.get("display_order", merge_id + 1),
            "options": dict(spec.get("options") or {}),
            "help_text": spec.get("help_text", ""),
            "list_id": audience.id,
        }
        audience.merge_fields[tag] = merge_field
        return merge_field

    def _check_new_merge_field(self, audience: Audience, body: dict[str, Any]) -> None:
        _require(body, ("name", "type"))
        if body["type"] not in MERGE_TYPES:
            raise field_error(
                "type",
                "Data presented is not one of the accepted values: " + ", ".join(MERGE_TYPES) + ".",
            )
        tag = body.get("tag")
        if tag is not None and not MERGE_TAG_PATTERN.match(str(tag)):
            raise field_error(
                "tag",
                "Merge tags must be 1 to 10 characters: uppercase letters, digits and underscores.",
            )
        if tag == "EMAIL" or tag in audience.merge_fields:
            raise invalid(f'A Merge Field with the tag "{tag}" already exists for this list.')
        if len(audience.merge_fields) >= MERGE_FIELD_LIMIT:
            raise invalid(
                f"This audience already has the maximum of {MERGE_FIELD_LIMIT} merge fields."
            )

    # ----- tags (static segments) -----

    def _tag_named(self, audience: Audience, name: str, create: bool) -> Segment | None:
        """Tag lookup by name, case-insensitive (pessimistic: 'customer' is 'Customer')."""
        tag_id = audience.tag_ids.get(name.strip().casefold())
        if tag_id is not None:
            return audience.segments[tag_id]
        if not create:
            return None
        now = self.clock.now()
        segment = Segment(next(self._ids), name.strip(), now, now)
        audience.segments[segment.id] = segment
        audience.tag_ids[segment.name.casefold()] = segment.id
        return segment

    def _tag_member(self, audience: Audience, member: Member, name: str) -> None:
        segment = self._tag_named(audience, name, create=True)
        self._add_to_segment(member, segment)

    def _add_to_segment(self, member: Member, segment: Segment) -> None:
        if segment.id not in member.tags:
            member.tags[segment.id] = self.clock.now()
            segment.member_ids.add(member.id)
            segment.updated_at = self.clock.now()

    def _remove_from_segment(self, member: Member, segment: Segment) -> None:
        if member.tags.pop(segment.id, None) is not None:
            segment.member_ids.discard(member.id)
            segment.updated_at = self.clock.now()

    def _sync_tags(self, audience: Audience, member: Member, names: list[Any]) -> None:
        """sync_tags=true: the payload's tags replace ALL the member's tags (users' own too)."""
        wanted = {
            self._tag_named(audience, name, create=True).id
            for name in names
            if isinstance(name, str) and name.strip()
        }
        for tag_id in list(member.tags):
            if tag_id not in wanted:
                self._remove_from_segment(member, audience.segments[tag_id])
        for tag_id in wanted:
            self._add_to_segment(member, audience.segments[tag_id])

    # ----- handlers: lists and members -----

    def _get_lists(self, request: Request) -> Response:
        audiences = list(self.audiences.values())
        return Response(
            200,
            {
                "lists": [self._list_json(a) for a in self._page(audiences, request)],
                "total_items": len(audiences),
            },
            JSON_CONTENT_TYPE,
        )

    def _get_list(self, request: Request) -> Response:
        audience = self._audience(request)
        body = self._list_json(audience)
        if request.arg("include_total_contacts") == "true":
            body["stats"]["total_contacts"] = len(
                audience.members
            )  # every status, like the real field
        return Response(200, body, JSON_CONTENT_TYPE)

    def _get_member(self, request: Request) -> Response:
        audience = self._audience(request)
        member = self._member_or_404(audience, request)
        return Response(200, self._member_json(audience, member), JSON_CONTENT_TYPE)

    def _put_member(self, request: Request) -> Response:
        """Upsert. status_if_new applies to new members only; status overwrites (consent rules)."""
        audience = self._audience(request)
        body = _json_object(request)
        _require(body, ("email_address", "status_if_new"))
        _check_status_value(body, "status_if_new", STATUSES)
        _check_status_value(body, "status", STATUSES)
        member = audience.members.get(self._hash_param(request))
        if member is None:
            member = self._create_from_put(audience, request, body)
        else:
            self._update_member(audience, member, body)
        return Response(200, self._member_json(audience, member), JSON_CONTENT_TYPE)

    def _create_from_put(
        self, audience: Audience, request: Request, body: dict[str, Any]
    ) -> Member:
        email = str(body["email_address"])
        if subscriber_hash(email) != self._hash_param(request):
            raise field_error(
                "email_address", "The email address does not match the subscriber hash in the URL."
            )
        status = body.get("status") or body["status_if_new"]
        return self._create_member(
            audience, email, status, body, _flag(request, "skip_merge_validation")
        )

    def _patch_member(self, request: Request) -> Response:
        audience = self._audience(request)
        member = self._member_or_404(audience, request)
        body = _json_object(request)
        _check_status_value(body, "status", STATUSES)
        self._update_member(audience, member, body)
        return Response(200, self._member_json(audience, member), JSON_CONTENT_TYPE)

    def _post_member(self, request: Request) -> Response:
        """Create only: an address already on the audience is 400 Member Exists."""
        audience = self._audience(request)
        body = _json_object(request)
        _require(body, ("email_address", "status"))
        _check_status_value(body, "status", STATUSES)
        email = str(body["email_address"])
        if subscriber_hash(email) in audience.members:
            raise member_exists_error(email)
        member = self._create_member(
            audience, email, body["status"], body, _flag(request, "skip_merge_validation")
        )
        return Response(200, self._member_json(audience, member), JSON_CONTENT_TYPE)

    def _delete_permanent(self, request: Request) -> Response:
        audience = self._audience(request)
        member = self._member_or_404(audience, request)
        self._forget(audience, member.id)
        return Response(204)

    def _get_members(self, request: Request) -> Response:
        audience = self._audience(request)
        members = self._sorted_members(request, self._filtered_members(audience, request))
        return Response(
            200,
            {
                "members": [self._member_json(audience, m) for m in self._page(members, request)],
                "list_id": audience.id,
                "total_items": len(members),
            },
            JSON_CONTENT_TYPE,
        )

    def _filtered_members(self, audience: Audience, request: Request) -> list[Member]:
        """status, since/before_last_changed (strictly after/before), unsubscribed_since."""
        status = request.arg("status")
        if status is not None and status not in STATUSES + ("archived",):
            raise field_error("status", f"{status} is not a valid member status.")
        if request.arg("unsubscribed_since") and status != "unsubscribed":
            raise field_error(
                "unsubscribed_since",
                "unsubscribed_since can only be used with status=unsubscribed.",
            )
        since = _time_arg(request, "since_last_changed")
        before = _time_arg(request, "before_last_changed")
        unsubscribed_since = _time_arg(request, "unsubscribed_since")
        lower = max(filter(None, (since, unsubscribed_since)), default=None)
        return [
            member
            for member in audience.members.values()
            if (status is None or member.status == status)
            and (lower is None or member.last_changed > lower)
            and (before is None or member.last_changed < before)
        ]

    @staticmethod
    def _sorted_members(request: Request, members: list[Member]) -> list[Member]:
        """Insertion order unless sort_field is given (then sort_dir defaults to DESC)."""
        sort_field = request.arg("sort_field")
        if sort_field is None:
            return members
        if sort_field not in ("last_changed", "timestamp_opt", "timestamp_signup"):
            raise field_error("sort_field", f"{sort_field} is not a valid sort field.")
        attribute = "timestamp_opt" if sort_field == "timestamp_signup" else sort_field
        descending = (request.arg("sort_dir") or "DESC").upper() != "ASC"
        return sorted(members, key=lambda m: getattr(m, attribute) or 0, reverse=descending)

    # ----- handlers: member tags -----

    def _get_member_tags(self, request: Request) -> Response:
        audience = self._audience(request)
        tags = self._tag_list(audience, self._member_or_404(audience, request))
        return Response(
            200, {"tags": self._page(tags, request), "total_items": len(tags)}, JSON_CONTENT_TYPE
        )

    def _post_member_tags(self, request: Request) -> Response:
        """204 always; items that are not {name, status} objects are silently ignored (quirk)."""
        audience = self._audience(request)
        member = self._member_or_404(audience, request)
        body = _json_object(request)
        tags = body.get("tags")
        if not isinstance(tags, list):
            raise field_error("tags", "Required fields were not provided: tags")
        for item in tags:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                self._apply_tag_item(audience, member, item["name"], item.get("status"))
        return Response(204)

    def _apply_tag_item(self, audience: Audience, member: Member, name: str, status: Any) -> None:
        if status == "active" and name.strip():
            self._tag_member(audience, member, name)
        elif status == "inactive":
            segment = self._tag_named(audience, name, create=False)
            if segment is not None:
                self._remove_from_segment(member, segment)

    # ----- handlers: batch subscribe POST /lists/{list_id} -----

    def _batch_subscribe(self, request: Request) -> Response:
        audience = self._audience(request)
        body = _json_object(request)
        items = body.get("members")
        self._check_batch_items(items)
        outcome: dict[str, list[Any]] = {"new_members": [], "updated_members": [], "errors": []}
        seen: set[str] = set()
        skip_duplicates = _flag(request, "skip_duplicate_check")
        for item in items:
            if skip_duplicates and subscriber_hash(item["email_address"]) in seen:
                continue
            self._subscribe_one(audience, item, body, request, seen, outcome)
        return Response(
            200,
            {
                **outcome,
                "total_created": len(outcome["new_members"]),
                "total_updated": len(outcome["updated_members"]),
                "error_count": len(outcome["errors"]),
            },
            JSON_CONTENT_TYPE,
        )

    @staticmethod
    def _check_batch_items(items: Any) -> None:
        """Schema checks fail the whole request (pessimistic), not just the one item."""
        if not isinstance(items, list):
            raise field_error("members", "Required fields were not provided: members")
        if len(items) > BULK_LIMIT:
            raise field_error("members", f"You may only send up to {BULK_LIMIT} members per call.")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("email_address"), str):
                raise field_error(
                    f"members.{index}.email_address",
                    "Required fields were not provided: email_address",
                )
            if not (item.get("status") or item.get("status_if_new")):
                raise field_error(
                    f"members.{index}.status",
                    "Required fields were not provided: status or status_if_new",
                )
            _check_status_value(item, "status", BATCH_ITEM_STATUSES)
            _check_status_value(item, "status_if_new", BATCH_ITEM_STATUSES)

    def _subscribe_one(
        self,
        audience: Audience,
        item: dict[str, Any],
        body: dict[str, Any],
        request: Request,
        seen: set[str],
        outcome: dict[str, list[Any]],
    ) -> None:
        email = item["email_address"]
        member_id = subscriber_hash(email)
        try:
            if member_id in seen:
                raise invalid(
                    f"{email} appears more than once in this request.", field_name="email_address"
                )
            seen.add(member_id)
            self._subscribe_or_update(audience, item, body, request, outcome)
        except ApiError as error:
            outcome["errors"].append(self._bulk_error(email, error))

    def _subscribe_or_update(
        self,
        audience: Audience,
        item: dict[str, Any],
        body: dict[str, Any],
        request: Request,
        outcome: dict[str, list[Any]],
    ) -> None:
        """Item tags are create-only unless sync_tags, which replaces every tag of the member."""
        email = item["email_address"]
        member = audience.members.get(subscriber_hash(email))
        if member is None:
            status = item.get("status") or item["status_if_new"]
            member = self._create_member(
                audience, email, status, item, _flag(request, "skip_merge_validation")
            )
            outcome["new_members"].append(self._member_json(audience, member))
            return
        if not body.get("update_existing"):
            outcome["errors"].append(
                {
                    "email_address": email,
                    "error": contact_exists_text(email),
                    "error_code": "ERROR_CONTACT_EXISTS",
                    "field": "email_address",
                    "field_message": "",
                }
            )
            return
        self._update_member(audience, member, {k: v for k, v in item.items() if k != "tags"})
        if body.get("sync_tags"):
            self._sync_tags(audience, member, item.get("tags") or [])
        outcome["updated_members"].append(self._member_json(audience, member))

    @staticmethod
    def _bulk_error(email: str, error: ApiError) -> dict[str, str]:
        field_message = error.errors[0]["message"] if error.errors else error.detail
        return {
            "email_address": email,
            "error": error.detail,
            "error_code": "ERROR_GENERIC",
            "field": error.field_name,
            "field_message": field_message,
        }

    # ----- handlers: merge fields -----

    def _get_merge_fields(self, request: Request) -> Response:
        audience = self._audience(request)
        kind, required = request.arg("type"), request.arg("required")
        fields = [
            f
            for f in audience.merge_fields.values()
            if (kind is None or f["type"] == kind)
            and (required is None or f["required"] == (required.lower() == "true"))
        ]
        return Response(
            200,
            {
                "merge_fields": self._page(fields, request),
                "list_id": audience.id,
                "total_items": len(fields),
            },
            JSON_CONTENT_TYPE,
        )

    def _post_merge_field(self, request: Request) -> Response:
        audience = self._audience(request)
        body = _json_object(request)
        self._check_new_merge_field(audience, body)
        return Response(200, self._store_merge_field(audience, body), JSON_CONTENT_TYPE)

    # ----- handlers: segments / tags -----

    def _get_segments(self, request: Request) -> Response:
        """All segments here are static (tags); counts follow the include_* flags."""
        audience = self._audience(request)
        kind = request.arg("type")
        segments = [] if kind not in (None, "static") else list(audience.segments.values())
        included = ("subscribed",) + tuple(
            status
            for status in ("cleaned", "transactional", "unsubscribed")
            if _flag(request, f"include_{status}")
        )
        return Response(
            200,
            {
                "segments": [
                    self._segment_json(audience, s, included) for s in self._page(segments, request)
                ],
                "list_id": audience.id,
                "total_items": len(segments),
            },
            JSON_CONTENT_TYPE,
        )

    def _segment(self, audience: Audience, request: Request) -> Segment:
        try:
            segment = audience.segments.get(int(request.params["segment_id"]))
        except ValueError:
            segment = None
        if segment is None:
            raise not_found()
        return segment

    def _get_segment(self, request: Request) -> Response:
        audience = self._audience(request)
        return Response(
            200, self._segment_json(audience, self._segment(audience, request)), JSON_CONTENT_TYPE
        )

    def _delete_segment(self, request: Request) -> Response:
        """A marketer deletes a tag: gone from every member, its id answers 404 from now on."""
        audience = self._audience(request)
        segment = self._segment(audience, request)
        for member_id in segment.member_ids:
            audience.members[member_id].tags.pop(segment.id, None)
        del audience.segments[segment.id]
        audience.tag_ids.pop(segment.name.casefold(), None)
        return Response(204)

    def _post_segment(self, request: Request) -> Response:
        """Creates a tag; a name already used (any case) is refused (pessimistic)."""
        audience = self._audience(request)
        body = _json_object(request)
        _require(body, ("name",))
        if "options" in body:
            raise field_error("options", "This sandbox supports static segments (tags) only.")
        name = str(body["name"])
        if self._tag_named(audience, name, create=False) is not None:
            raise invalid(f'A tag named "{name}" already exists on this list.')
        segment = self._tag_named(audience, name, create=True)
        for email in body.get("static_segment") or []:
            member = audience.members.get(subscriber_hash(str(email)))
            if member is not None:
                self._add_to_segment(member, segment)
        return Response(200, self._segment_json(audience, segment), JSON_CONTENT_TYPE)

    def _post_segment_members(self, request: Request) -> Response:
        audience = self._audience(request)
        segment = self._segment(audience, request)
        body = _json_object(request)
        to_add, to_remove = body.get("members_to_add") or [], body.get("members_to_remove") or []
        for name, emails in (("members_to_add", to_add), ("members_to_remove", to_remove)):
            if not isinstance(emails, list) or len(emails) > BULK_LIMIT:
                raise field_error(name, f"{name} must be a list of at most {BULK_LIMIT} emails.")
        added, missing_add = self._move_members(audience, segment, to_add, self._add_to_segment)
        removed, missing_remove = self._move_members(
            audience, segment, to_remove, self._remove_from_segment
        )
        errors = [
            {"email_addresses": missing, "error": "Email addresses are not on this list."}
            for missing in (missing_add, missing_remove)
            if missing
        ]
        return Response(
            200,
            {
                "members_added": added,
                "members_removed": removed,
                "errors": errors,
                "total_added": len(added),
                "total_removed": len(removed),
                "error_count": len(missing_add) + len(missing_remove),
            },
            JSON_CONTENT_TYPE,
        )

    def _move_members(
        self,
        audience: Audience,
        segment: Segment,
        emails: list[Any],
        move: Callable[[Member, Segment], None],
    ) -> tuple[list[dict], list[str]]:
        moved, missing = [], []
        for email in dict.fromkeys(str(e) for e in emails):
            member = audience.members.get(subscriber_hash(email))
            if member is None:
                missing.append(email)
                continue
            move(member, segment)
            moved.append(self._member_json(audience, member))
        return moved, missing

    def _tag_search(self, request: Request) -> Response:
        """Prefix match, case-insensitive, paged like other collections (pessimistic)."""
        audience = self._audience(request)
        prefix = (request.arg("name") or "").casefold()
        tags = [
            {"id": s.id, "name": s.name}
            for s in audience.segments.values()
            if s.name.casefold().startswith(prefix)
        ]
        return Response(
            200, {"tags": self._page(tags, request), "total_items": len(tags)}, JSON_CONTENT_TYPE
        )

    # ----- handlers: campaigns and reports -----

    def _campaign_json(self, campaign: Campaign) -> dict[str, Any]:
        audience = self.audiences[campaign.list_id]
        sent = campaign.send_time <= self.clock.now()
        return {
            "id": campaign.id,
            "web_id": campaign.web_id,
            "type": "regular",
            "create_time": iso(campaign.create_time),
            "archive_url": "",
            "status": "sent" if sent else "schedule",
            "emails_sent": len(audience.members),
            "send_time": iso(campaign.send_time),
            "content_type": "template",
            "recipients": {
                "list_id": audience.id,
                "list_is_active": True,
                "list_name": audience.name,
                "segment_text": "",
                "recipient_count": len(audience.members),
            },
            "settings": {"subject_line": campaign.title, "title": campaign.title},
        }

    def _get_campaigns(self, request: Request) -> Response:
        since = _time_arg(request, "since_send_time")
        before = _time_arg(request, "before_send_time")
        wanted_status, list_id = request.arg("status"), request.arg("list_id")
        rows = [
            self._campaign_json(c)
            for c in self.campaigns.values()
            if (list_id is None or c.list_id == list_id)
            and (since is None or c.send_time > since)
            and (before is None or c.send_time < before)
        ]
        rows = [row for row in rows if wanted_status is None or row["status"] == wanted_status]
        return Response(
            200,
            {"campaigns": self._page(rows, request), "total_items": len(rows)},
            JSON_CONTENT_TYPE,
        )

    def _get_email_activity(self, request: Request) -> Response:
        """Every address with recorded activity; `since` filters the events, not the addresses."""
        campaign = self.campaigns.get(request.params["campaign_id"])
        if campaign is None:
            raise not_found()
        since = _time_arg(request, "since")
        emails = [
            self._activity_json(campaign, email, events, since)
            for email, events in campaign.activity.items()
        ]
        return Response(
            200,
            {
                "emails": self._page(emails, request),
                "campaign_id": campaign.id,
                "total_items": len(emails),
            },
            JSON_CONTENT_TYPE,
        )

    @staticmethod
    def _activity_json(
        campaign: Campaign, email: str, events: list[dict[str, Any]], since: float | None
    ) -> dict[str, Any]:
        shown = [
            {
                "action": e["action"],
                "type": e["type"],
                "timestamp": iso(e["timestamp"]),
                "url": e["url"],
                "ip": "",
            }
            for e in events
            if since is None or e["timestamp"] > since
        ]
        return {
            "campaign_id": campaign.id,
            "list_id": campaign.list_id,
            "list_is_active": True,
            "email_id": subscriber_hash(email),
            "email_address": email,
            "activity": shown,
        }

    # ----- handlers: /batches -----

    def _post_batch(self, request: Request) -> Response:
        """Queue a batch; batches run one at a time: start ≥ 1 s after submit, 1 s + 1 ms/op."""
        body = _json_object(request)
        operations = body.get("operations")
        self._check_operations(operations)
        now = self.clock.now()
        starts_at = max(now + 1.0, self._last_batch_finish)
        batch = Batch(
            self._make_id("batch", next(self._ids)),
            operations,
            now,
            starts_at,
            starts_at + 1.0 + 0.001 * len(operations),
        )
        self._last_batch_finish = batch.finishes_at
        self.batches[batch.id] = batch
        self._batch_queue.append(batch)
        return Response(200, self._batch_json(batch, request), JSON_CONTENT_TYPE)

    @staticmethod
    def _check_operations(operations: Any) -> None:
        """Only method and path are checked now; a non-string body fails when it runs."""
        if not isinstance(operations, list):
            raise field_error("operations", "Required fields were not provided: operations")
        for index, operation in enumerate(operations):
            if not isinstance(operation, dict) or operation.get("method") not in BATCH_METHODS:
                raise field_error(
                    f"operations.{index}.method",
                    "Data presented is not one of "
                    "the accepted values: " + ", ".join(BATCH_METHODS) + ".",
                )
            if not isinstance(operation.get("path"), str) or not operation["path"].startswith("/"):
                raise field_error(
                    f"operations.{index}.path", "Required fields were not provided: path"
                )

    def _batch_json(self, batch: Batch, request: Request) -> dict[str, Any]:
        status, done = batch.progress(self.clock.now())
        finished = status == "finished"
        return {
            "id": batch.id,
            "status": status,
            "total_operations": len(batch.results) if finished else len(batch.operations),
            "finished_operations": done,
            "errored_operations": batch.errored,
            "submitted_at": iso(batch.submitted_at),
            "completed_at": iso(batch.finishes_at) if finished else "",
            "response_body_url": self._archive_url(batch, request) if finished else "",
        }

    def _archive_url(self, batch: Batch, request: Request) -> str:
        """A fresh URL on every status call, valid for 10 minutes, like the real signed URL."""
        host = request.header("host") or "127.0.0.1"
        expires = int(self.clock.now() + ARCHIVE_URL_LIFETIME)
        return f"http://{host}{ARCHIVE_PREFIX}{batch.id}.tar.gz?expires={expires}"

    def _get_batch(self, request: Request) -> Response:
        batch = self.batches.get(request.params["batch_id"])
        if batch is None:
            raise not_found()
        return Response(200, self._batch_json(batch, request), JSON_CONTENT_TYPE)

    def _get_batches(self, request: Request) -> Response:
        batches = list(self.batches.values())
        return Response(
            200,
            {
                "batches": [self._batch_json(b, request) for b in self._page(batches, request)],
                "total_items": len(batches),
            },
            JSON_CONTENT_TYPE,
        )

    def _delete_batch(self, request: Request) -> Response:
        batch = self.batches.pop(request.params["batch_id"], None)
        if batch is None:
            raise not_found()
        if batch in self._batch_queue:
            self._batch_queue.remove(batch)
        return Response(204)

    def _settle_batches(self) -> None:
        """Run every queued batch whose finish time has passed, in order (call under the lock)."""
        if self.batches_never_finish:
            return
        now = self.clock.now()
        if self.jobs_finish_at_once:
            self._hurry_batches(now)
        while self._batch_queue and self._batch_queue[0].finishes_at <= now:
            self._run_batch(self._batch_queue.popleft())

    def _hurry_batches(self, now: float) -> None:
        """Make every queued batch due now (the jobs_finish_at_once switch)."""
        for batch in self._batch_queue:
            batch.starts_at, batch.finishes_at = (
                min(batch.starts_at, now),
                min(batch.finishes_at, now),
            )
        self._last_batch_finish = min(self._last_batch_finish, now)

    def _run_batch(self, batch: Batch) -> None:
        """Operations run (and are reported) in a shuffled order: the docs promise no order."""
        operations = list(batch.operations)
        self._batch_order.shuffle(operations)
        results: list[dict[str, Any]] = []
        for operation in operations:
            results.extend(self._run_operation(operation))
        batch.results = results
        batch.archive = self._build_archive(batch)

    def _run_operation(self, operation: dict[str, Any]) -> list[dict[str, Any]]:
        """One operation through the normal handlers; a GET without count pages through all."""
        body = operation.get("body")
        if body is not None and not isinstance(body, str):
            error = ApiError(
                400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
            )
            return [self._operation_result(operation, error.response())]
        url = urlsplit(operation["path"])
        params = operation.get("params")
        query = parse_qs(url.query)
        if isinstance(params, dict):
            query.update({str(k): [str(v)] for k, v in params.items()})
        if operation["method"] == "GET" and "count" not in query:
            return self._run_paged_get(operation, url.path, query)
        request = Request(
            operation["method"], API_ROOT + url.path, query, {}, (body or "").encode("utf-8")
        )
        return [self._operation_result(operation, self._route(request))]

    def _run_paged_get(
        self, operation: dict[str, Any], path: str, query: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        results, offset = [], 0
        while True:
            page_query = {**query, "count": [str(MAX_COUNT)], "offset": [str(offset)]}
            response = self._route(Request("GET", API_ROOT + path, page_query, {}, b""))
            results.append(self._operation_result(operation, response))
            offset += MAX_COUNT
            total = response.body.get("total_items", 0) if isinstance(response.body, dict) else 0
            if response.status != 200 or offset >= total:
                return results

    @staticmethod
    def _operation_result(operation: dict[str, Any], response: Response) -> dict[str, Any]:
        return {
            "status_code": response.status,
            "operation_id": operation.get("operation_id"),
            "response": response.encode().decode("utf-8"),
        }

    def _build_archive(self, batch: Batch) -> bytes:
        """tar.gz: a directory entry, then JSON files each holding an array of results."""
        results = batch.results or []
        buffer = io.BytesIO()
        mtime = int(batch.finishes_at)
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            folder = tarfile.TarInfo(batch.id)
            folder.type, folder.mtime, folder.mode = tarfile.DIRTYPE, mtime, 0o755
            archive.addfile(folder)
            for number, start in enumerate(range(0, len(results), RESULTS_PER_ARCHIVE_FILE)):
                data = json.dumps(results[start : start + RESULTS_PER_ARCHIVE_FILE]).encode("utf-8")
                entry = tarfile.TarInfo(
                    f"{batch.id}/{hashlib.md5(data).hexdigest()[:10]}-{number}.json"
                )
                entry.size, entry.mtime = len(data), mtime
                archive.addfile(entry, io.BytesIO(data))
        return buffer.getvalue()

    def _download_archive(self, request: Request) -> Response:
        """The results archive: no API key (a signed storage URL), 403 once the URL expired."""
        batch_id = request.params["archive"].removesuffix(".tar.gz")
        with self.lock:
            self._settle_batches()
            batch = self.batches.get(batch_id)
        if batch is None or batch.results is None:
            return self._storage_error(404, "NoSuchKey", "The specified key does not exist.")
        expires = request.arg("expires") or "0"
        if not expires.isdigit() or self.clock.now() > int(expires):
            return self._storage_error(403, "AccessDenied", "Request has expired")
        return Response(200, content_type="application/x-gzip", raw=batch.archive)

    @staticmethod
    def _storage_error(status: int, code: str, message: str) -> Response:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error>"
        )
        return Response(status, content_type="application/xml", raw=body.encode("utf-8"))
