"""Klaviyo mapping and planning, pure: what a person's profile should hold (properties, E.164
phone, stage lists, consent), the change from what was last pushed, and deal events as
`POST /api/events` bodies. No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import phonenumbers

from kommo_sync.clock import iso_utc
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.destinations.klaviyo.field_config import FieldMap
from kommo_sync.destinations.klaviyo.fields import (
    birth_date,
    kommo_tags,
    mapped_properties,
    sms_consent,
)
from kommo_sync.destinations.klaviyo.operations import ListMoves, ProfileRow, ProfileSync
from kommo_sync.model import DealEvent, DealEventKind, FeedbackKind, Person, Stage
from kommo_sync.plan import STATUS, Change, Plan, Skip, fingerprint

NAME = "klaviyo"


def e164(phone: str | None, region: str | None) -> str | None:
    """The phone in E.164, or None when it does not read as a valid number."""
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _amount(value: float) -> float | int:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def profile_attributes(person: Person, phone: str | None) -> dict[str, str | None]:
    return {
        "first_name": person.first_name or None,
        "last_name": person.last_name or None,
        "organization": person.company or None,
        "phone_number": phone,
    }


def profile_properties(person: Person) -> dict[str, Any]:
    """Custom properties; None means "not known now" (unset when it was pushed before)."""
    deal = person.deal
    return {
        "crm_stage": deal.status_name if deal else None,
        "crm_pipeline": deal.pipeline_name if deal else None,
        "deal_amount": _amount(deal.amount) if deal else None,
        "kommo_deal_id": deal.id if deal else None,
        "kommo_contact_id": person.contact_id,
    }


def lists_for(stage: Stage, config: KlaviyoConfig) -> list[str]:
    """`list_id` for everyone, plus the stage's list when one is configured."""
    stage_list = config.lists_by_stage.get(stage)
    return sorted({config.list_id, stage_list} if stage_list else {config.list_id})


def desired_profile(
    person: Person,
    config: KlaviyoConfig,
    suppressed: bool,
    sms_blocked: bool = False,
    counts: Counter[str] | None = None,
) -> dict[str, Any]:
    """What the profile should hold; its fingerprint and, as pushed, the state's record.
    The field map adds keys only when configured, so configs without one keep their
    fingerprints. `sms_blocked`: the person opted out of SMS in Klaviyo; `counts` receives what
    the field map skipped and noted."""
    phone = e164(person.phone, config.phone_region)
    properties, field_counts = field_map_properties(person, config.field_map)
    desired = {
        "email": person.email,
        "attributes": profile_attributes(person, phone),
        "properties": {**profile_properties(person), **properties},
        "lists": lists_for(person.stage, config),
        "consent": person.consent,
        "subscribe": config.subscribe_with_consent and person.consent is True and not suppressed,
    }
    if config.field_map.sms_consent is not None:
        desired["sms"] = desired_sms(person, config.field_map, phone, sms_blocked)
    if counts is not None:
        counts.update(field_counts)
    return desired


def field_map_properties(
    person: Person, field_map: FieldMap
) -> tuple[dict[str, Any], Counter[str]]:
    """The mapped properties and `kommo_tags` (when configured), with the field counts."""
    properties, counts = mapped_properties(person, field_map)
    if field_map.tags:
        properties["kommo_tags"] = kommo_tags(person, field_map)
    return properties, counts


def desired_sms(
    person: Person, field_map: FieldMap, phone: str | None, blocked: bool
) -> dict[str, Any]:
    """SMS consent in Kommo, and whether the profile should be subscribed to SMS marketing:
    only with an E.164 phone, never after an SMS opt-out in Klaviyo, and on an age-gated
    account only with a date of birth."""
    consent = sms_consent(person, field_map)
    sms: dict[str, Any] = {"consent": consent, "subscribe": consent and bool(phone) and not blocked}
    if field_map.age_gated:
        sms["birth_date"] = birth_date(person, field_map)
        sms["subscribe"] = sms["subscribe"] and sms["birth_date"] is not None
    return sms


def sms_held(
    person: Person, desired: dict[str, Any], before: dict[str, Any], blocked: bool
) -> str | None:
    """Why a checked SMS box gives no subscription now (counted as `sms.<reason>`)."""
    sms = desired.get("sms") or {}
    if not sms.get("consent") or sms["subscribe"] or (before.get("sms") or {}).get("subscribe"):
        return None
    if blocked:
        return "kept_unsubscribed"
    if desired["attributes"]["phone_number"] is None:
        return "bad_phone" if person.phone else "no_phone"
    return "no_birthday"


def may_subscribe(marketing: dict[str, Any] | None, list_id: str) -> bool:
    """Only a profile that never subscribed and carries no suppression: Bulk Subscribe lifts
    them."""
    if (
        not marketing
        or marketing.get("consent") != "NEVER_SUBSCRIBED"
        or marketing.get("suppression")
    ):
        return False
    return not any(s.get("list_id") == list_id for s in marketing.get("list_suppressions") or [])


def plan_person(
    person: Person,
    pushed: dict[str, Any] | None,
    suppressed: bool,
    config: KlaviyoConfig,
    tags: Mapping[Stage, str],
    sms_blocked: bool = False,
    counts: Counter[str] | None = None,
) -> tuple[Change | None, list[Skip]]:
    """The one change this person needs in Klaviyo (None when in step), and notes to count;
    `counts` (when given) receives the field map's skips and notes and the SMS holds of a
    person with a change."""
    if not person.email:
        return None, [Skip(person.contact_id, "no_email")]
    found: Counter[str] = Counter()
    desired = desired_profile(person, config, suppressed, sms_blocked, found)
    digest = fingerprint(desired)
    if pushed is not None and pushed.get("fingerprint") == digest:
        return None, []
    held = sms_held(person, desired, pushed or {}, sms_blocked)
    if counts is not None:
        counts.update(found + Counter([f"sms.{held}"] if held else []))
    bad_phone = bool(person.phone) and desired["attributes"]["phone_number"] is None
    change = profile_change(person, desired, digest, pushed, config)
    summary = {
        **change.summary,
        "stage": tags.get(person.stage),
        "phone_dropped": person.phone if bad_phone else None,
    }
    return replace(change, summary=summary), [
        Skip(person.contact_id, "bad_phone")
    ] if bad_phone else []


def profile_change(
    person: Person,
    desired: dict[str, Any],
    digest: str,
    pushed: dict[str, Any] | None,
    config: KlaviyoConfig,
) -> Change:
    before = pushed or {}
    add, remove = list_moves(desired["lists"], pushed, config)
    unsubscribe = before.get("consent") is True and person.consent is False
    subscribe = desired["subscribe"] and not before.get("subscribe")
    renamed = pushed is not None and before.get("email") != person.email
    sms_subscribe, sms_unsubscribe = sms_moves(desired, before)
    action = (
        "unsubscribe" if unsubscribe else "rename" if renamed else "update" if pushed else "create"
    )
    operation = ProfileSync(
        profile_row(person.email or "", desired, before),
        ListMoves(tuple(add), tuple(remove)),
        subscribe=subscribe,
        unsubscribe=unsubscribe,
        sms_subscribe=sms_subscribe,
        sms_unsubscribe=sms_unsubscribe,
        birth_date=(desired.get("sms") or {}).get("birth_date"),
    )
    summary = {
        "fields": changed_fields(desired, before),
        "lists_added": add,
        "lists_removed": remove,
        "subscribe": subscribe or None,
        "unsubscribe": unsubscribe or None,
        "renamed_from": before.get("email") if renamed else None,
    }
    if "sms" in desired:
        summary.update(sms_subscribe=sms_subscribe or None, sms_unsubscribe=sms_unsubscribe or None)
    record = {**desired, "profile_id": before.get("profile_id"), "fingerprint": digest}
    if unsubscribe:  # our own unsubscribe is not news for the notes
        record[STATUS] = FeedbackKind.UNSUBSCRIBED.value
    return Change(
        NAME,
        person.contact_id,
        person.email,
        action,
        digest,
        record,
        summary,
        operation,
        opts_out=unsubscribe,
    )


def sms_moves(desired: dict[str, Any], before: dict[str, Any]) -> tuple[bool, bool]:
    """(subscribe, unsubscribe) for SMS marketing: a subscription once, when it is due and was
    not pushed; an unsubscribe when a box we subscribed for is unchecked."""
    sms, pushed_sms = desired.get("sms"), before.get("sms") or {}
    if sms is None:
        return False, False
    subscribed = bool(pushed_sms.get("subscribe"))
    return sms["subscribe"] and not subscribed, subscribed and not sms["consent"]


def profile_row(email: str, desired: dict[str, Any], before: dict[str, Any]) -> ProfileRow:
    """The import row: known values, nulls for values gone since the last push, unset
    properties that were pushed and are unknown now."""
    pushed_properties = before.get("properties") or {}
    return ProfileRow(
        email=email,
        attributes=_attributes_to_send(desired["attributes"], before.get("attributes") or {}),
        properties={k: v for k, v in desired["properties"].items() if v is not None},
        unset=tuple(
            sorted(
                k
                for k, v in desired["properties"].items()
                if v is None and pushed_properties.get(k) is not None
            )
        ),
        profile_id=before.get("profile_id"),
    )


def list_moves(
    lists: list[str], pushed: dict[str, Any] | None, config: KlaviyoConfig
) -> tuple[list[str], list[str]]:
    """Lists to join and to leave: we leave only lists we joined (the stage lists are ours); a
    record without its fingerprint (a full resync) joins every list it belongs in again."""
    if pushed is None:
        return lists, []
    before = set(pushed.get("lists") or [])
    if pushed.get("fingerprint") is None:  # a full resync: memberships are not trusted
        return sorted(lists), sorted(before - set(lists))
    return sorted(set(lists) - before), sorted(before - set(lists))


def _attributes_to_send(attributes: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Known values, and null for a value pushed before and gone now (null clears it)."""
    return {k: v for k, v in attributes.items() if v is not None or before.get(k) is not None}


def changed_fields(desired: dict[str, Any], before: dict[str, Any]) -> list[str]:
    old = {**(before.get("attributes") or {}), **(before.get("properties") or {})}
    new = {**desired["attributes"], **desired["properties"]}
    return sorted(name for name, value in new.items() if old.get(name) != value)


# deal events ----------------------------------------------------------------------------------
def unique_id(event_id: str) -> str:
    """Stable per Kommo event, so Klaviyo records a re-sent event once."""
    return f"kommo-event-{event_id}"


def event_properties(event: DealEvent) -> dict[str, Any]:
    values = {
        "deal_name": event.deal_name,
        "deal_stage": event.stage,
        "previous_stage": event.previous_stage,
        "pipeline": event.pipeline,
        "deal_amount": _amount(event.deal_amount),
        "kommo_deal_id": event.lead_id,
    }
    return {k: v for k, v in values.items() if v is not None}


def event_payload(event: DealEvent, email: str, config: KlaviyoConfig) -> dict[str, Any]:
    """The `POST /api/events` body; bulk jobs regroup the same attributes per profile."""
    attributes: dict[str, Any] = {
        "properties": event_properties(event),
        "time": iso_utc(event.at),
        "unique_id": unique_id(event.id),
        "metric": {
            "data": {"type": "metric", "attributes": {"name": config.events[event.kind.value]}}
        },
        "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
    }
    if event.kind is DealEventKind.WON:
        attributes.update(value=_amount(event.deal_amount), value_currency=config.currency)
    if event.backfill:
        attributes["backfill"] = True
    return {"data": {"type": "event", "attributes": attributes}}


def event_change(event: DealEvent, person: Person, config: KlaviyoConfig) -> Change:
    payload = event_payload(event, person.email or "", config)
    summary = {
        "event": config.events[event.kind.value],
        "deal": event.deal_name,
        "stage": event.stage,
        "from": event.previous_stage,
        "at": iso_utc(event.at),
        "backfill": event.backfill or None,
    }
    return Change(
        NAME,
        person.contact_id,
        person.email,
        event.kind.value,
        fingerprint(payload),
        {"event_id": event.id},
        summary,
        payload,
    )


def plan_events(events: list[DealEvent], config: KlaviyoConfig) -> Plan:
    """One event change per deal event of a person with an email."""
    plan = Plan()
    for event in events:
        person = event.person
        if person is None or not person.email:
            plan.skipped.append(Skip(person.contact_id if person else 0, "no_email"))
        else:
            plan.changes.append(event_change(event, person, config))
    return plan
