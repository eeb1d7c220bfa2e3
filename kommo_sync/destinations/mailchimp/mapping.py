"""Mailchimp mapping and planning, pure: a person → the member they should be → the one change
that gets them there. No I/O.

`status: subscribed` is never sent: new people get `status_if_new`, so nobody already in the
audience (unsubscribed, cleaned) is ever re-subscribed; without consent a new person is only
updated if already a member (or added `transactional`/`pending`, as `without_consent` says).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.destinations.mailchimp.field_plan import FieldPlan
from kommo_sync.destinations.mailchimp.operations import (
    KommoTagMove,
    MemberOperation,
    Subscribe,
    TagChange,
    Update,
    UpdateIfMember,
)
from kommo_sync.model import Person, Stage
from kommo_sync.plan import STATUS, Change, Skip, fingerprint

NAME = "mailchimp"
TEXT_LIMIT = 255
ABSENT = "absent"  # the pushed status of someone Mailchimp said is not in the audience
ARCHIVED = "archived"  # the pushed status of a member archived when its contact was deleted


def subscriber_hash(email: str) -> str:
    """MD5 of the trimmed, lower-cased address (Mailchimp's member id)."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


def merge_fields(person: Person, mapping: Mapping[str, str]) -> dict[str, Any]:
    """FNAME, LNAME and the configured merge fields, as text Mailchimp accepts (≤ 255 bytes)."""
    values: dict[str, object] = {"FNAME": person.first_name, "LNAME": person.last_name}
    values.update({tag: person.attribute(attribute) for tag, attribute in mapping.items()})
    return {tag: _text(value) for tag, value in values.items()}


def _text(value: object) -> str:
    if value is None:
        return ""
    if type(value) is str and value.isascii() and len(value) <= TEXT_LIMIT:
        return value  # the common case: nothing to convert or cut
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).encode("utf-8")[:TEXT_LIMIT].decode("utf-8", "ignore")


def desired_member(
    person: Person,
    config: MailchimpConfig,
    tags: Mapping[Stage, str],
    extra: FieldPlan | None = None,
) -> dict[str, Any]:
    """What the member should hold; its fingerprint says whether anything changed. The field
    map's values and the Kommo tags are in it only when configured, so a config without them
    keeps the fingerprints it always had."""
    fields = merge_fields(person, config.merge_fields)
    if extra is not None and extra.fields:
        fields.update(extra.merge_values(person))
    desired: dict[str, Any] = {
        "email": person.email,
        "merge_fields": fields,
        "tag": tags[person.stage],
        "consent": person.consent,
    }
    if extra is not None and extra.kommo_tags is not None:
        desired["kommo_tags"] = extra.tags_of(person)
    return desired


def status_for_new(consenting: bool, without_consent: str) -> str | None:
    """`status_if_new` for someone not yet in the audience; None = keep them out."""
    if consenting:
        return "subscribed"
    return {"skip": None, "transactional": "transactional", "pending": "pending"}[without_consent]


def plan_person(
    person: Person,
    pushed: dict[str, Any] | None,
    suppressed: bool,
    config: MailchimpConfig,
    tags: Mapping[Stage, str],
    extra: FieldPlan | None = None,
) -> Change | Skip | None:
    """The one change this person needs in Mailchimp, a Skip, or None when all is in step."""
    if not person.email:
        return Skip(person.contact_id, "no_email")
    desired = desired_member(person, config, tags, extra)
    digest = fingerprint(desired)
    if pushed is not None and pushed.get("fingerprint") == digest:
        return None
    record = {**desired, "hash": subscriber_hash(person.email), "fingerprint": digest}
    if pushed is None or pushed.get(STATUS) in (ABSENT, ARCHIVED):
        kommo = extra.move(record.get("kommo_tags"), None, True) if extra else None
        return _plan_new(person, person.email, record, suppressed, config, kommo)
    trusted = pushed.get("fingerprint") is not None
    kommo = (
        extra.move(record.get("kommo_tags"), pushed.get("kommo_tags"), trusted) if extra else None
    )
    return _plan_existing(person, person.email, record, pushed, kommo)


def _plan_new(
    person: Person,
    email: str,
    record: dict[str, Any],
    suppressed: bool,
    config: MailchimpConfig,
    kommo: KommoTagMove | None,
) -> Change:
    """Someone not in the audience as far as we know: subscribed only with consent."""
    consenting = person.consent is not False and not suppressed
    status = status_for_new(consenting, config.without_consent)
    tag = TagChange(record["tag"])
    summary = {**_tag_summary(tag.tag, None), **_kommo_summary(kommo)}
    if status is None:
        operation: MemberOperation = UpdateIfMember(
            record["hash"], email, record["merge_fields"], tag, kommo
        )
        reason = "no consent: updated only if already a member"
        return _change(person, "update_if_exists", operation, record, {"reason": reason, **summary})
    operation = Subscribe(record["hash"], email, record["merge_fields"], status, tag, kommo)
    return _change(person, "create", operation, record, {"status_if_new": status, **summary})


def _kommo_summary(kommo: KommoTagMove | None) -> dict[str, Any]:
    """The Kommo tags moved, for the report (nothing when none move)."""
    if kommo is None:
        return {}
    return {"kommo_tags_added": list(kommo.add), "kommo_tags_removed": list(kommo.remove)}


def _plan_existing(
    person: Person,
    email: str,
    record: dict[str, Any],
    pushed: dict[str, Any],
    kommo: KommoTagMove | None,
) -> Change:
    """A member we pushed: only what changed goes, addressed by the hash it was pushed under; a
    record without its fingerprint (a full resync) is not trusted: every field and the tag go."""
    trusted = pushed.get("fingerprint") is not None
    before = (pushed.get("merge_fields") or {}) if trusted else {}
    changed = sorted(
        tag for tag, value in record["merge_fields"].items() if before.get(tag) != value
    )
    renamed = pushed.get("email") != email
    unsubscribe = pushed.get("consent") is True and person.consent is False
    old_tag = pushed.get("tag")
    tag = _tag_change(record["tag"], old_tag, trusted)
    operation = Update(
        pushed["hash"],
        merge_fields=record["merge_fields"] if changed else None,
        new_email=email if renamed else None,
        unsubscribe=unsubscribe,
        tag=tag,
        kommo=kommo,
    )
    summary = {"fields": changed, "renamed_from": pushed.get("email") if renamed else None}
    summary.update(_kommo_summary(kommo))
    if tag is not None:
        summary.update(_tag_summary(tag.tag, old_tag if old_tag != tag.tag else None))
    if not unsubscribe and pushed.get(STATUS):
        record[STATUS] = pushed[STATUS]
    action = "unsubscribe" if unsubscribe else "rename" if renamed else "update"
    return _change(person, action, operation, record, summary)


def _tag_change(tag: str, old_tag: str | None, trusted: bool) -> TagChange | None:
    """The stage tag to set: when it moved, or always when the record is not trusted (then any
    managed tag may be on the member and comes off)."""
    if not trusted:
        return TagChange(tag)
    return TagChange(tag, old_tag or None) if old_tag != tag else None


def _tag_summary(added: str, removed: str | None) -> dict[str, Any]:
    return {"tag_added": added, "tag_removed": removed}


def _change(
    person: Person,
    action: str,
    operation: MemberOperation,
    record: dict[str, Any],
    summary: dict[str, Any],
) -> Change:
    return Change(
        NAME,
        person.contact_id,
        person.email,
        action,
        record["fingerprint"],
        record,
        summary,
        operation,
        opts_out=action == "unsubscribe",
    )
