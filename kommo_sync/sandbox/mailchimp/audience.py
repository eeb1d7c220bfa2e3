"""Mailchimp's merge-field and segment (tag) endpoints of an audience."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kommo_sync.sandbox.mailchimp.errors import field_error, invalid, not_found
from kommo_sync.sandbox.mailchimp.members import MemberState
from kommo_sync.sandbox.mailchimp.queries import flag, json_object, require
from kommo_sync.sandbox.mailchimp.records import Audience, Member, Segment
from kommo_sync.sandbox.mailchimp.rules import BULK_LIMIT, JSON_CONTENT_TYPE, subscriber_hash
from kommo_sync.sandbox.server import Request, Response


class AudienceEndpoints(MemberState):
    """`/lists/{id}/merge-fields`, `/lists/{id}/segments[...]` and `/lists/{id}/tag-search`."""

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
        body = json_object(request)
        self._check_new_merge_field(audience, body)
        return Response(200, self._store_merge_field(audience, body), JSON_CONTENT_TYPE)

    def _patch_merge_field(self, request: Request) -> Response:
        audience = self._audience(request)
        merge_field = self._update_merge_field(
            audience, request.params["merge_id"], json_object(request)
        )
        return Response(200, merge_field, JSON_CONTENT_TYPE)

    def _get_segments(self, request: Request) -> Response:
        """All segments here are static (tags); counts follow the include_* flags."""
        audience = self._audience(request)
        kind = request.arg("type")
        segments = [] if kind not in (None, "static") else list(audience.segments.values())
        included = ("subscribed",) + tuple(
            status
            for status in ("cleaned", "transactional", "unsubscribed")
            if flag(request, f"include_{status}")
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
        body = json_object(request)
        require(body, ("name",))
        if "options" in body:
            raise field_error("options", "This sandbox supports static segments (tags) only.")
        name = str(body["name"])
        if self._find_tag(audience, name) is not None:
            raise invalid(f'A tag named "{name}" already exists on this list.')
        segment = self._tag_named(audience, name)
        for email in body.get("static_segment") or []:
            member = audience.members.get(subscriber_hash(str(email)))
            if member is not None:
                self._add_to_segment(member, segment)
        return Response(200, self._segment_json(audience, segment), JSON_CONTENT_TYPE)

    def _post_segment_members(self, request: Request) -> Response:
        audience = self._audience(request)
        segment = self._segment(audience, request)
        body = json_object(request)
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
