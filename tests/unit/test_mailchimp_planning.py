"""Mailchimp mapping and planning, pure: who is subscribed, what changes, which tag moves."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.destinations.mailchimp.mapping import (
    merge_fields,
    plan_person,
    status_for_new,
    subscriber_hash,
)
from kommo_sync.destinations.mailchimp.operations import (
    Subscribe,
    TagChange,
    Update,
    UpdateIfMember,
    method_of,
    operation_of,
)
from kommo_sync.model import Deal, Person, Stage
from kommo_sync.plan import STATUS, Change, Skip, fingerprint

ADA = "ada@acme.io"
ADA_HASH = hashlib.md5(ADA.encode()).hexdigest()
FIELDS = {"FNAME": "Ada", "LNAME": "Lovelace", "PHONE": "+49 30 1234567", "COMPANY": "Acme"}


def config(**overrides: Any) -> MailchimpConfig:
    values: dict[str, Any] = dict(
        api_key="k-us1",
        list_id="l1",
        base_url="http://mc/3.0",
        merge_fields={"PHONE": "phone", "COMPANY": "company"},
    )
    values.update(overrides)
    return MailchimpConfig(**values)


def person(**overrides: Any) -> Person:
    values: dict[str, Any] = dict(
        contact_id=7,
        email=ADA,
        first_name="Ada",
        last_name="Lovelace",
        phone="+49 30 1234567",
        company="Acme",
        lead_source=None,
        consent=True,
        stage=Stage.NEW,
    )
    values.update(overrides)
    return Person(**values)


def plan(
    p: Person, pushed: dict[str, Any] | None = None, suppressed: bool = False, **overrides: Any
) -> Change:
    change = plan_person(p, pushed, suppressed, config(**overrides), DEFAULT_TAGS)
    assert isinstance(change, Change)
    return change


def pushed_after(p: Person, status: str = "subscribed") -> dict[str, Any]:
    """What the state holds after a successful first push of `p`."""
    return {**plan(p).record, STATUS: status}


# new people --------------------------------------------------------------------------------------
def test_a_new_person_with_consent_is_subscribed_if_new_with_their_stage_tag():
    change = plan(person())
    assert (change.action, change.opts_out) == ("create", False)
    assert change.payload == Subscribe(ADA_HASH, ADA, FIELDS, "subscribed", TagChange("New Lead"))
    assert change.summary == {
        "status_if_new": "subscribed",
        "tag_added": "New Lead",
        "tag_removed": None,
    }


def test_the_pushed_record_is_the_desired_member_its_hash_and_fingerprint():
    change = plan(person())
    desired = {"email": ADA, "merge_fields": FIELDS, "tag": "New Lead", "consent": True}
    assert change.record == {**desired, "hash": ADA_HASH, "fingerprint": fingerprint(desired)}
    assert change.fingerprint == fingerprint(desired)


def test_a_new_persons_body_never_says_subscribed_outright():
    body = operation_of(plan(person())).body()
    assert body == {"email_address": ADA, "merge_fields": FIELDS, "status_if_new": "subscribed"}
    assert "status" not in body


def test_unknown_consent_counts_as_consent():
    assert plan(person(consent=None)).payload.status_if_new == "subscribed"


@pytest.mark.parametrize("mode", ["transactional", "pending"])
def test_without_consent_a_new_person_is_added_with_the_configured_status(mode):
    change = plan(person(consent=False), without_consent=mode)
    assert change.action == "create" and change.payload.status_if_new == mode
    assert change.summary["status_if_new"] == mode


def test_without_consent_and_skip_a_new_person_is_only_updated_if_already_a_member():
    change = plan(person(consent=False), without_consent="skip")
    assert change.action == "update_if_exists"
    assert change.payload == UpdateIfMember(ADA_HASH, ADA, FIELDS, TagChange("New Lead"))
    assert change.payload.body() == {"email_address": ADA, "merge_fields": FIELDS}
    assert change.summary["reason"] == "no consent: updated only if already a member"


@pytest.mark.parametrize(
    "mode, action, status",
    [
        ("skip", "update_if_exists", None),
        ("transactional", "create", "transactional"),
        ("pending", "create", "pending"),
    ],
)
def test_a_suppressed_person_is_never_subscribed_even_with_consent(mode, action, status):
    change = plan(person(consent=True), suppressed=True, without_consent=mode)
    assert change.action == action
    assert getattr(change.payload, "status_if_new", None) == status


def test_status_for_new_keeps_out_only_with_skip():
    assert [status_for_new(False, mode) for mode in ("skip", "transactional", "pending")] == [
        None,
        "transactional",
        "pending",
    ]
    assert status_for_new(True, "skip") == "subscribed"


def test_someone_mailchimp_said_is_absent_is_planned_as_new_once_they_change():
    absent = pushed_after(person(), status="absent")
    assert plan_person(person(), absent, False, config(), DEFAULT_TAGS) is None
    change = plan(person(first_name="Augusta"), absent)
    assert change.action == "create" and isinstance(change.payload, Subscribe)


def test_a_person_without_email_is_skipped():
    assert plan_person(person(email=None), None, False, config(), DEFAULT_TAGS) == Skip(
        7, "no_email"
    )


# people pushed before ----------------------------------------------------------------------------
def test_a_member_in_step_needs_no_change():
    assert plan_person(person(), pushed_after(person()), False, config(), DEFAULT_TAGS) is None


def test_a_changed_field_patches_only_the_merge_fields_and_keeps_the_known_status():
    change = plan(person(company="Analytical"), pushed_after(person(), status="unsubscribed"))
    assert change.action == "update"
    assert change.payload == Update(ADA_HASH, merge_fields={**FIELDS, "COMPANY": "Analytical"})
    assert change.summary == {"fields": ["COMPANY"], "renamed_from": None}
    assert change.record[STATUS] == "unsubscribed"


def test_someone_who_unsubscribed_stays_unsubscribed_when_kommo_still_says_consent():
    change = plan(person(first_name="Augusta"), pushed_after(person(), status="unsubscribed"))
    body = change.payload.body()
    assert "status" not in body and "status_if_new" not in body
    assert (change.opts_out, change.record[STATUS]) == (False, "unsubscribed")


def test_a_stage_change_moves_the_tag_from_the_one_pushed_and_sends_no_member_body():
    change = plan(person(stage=Stage.WON), pushed_after(person()))
    assert change.payload == Update(ADA_HASH, tag=TagChange("Customer", was="New Lead"))
    assert change.payload.body() == {}
    assert change.summary == {
        "fields": [],
        "renamed_from": None,
        "tag_added": "Customer",
        "tag_removed": "New Lead",
    }


def test_a_tag_move_removes_only_the_tag_pushed_before_or_any_managed_one_when_unknown():
    moved = TagChange("Customer", was="New Lead")
    first = TagChange("Customer")
    assert [moved.may_carry(tag) for tag in ("New Lead", "Lost Lead")] == [True, False]
    assert [first.may_carry(tag) for tag in ("New Lead", "Lost Lead")] == [True, True]


def test_withdrawn_consent_unsubscribes_and_is_marked_as_opting_out():
    change = plan(person(consent=False), pushed_after(person()))
    assert (change.action, change.opts_out) == ("unsubscribe", True)
    assert change.payload.body() == {"status": "unsubscribed"}
    assert STATUS not in change.record  # the push answer says what Mailchimp holds now


def test_consent_unknown_before_and_withdrawn_now_is_no_unsubscribe():
    change = plan(person(consent=False), pushed_after(person(consent=None)))
    assert (change.action, change.opts_out, change.payload.body()) == ("update", False, {})


def test_a_new_address_renames_the_member_it_was_pushed_under():
    change = plan(person(email="augusta@acme.io"), pushed_after(person()))
    assert change.action == "rename"
    assert change.payload == Update(ADA_HASH, new_email="augusta@acme.io")
    assert change.record["hash"] == subscriber_hash("augusta@acme.io")
    assert change.summary["renamed_from"] == ADA


def test_a_rename_with_consent_withdrawn_is_an_unsubscribe_that_also_renames():
    change = plan(person(email="augusta@acme.io", consent=False), pushed_after(person()))
    assert change.action == "unsubscribe"
    assert change.payload.body() == {"email_address": "augusta@acme.io", "status": "unsubscribed"}


# mapping -----------------------------------------------------------------------------------------
def test_the_subscriber_hash_is_the_md5_of_the_trimmed_lower_cased_address():
    assert subscriber_hash("  Ada@ACME.io ") == ADA_HASH


def test_merge_fields_are_text_within_255_bytes_whole_numbers_without_decimals():
    deal = Deal(id=5, name="Engines", amount=5000.0, status_name="Proposal", pipeline_name="Sales")
    values = merge_fields(
        replace(person(deal=deal), company="é" * 200, phone=None),
        {"PHONE": "phone", "COMPANY": "company", "AMOUNT": "deal_amount", "STAGE": "stage"},
    )
    assert values == {
        "FNAME": "Ada",
        "LNAME": "Lovelace",
        "PHONE": "",
        "COMPANY": "é" * 127,  # 254 bytes: a character is never cut in half
        "AMOUNT": "5000",
        "STAGE": "new",
    }


def test_creates_are_put_and_every_other_operation_a_patch():
    assert method_of(plan(person()).payload) == "PUT"
    assert method_of(plan(person(consent=False)).payload) == "PATCH"
    assert method_of(plan(person(stage=Stage.WON), pushed_after(person())).payload) == "PATCH"


def test_a_change_without_a_mailchimp_operation_is_refused():
    foreign = Change("klaviyo", 7, ADA, "create", "f", {}, payload={"hash": ADA_HASH})
    with pytest.raises(TypeError):
        operation_of(foreign)
