"""Mailchimp's list and member endpoints, with a member's tags."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.mailchimp.errors import (
    ApiError,
    field_error,
    member_exists_error,
    not_found,
)
from kommo_sync.sandbox.mailchimp.members import MemberState
from kommo_sync.sandbox.mailchimp.queries import (
    check_status_value,
    flag,
    json_object,
    require,
    time_arg,
)
from kommo_sync.sandbox.mailchimp.records import Audience, Member
from kommo_sync.sandbox.mailchimp.rules import JSON_CONTENT_TYPE, STATUSES, subscriber_hash
from kommo_sync.sandbox.server import Request, Response

ARCHIVED = "archived"
OPTED_OUT = ("unsubscribed", "cleaned")
CANNOT_ARCHIVE = (
    "This list member cannot be removed. Can not archive a contact that is bounced, pending or "
    "archived"
)


class MemberEndpoints(MemberState):
    """`/lists`, `/lists/{id}/members[/{hash}[/tags]]`."""

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
        body = json_object(request)
        require(body, ("email_address", "status_if_new"))
        check_status_value(body, "status_if_new", STATUSES)
        check_status_value(body, "status", STATUSES)
        member = audience.members.get(self._hash_param(request))
        if member is None:
            member = self._create_from_put(audience, request, body)
        elif member.status == ARCHIVED:
            self._revive(audience, member, body)
        else:
            self._update_member(audience, member, body)
        return Response(200, self._member_json(audience, member), JSON_CONTENT_TYPE)

    def _revive(self, audience: Audience, member: Member, body: dict[str, Any]) -> None:
        """An archived member upserted again comes back: unsubscribed or cleaned as it was
        (`status: subscribed` is then a compliance error, and it stays archived), otherwise
        with `status_if_new` (or `status`)."""
        was = member.archived_from
        member.status = was if was in OPTED_OUT else body["status_if_new"]
        try:
            self._update_member(audience, member, body)
        except ApiError:
            member.status = ARCHIVED
            raise
        member.archived_from = ""
        member.last_changed = int(self.clock.now())

    def _archive_member(self, request: Request) -> Response:
        """DELETE: the member is archived (reversible), no longer listed with the audience; a
        bounced, pending or archived one cannot be (405)."""
        audience = self._audience(request)
        member = self._member_or_404(audience, request)
        if member.status in ("cleaned", "pending", ARCHIVED):
            raise ApiError(405, "Method Not Allowed", CANNOT_ARCHIVE)
        member.archived_from, member.status = member.status, ARCHIVED
        member.last_changed = int(self.clock.now())
        return Response(204)

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
            audience, email, status, body, flag(request, "skip_merge_validation")
        )

    def _patch_member(self, request: Request) -> Response:
        audience = self._audience(request)
        member = self._member_or_404(audience, request)
        if member.status == ARCHIVED:
            raise not_found()  # an archived member comes back only by an upsert
        body = json_object(request)
        check_status_value(body, "status", STATUSES)
        self._update_member(audience, member, body)
        return Response(200, self._member_json(audience, member), JSON_CONTENT_TYPE)

    def _post_member(self, request: Request) -> Response:
        """Create only: an address already on the audience is 400 Member Exists."""
        audience = self._audience(request)
        body = json_object(request)
        require(body, ("email_address", "status"))
        check_status_value(body, "status", STATUSES)
        email = str(body["email_address"])
        if subscriber_hash(email) in audience.members:
            raise member_exists_error(email)
        member = self._create_member(
            audience, email, body["status"], body, flag(request, "skip_merge_validation")
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
        since = time_arg(request, "since_last_changed")
        before = time_arg(request, "before_last_changed")
        unsubscribed_since = time_arg(request, "unsubscribed_since")
        lower = max(filter(None, (since, unsubscribed_since)), default=None)
        return [
            member
            for member in audience.members.values()
            if (member.status == status if status else member.status != ARCHIVED)
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
        body = json_object(request)
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
            segment = self._find_tag(audience, name)
            if segment is not None:
                self._remove_from_segment(member, segment)
