"""The drift comparisons of `reconcile`, pure: what was pushed against what the vendor holds."""

from __future__ import annotations

from typing import Any

from kommo_sync.destinations.base import Drift, DriftKind
from kommo_sync.destinations.klaviyo import reconcile as klaviyo
from kommo_sync.destinations.mailchimp import reconcile as mailchimp
from kommo_sync.destinations.mailchimp.mapping import ABSENT, ARCHIVED
from kommo_sync.model import Feedback, FeedbackKind
from kommo_sync.reconcile import repaired, repairs

MANAGED = ("New Lead", "In Progress", "Customer", "Lost Lead")
PLACE = "Mailchimp list 'CRM'"
FIELDS = {"FNAME": "Ada", "LNAME": "Lovelace", "PHONE": "", "DEAL": "5000"}


def pushed_member(**overrides: Any) -> dict[str, Any]:
    record = {
        "email": "ada@firm.io",
        "hash": "h-ada",
        "merge_fields": dict(FIELDS),
        "tag": "Customer",
        "consent": True,
        "fingerprint": "f1",
    }
    return {**record, **overrides}


def member(**overrides: Any) -> dict[str, Any]:
    held = {
        "id": "h-ada",
        "email_address": "ada@firm.io",
        "status": "subscribed",
        "merge_fields": {**FIELDS, "DEAL": 5000.0, "PHONE": None, "ADDRESS": ""},
        "tags": [{"id": 1, "name": "Customer"}, {"id": 9, "name": "VIP"}],
        "last_changed": "2026-01-02T00:00:00+00:00",
    }
    return {**held, **overrides}


def mailchimp_drift(record: dict[str, Any], held: dict[str, Any] | None, archived=()):
    members = {held["id"]: held} if held else {}
    return mailchimp.compare({7: record}, members, set(archived), MANAGED, PLACE)


def test_a_member_in_step_has_no_drift_whatever_its_own_tags_and_number_formats() -> None:
    found = mailchimp_drift(pushed_member(), member())
    assert (found.drift, found.unsubscribes) == ([], [])


def test_a_member_gone_is_archived_or_missing_and_its_record_says_so() -> None:
    assert mailchimp_drift(pushed_member(), None, archived={"h-ada"}).drift == [
        Drift(7, DriftKind.ARCHIVED, "archived in Mailchimp", status=ARCHIVED)
    ]
    assert mailchimp_drift(pushed_member(), None).drift == [
        Drift(7, DriftKind.MISSING, "not in the audience", status=ABSENT)
    ]


def test_people_known_to_be_out_of_the_audience_are_not_drift() -> None:
    for status in (ABSENT, ARCHIVED):
        assert mailchimp_drift(pushed_member(status=status), None).drift == []


def test_a_gone_member_known_unsubscribed_is_suppressed_without_a_note() -> None:
    found = mailchimp_drift(pushed_member(status="unsubscribed"), None)
    assert found.unsubscribes == [
        Feedback(
            "mailchimp",
            FeedbackKind.UNSUBSCRIBED,
            "ada@firm.io",
            0,
            PLACE,
            "mailchimp:unsubscribed:h-ada:0",
        )
    ]


def test_the_stage_tag_missing_or_another_managed_tag_on_is_a_wrong_tag() -> None:
    tags = [{"name": "New Lead"}, {"name": "VIP"}]
    assert mailchimp_drift(pushed_member(), member(tags=tags)).drift == [
        Drift(7, DriftKind.WRONG_TAG, "missing Customer; extra New Lead")
    ]


def test_a_merge_field_edited_is_a_wrong_field() -> None:
    fields = {**FIELDS, "LNAME": "Edited", "DEAL": "5001"}
    assert mailchimp_drift(pushed_member(), member(merge_fields=fields)).drift == [
        Drift(7, DriftKind.WRONG_FIELD, "DEAL, LNAME")
    ]


def test_an_unsubscribe_unknown_to_the_state_is_drift_and_feedback() -> None:
    held = member(status="unsubscribed", unsubscribe_reason="too many emails")
    found = mailchimp_drift(pushed_member(), held)
    assert found.drift == [Drift(7, DriftKind.UNSUBSCRIBED, "unsubscribed in Mailchimp")]
    assert [(f.kind, f.email, f.at, f.key, f.detail) for f in found.unsubscribes] == [
        (
            FeedbackKind.UNSUBSCRIBED,
            "ada@firm.io",
            1767312000,
            "mailchimp:unsubscribed:h-ada:1767312000",
            "too many emails",
        )
    ]
    known = mailchimp_drift(pushed_member(status="unsubscribed"), held)
    assert (known.drift, known.unsubscribes) == ([], [])


def test_mailchimp_cost_is_the_members_pages_and_one_archived_page() -> None:
    costs = [mailchimp.reconcile_cost(n) for n in (0, 1000, 1001, 250_000)]
    assert costs == [2, 2, 3, 251]


# Klaviyo ------------------------------------------------------------------------------------------
LIST, WON = "L-all", "L-won"


def pushed_profile(**overrides: Any) -> dict[str, Any]:
    record = {
        "email": "ada@firm.io",
        "profile_id": "P1",
        "attributes": {"first_name": "Ada", "last_name": None, "phone_number": "+4915112345678"},
        "properties": {"crm_stage": "Won", "deal_amount": 5000, "kommo_contact_id": 7},
        "lists": [LIST, WON],
        "fingerprint": "f1",
    }
    return {**record, **overrides}


def profile(**attributes: Any) -> dict[str, Any]:
    held = {
        "email": "ada@firm.io",
        "first_name": "Ada",
        "last_name": "Someone",  # pushed empty: not compared
        "phone_number": "+4915112345678",
        "properties": {"crm_stage": "Won", "deal_amount": 5000, "kommo_contact_id": 7, "x": 1},
        "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED", "suppression": []}}},
    }
    return {"type": "profile", "id": "P1", "attributes": {**held, **attributes}}


def klaviyo_drift(record: dict[str, Any], held: dict[str, Any] | None, lists=(LIST, WON)):
    profiles = {held["id"]: held} if held else {}
    members = {list_id: ({held["id"]} if held else set()) for list_id in lists}
    return klaviyo.compare({7: record}, profiles, members)


def test_a_profile_in_step_has_no_drift() -> None:
    found = klaviyo_drift(pushed_profile(), profile())
    assert (found.drift, found.unsubscribes) == ([], [])


def test_a_profile_out_of_a_list_it_was_pushed_into_is_not_in_list() -> None:
    held = profile()
    found = klaviyo.compare({7: pushed_profile()}, {"P1": held}, {LIST: {"P1"}, WON: set()})
    assert found.drift == [Drift(7, DriftKind.NOT_IN_LIST, WON)]
    assert klaviyo_drift(pushed_profile(), None).drift == [
        Drift(7, DriftKind.NOT_IN_LIST, LIST),
        Drift(7, DriftKind.NOT_IN_LIST, WON),
    ]


def test_a_profile_is_found_by_email_when_its_id_is_not_known() -> None:
    found = klaviyo_drift(pushed_profile(profile_id=None, email="ADA@firm.io"), profile())
    assert found.drift == []


def test_an_attribute_or_property_edited_is_a_wrong_field() -> None:
    properties = {"crm_stage": "Lost", "deal_amount": 5000, "kommo_contact_id": 7}
    held = profile(first_name="Ann", properties=properties)
    assert klaviyo_drift(pushed_profile(), held).drift == [
        Drift(7, DriftKind.WRONG_FIELD, "crm_stage, first_name")
    ]


def test_a_klaviyo_suppression_unknown_to_the_state_is_drift_and_feedback() -> None:
    suppression = [{"reason": "UNSUBSCRIBE", "timestamp": "2026-01-02T00:00:00+00:00"}]
    marketing = {"consent": "UNSUBSCRIBED", "suppression": suppression}
    held = profile(subscriptions={"email": {"marketing": marketing}})
    found = klaviyo_drift(pushed_profile(), held)
    assert found.drift == [Drift(7, DriftKind.UNSUBSCRIBED, "email marketing in Klaviyo")]
    assert [(f.kind, f.at, f.key) for f in found.unsubscribes] == [
        (FeedbackKind.UNSUBSCRIBED, 1767312000, "klaviyo:UNSUBSCRIBE:P1:1767312000")
    ]
    known = klaviyo_drift(pushed_profile(status="unsubscribed"), held)
    assert (known.drift, known.unsubscribes) == ([], [])


def test_an_unsubscribed_consent_without_a_suppression_is_still_feedback() -> None:
    marketing = {"consent": "UNSUBSCRIBED", "consent_timestamp": "2026-01-02T00:00:00+00:00"}
    held = profile(subscriptions={"email": {"marketing": marketing}})
    [item] = klaviyo_drift(pushed_profile(), held).unsubscribes
    assert (item.kind, item.at, item.key) == (
        FeedbackKind.UNSUBSCRIBED,
        1767312000,
        "klaviyo:UNSUBSCRIBE:P1:1767312000",
    )


def test_klaviyo_cost_is_the_pages_of_each_managed_list() -> None:
    assert [klaviyo.reconcile_cost(n, 1) for n in (0, 100, 250)] == [1, 1, 3]
    assert klaviyo.reconcile_cost(250, 3) == 3 + 3 + 2  # stage lists share the people


# the stage's rewrite ------------------------------------------------------------------------------
def test_only_drift_beyond_an_opt_out_is_repaired_and_a_gone_status_is_kept() -> None:
    drift = [
        Drift(1, DriftKind.UNSUBSCRIBED),
        Drift(2, DriftKind.ARCHIVED, status=ARCHIVED),
        Drift(2, DriftKind.WRONG_TAG),
        Drift(3, DriftKind.UNSUBSCRIBED),
        Drift(3, DriftKind.WRONG_FIELD),
    ]
    assert repairs(drift) == {2: ARCHIVED, 3: None}


def test_a_repaired_record_loses_its_fingerprint_and_takes_the_status() -> None:
    record = {"email": "ada@firm.io", "fingerprint": "f1", "status": "subscribed"}
    assert repaired(record, ABSENT) == {"email": "ada@firm.io", "status": ABSENT}
    assert repaired(record, None) == {"email": "ada@firm.io", "status": "subscribed"}
