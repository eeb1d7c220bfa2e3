"""What happens to members: creation, updates and the consent rules, merge values, tags."""

from __future__ import annotations

import hashlib
from typing import Any

from kommo_sync.sandbox.mailchimp.base import MailchimpBase
from kommo_sync.sandbox.mailchimp.errors import (
    compliance_error,
    fake_email_error,
    field_error,
    forgotten_error,
    invalid,
    member_exists_error,
    not_found,
)
from kommo_sync.sandbox.mailchimp.merge_values import merge_value_problem
from kommo_sync.sandbox.mailchimp.queries import require, truncate_bytes
from kommo_sync.sandbox.mailchimp.records import Audience, Member, Segment
from kommo_sync.sandbox.mailchimp.rules import (
    DEFAULT_UNSUBSCRIBE_REASON,
    MERGE_INVALID,
    MERGE_TAG_PATTERN,
    MERGE_TYPES,
    TEXT_VALUE_BYTES,
    looks_fake,
    subscriber_hash,
)


class MemberState(MailchimpBase):
    """Changes to members, merge fields and tags, shared by the endpoints and the test hooks."""

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
            if merge_field is None:
                message = f"Merge field {tag} does not exist on this audience."
                errors.append({"field": tag, "message": message})
                continue
            message = merge_value_problem(merge_field, value)
            if message:
                errors.append({"field": tag, "message": message})
            else:
                cleaned[tag] = self._normalised_merge_value(merge_field, value)
        if errors:
            raise invalid(MERGE_INVALID, errors, field_name=errors[0]["field"])
        return cleaned

    @staticmethod
    def _normalised_merge_value(merge_field: dict[str, Any], value: Any) -> Any:
        """Text values are cut at 255 bytes, as Mailchimp does; null becomes ''."""
        if value is None:
            return ""
        if isinstance(value, str) and merge_field["type"] != "address":
            return truncate_bytes(value, TEXT_VALUE_BYTES)
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
        require(body, ("name", "type"))
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
        if len(audience.merge_fields) >= self.merge_field_limit:
            raise invalid(  # wording UNCONFIRMED; the limit is 30 (mc-magento#957)
                f"This audience already has the maximum of {self.merge_field_limit} merge fields."
            )

    def _update_merge_field(self, audience: Audience, merge_id: str, body: dict[str, Any]) -> Any:
        """PATCH: name, options (a new choices list replaces the old one), public, help text."""
        merge_field = next(
            (f for f in audience.merge_fields.values() if str(f["merge_id"]) == merge_id), None
        )
        if merge_field is None:
            raise not_found()
        require(body, ("name",))
        options = body.get("options") or {}
        if not isinstance(options, dict) or not isinstance(options.get("choices", []), list):
            raise field_error("options", "Data did not match any of the schemas described in anyOf")
        merge_field["options"].update(options)
        for key in ("name", "public", "help_text", "required", "default_value"):
            if key in body:
                merge_field[key] = body[key]
        return merge_field

    @staticmethod
    def _find_tag(audience: Audience, name: str) -> Segment | None:
        """Tag lookup by name, case-insensitive (pessimistic: 'customer' is 'Customer')."""
        tag_id = audience.tag_ids.get(name.strip().casefold())
        return None if tag_id is None else audience.segments[tag_id]

    def _tag_named(self, audience: Audience, name: str) -> Segment:
        """The tag of that name (see `_find_tag`), created when the audience has none."""
        existing = self._find_tag(audience, name)
        if existing is not None:
            return existing
        now = self.clock.now()
        segment = Segment(next(self._ids), name.strip(), now, now)
        audience.segments[segment.id] = segment
        audience.tag_ids[segment.name.casefold()] = segment.id
        return segment

    def _tag_member(self, audience: Audience, member: Member, name: str) -> None:
        segment = self._tag_named(audience, name)
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
            self._tag_named(audience, name).id
            for name in names
            if isinstance(name, str) and name.strip()
        }
        for tag_id in list(member.tags):
            if tag_id not in wanted:
                self._remove_from_segment(member, audience.segments[tag_id])
        for tag_id in wanted:
            self._add_to_segment(member, audience.segments[tag_id])
