"""The HTTP side every Mailchimp endpoint shares: auth, the connection limit, injected failures,
paging, lookups and the JSON shapes of lists, members and segments."""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import random
import threading
from collections import deque
from typing import Any
from urllib.parse import unquote

from kommo_sync.clock import Clock
from kommo_sync.sandbox.mailchimp.errors import ApiError, not_found, problem
from kommo_sync.sandbox.mailchimp.queries import (
    dotted_paths,
    exclude_fields,
    page_args,
    select_fields,
)
from kommo_sync.sandbox.mailchimp.records import Audience, Batch, Campaign, Member, Segment
from kommo_sync.sandbox.mailchimp.rules import (
    ARCHIVE_PREFIX,
    DEFAULT_TITLES,
    MEMBER_TAGS_SHOWN,
    MERGE_FIELD_LIMIT,
    NOT_FOUND_DETAIL,
    PROBLEM_CONTENT_TYPE,
    STATUSES,
    iso,
    subscriber_hash,
)
from kommo_sync.sandbox.network import MailchimpJobs
from kommo_sync.sandbox.server import App, Handler, Request, Response


class MailchimpBase(App):
    """The account's state and the request plumbing; the endpoint classes build on it."""

    def __init__(
        self,
        clock: Clock | None = None,
        api_key: str = "sandboxkey0000000000000000000000-us1",
        max_connections: int = 10,
        merge_field_limit: int = MERGE_FIELD_LIMIT,
    ):
        super().__init__(clock)
        self.api_key = api_key
        self.max_connections = max_connections
        self.merge_field_limit = merge_field_limit  # merge fields per audience (30 on Mailchimp)
        self.bodiless_throttle = False
        # Test switches: collections ignore `offset`; /batches jobs never finish, or finish at once.
        self.ignore_offset = False
        self.batches_never_finish = False
        self.jobs_finish_at_once = False
        self.timing = MailchimpJobs()  # how long /batches jobs take (network.py)
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
            response.body = select_fields(response.body, dotted_paths(request, "fields"))
        elif request.query.get("exclude_fields"):
            response.body = exclude_fields(response.body, dotted_paths(request, "exclude_fields"))
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
        count, offset = page_args(request)
        start = 0 if self.ignore_offset else offset
        return items[start : start + count]

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
