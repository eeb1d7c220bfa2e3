"""A local Mailchimp Marketing API v3 (served at /3.0/...) for tests, the demo and benchmarks.

In memory: audiences with members keyed by subscriber hash, merge fields, tags (static
segments), campaigns with open/click activity, and /batches jobs that run on the injected clock.
It reproduces the vendor quirks from shared/api/mailchimp.md: problem+json errors, the
10-simultaneous-connections 429, the consent (compliance state) rules, fake-email rejections,
count defaulting to 10, sync_tags wiping tags, tag-search prefix matching and the tar.gz batch
archive. Where the notes mark a behaviour UNCONFIRMED, the sandbox does the pessimistic variant.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kommo_sync.clock import Clock
from kommo_sync.sandbox.mailchimp.audience import AudienceEndpoints
from kommo_sync.sandbox.mailchimp.batches import BatchEndpoints
from kommo_sync.sandbox.mailchimp.bulk import BulkSubscribe
from kommo_sync.sandbox.mailchimp.campaigns import CampaignEndpoints
from kommo_sync.sandbox.mailchimp.member_endpoints import MemberEndpoints
from kommo_sync.sandbox.mailchimp.records import Audience, Campaign
from kommo_sync.sandbox.mailchimp.rules import (
    API_ROOT,
    ARCHIVE_PREFIX,
    DEFAULT_MERGE_FIELDS,
    MERGE_FIELD_LIMIT,
    subscriber_hash,
)
from kommo_sync.sandbox.server import Handler, Request, Response


class MailchimpSandbox(
    MemberEndpoints, BulkSubscribe, AudienceEndpoints, CampaignEndpoints, BatchEndpoints
):
    """Mailchimp Marketing API v3 in memory; see the module docstring for the quirks."""

    def __init__(
        self,
        clock: Clock | None = None,
        api_key: str = "sandboxkey0000000000000000000000-us1",
        max_connections: int = 10,
        merge_field_limit: int = MERGE_FIELD_LIMIT,
    ):
        super().__init__(clock, api_key, max_connections, merge_field_limit)
        self._register_routes()

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
        self,
        list_id: str,
        tag: str,
        name: str,
        field_type: str = "text",
        required: bool = False,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Seed a merge field as a marketer makes one (`options`: choices, date_format…)."""
        spec = {"tag": tag, "name": name, "type": field_type, "required": required}
        with self.lock:
            return self._store_merge_field(
                self._audience_or_raise(list_id), {**spec, "options": options or {}}
            )

    def merge_field(self, list_id: str, tag: str) -> dict[str, Any] | None:
        with self.lock:
            return self._audience_or_raise(list_id).merge_fields.get(tag)

    def add_tag(self, list_id: str, name: str) -> int:
        """Create (or find) a tag; returns its id, which is also its static segment id."""
        with self.lock:
            return self._tag_named(self._audience_or_raise(list_id), name).id

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
            ("DELETE", "/lists/{list_id}/members/{hash}", self._archive_member),
            (
                "POST",
                "/lists/{list_id}/members/{hash}/actions/delete-permanent",
                self._delete_permanent,
            ),
            ("GET", "/lists/{list_id}/members/{hash}/tags", self._get_member_tags),
            ("POST", "/lists/{list_id}/members/{hash}/tags", self._post_member_tags),
            ("GET", "/lists/{list_id}/merge-fields", self._get_merge_fields),
            ("POST", "/lists/{list_id}/merge-fields", self._post_merge_field),
            ("PATCH", "/lists/{list_id}/merge-fields/{merge_id}", self._patch_merge_field),
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
