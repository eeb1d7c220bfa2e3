"""Klaviyo mapping and planning, pure: profiles, E.164 phones, stage lists, consent, deal events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.destinations.klaviyo.api import events_job_body
from kommo_sync.destinations.klaviyo.config import DEFAULT_EVENTS, KlaviyoConfig
from kommo_sync.destinations.klaviyo.destination import build_klaviyo
from kommo_sync.destinations.klaviyo.mapping import (
    e164,
    event_payload,
    may_subscribe,
    plan_person,
    unique_id,
)
from kommo_sync.destinations.klaviyo.operations import ListMoves
from kommo_sync.model import Deal, DealEvent, DealEventKind, Person, Stage
from kommo_sync.plan import Skip

MAIN, WON_LIST, LOST_LIST, OPEN_LIST = "MainL1", "WonL22", "LostL3", "OpenL4"


def config(**overrides: Any) -> KlaviyoConfig:
    values: dict[str, Any] = dict(
        api_key="pk_test",
        list_id=MAIN,
        phone_region="DE",
        lists_by_stage={Stage.WON: WON_LIST, Stage.LOST: LOST_LIST, Stage.IN_PROGRESS: OPEN_LIST},
    )
    values.update(overrides)
    return KlaviyoConfig(**values)


def person(**overrides: Any) -> Person:
    values: dict[str, Any] = dict(
        contact_id=7,
        email="ada@acme.io",
        first_name="Ada",
        last_name="Lovelace",
        phone="030 1234567",
        company="Acme",
        lead_source=None,
        consent=True,
        stage=Stage.IN_PROGRESS,
        deal=Deal(
            id=55, name="Engines", amount=5000.0, status_name="Proposal", pipeline_name="Sales"
        ),
        contact_ids=(7,),
    )
    values.update(overrides)
    return Person(**values)


def plan(
    p: Person,
    pushed: dict[str, Any] | None = None,
    suppressed: bool = False,
    **config_overrides: Any,
):
    return plan_person(p, pushed, suppressed, config(**config_overrides), DEFAULT_TAGS)


def pushed_after(
    p: Person, profile_id: str = "01PROFILE", **config_overrides: Any
) -> dict[str, Any]:
    """What the state holds after a successful first push of `p`."""
    change, _ = plan(p, **config_overrides)
    return {**change.record, "profile_id": profile_id}


# phones ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, region, expected",
    [
        ("+49 30 1234567", None, "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("030 1234567", None, None),  # no country code and no region: unreadable
        ("12345", "DE", None),  # parses, but is no valid number
        ("call me", "DE", None),
        (None, "DE", None),
    ],
)
def test_phones_become_e164_with_the_configured_region(raw, region, expected):
    assert e164(raw, region) == expected


def test_an_unreadable_phone_is_dropped_reported_and_the_profile_still_syncs():
    change, notes = plan(person(phone="12345"))
    assert change is not None and "phone_number" not in change.payload.row.attributes
    assert notes == [Skip(7, "bad_phone")]
    assert change.summary["phone_dropped"] == "12345"


# profiles ----------------------------------------------------------------------------------------
def test_first_plan_creates_the_profile_with_deal_properties_and_lists():
    change, notes = plan(person())
    assert notes == [] and change.action == "create" and change.destination == "klaviyo"
    assert change.payload.row.attributes == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "organization": "Acme",
        "phone_number": "+49301234567",
    }
    assert change.payload.row.properties == {
        "crm_stage": "Proposal",
        "crm_pipeline": "Sales",
        "deal_amount": 5000,
        "kommo_deal_id": 55,
        "kommo_contact_id": 7,
    }
    assert change.payload.lists == ListMoves(add=tuple(sorted([MAIN, OPEN_LIST])))
    assert change.payload.lists.remove == ()  # only lists we joined are ever left
    assert (
        change.record["fingerprint"] == change.fingerprint and change.record["profile_id"] is None
    )
    assert change.summary["stage"] == "In Progress"


def test_profile_resource_is_a_json_api_profile_with_email_and_known_values_only():
    change, _ = plan(person(company=None, last_name=""))
    row = change.payload.row.resource()
    assert row["type"] == "profile" and "id" not in row and "meta" not in row
    assert row["attributes"]["email"] == "ada@acme.io"
    assert "organization" not in row["attributes"] and "last_name" not in row["attributes"]


def test_nothing_changed_means_no_change():
    p = person()
    assert plan(p, pushed_after(p)) == (None, [])


def test_a_stage_move_changes_crm_stage_and_moves_between_stage_lists():
    before = person()
    won = person(stage=Stage.WON, deal=replace(before.deal, status_name="Closed - won"))
    change, _ = plan(won, pushed_after(before))
    assert change.action == "update" and change.payload.row.profile_id == "01PROFILE"
    assert change.payload.lists == ListMoves(add=(WON_LIST,), remove=(OPEN_LIST,))
    assert change.summary["fields"] == ["crm_stage"]
    assert change.payload.row.resource()["id"] == "01PROFILE"


def test_a_stage_without_a_list_only_leaves_the_old_stage_list():
    before = person(stage=Stage.WON)
    change, _ = plan(person(stage=Stage.NEW), pushed_after(before))
    assert change.payload.lists == ListMoves(add=(), remove=(WON_LIST,))


def test_an_email_change_updates_the_stored_profile_by_id():
    change, _ = plan(person(email="ada@newco.io"), pushed_after(person()))
    assert change.action == "rename" and change.summary["renamed_from"] == "ada@acme.io"
    row = change.payload.row.resource()
    assert row["id"] == "01PROFILE" and row["attributes"]["email"] == "ada@newco.io"


def test_values_gone_in_kommo_are_cleared_with_null_and_unset():
    change, _ = plan(person(phone=None, deal=None, stage=Stage.NEW), pushed_after(person()))
    row = change.payload.row.resource()
    assert row["attributes"]["phone_number"] is None
    assert row["meta"] == {
        "patch_properties": {"unset": ["crm_pipeline", "crm_stage", "deal_amount", "kommo_deal_id"]}
    }
    assert row["attributes"]["properties"] == {"kommo_contact_id": 7}


def test_a_person_without_email_is_skipped():
    assert plan(person(email=None)) == (None, [Skip(7, "no_email")])


# consent -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "consent, subscribe_with_consent, suppressed, expected",
    [
        (True, True, False, True),
        (False, True, False, False),
        (None, True, False, False),  # consent not tracked is not consent
        (True, False, False, False),
        (True, True, True, False),  # unsubscribed elsewhere (feedback): never re-subscribed
    ],
)
def test_only_consent_in_kommo_subscribes(consent, subscribe_with_consent, suppressed, expected):
    change, _ = plan(
        person(consent=consent),
        suppressed=suppressed,
        subscribe_with_consent=subscribe_with_consent,
    )
    assert change.payload.subscribe is expected and change.payload.unsubscribe is False


def test_a_subscription_is_asked_for_once():
    p = person()
    change, _ = plan(replace(p, first_name="Augusta"), pushed_after(p))
    assert change.payload.subscribe is False


def test_consent_withdrawn_unsubscribes_and_the_change_says_it_opts_out():
    change, _ = plan(person(consent=False), pushed_after(person()))
    assert change.action == "unsubscribe" and change.payload.unsubscribe is True and change.opts_out
    assert change.payload.subscribe is False


def test_consent_never_given_does_not_unsubscribe():
    change, _ = plan(
        person(consent=False, first_name="Augusta"), pushed_after(person(consent=None))
    )
    assert change.payload.unsubscribe is False and not change.opts_out


@pytest.mark.parametrize(
    "marketing, expected",
    [
        ({"consent": "NEVER_SUBSCRIBED", "suppression": [], "list_suppressions": []}, True),
        ({"consent": "UNSUBSCRIBED", "suppression": [], "list_suppressions": []}, False),
        (
            {
                "consent": "NEVER_SUBSCRIBED",
                "suppression": [{"reason": "USER_SUPPRESSED"}],
                "list_suppressions": [],
            },
            False,
        ),
        (
            {
                "consent": "NEVER_SUBSCRIBED",
                "suppression": [],
                "list_suppressions": [{"list_id": MAIN}],
            },
            False,
        ),
        ({"consent": "SUBSCRIBED", "suppression": [], "list_suppressions": []}, False),
        (None, False),  # unknown: never risk lifting an unsubscribe
    ],
)
def test_bulk_subscribe_is_only_sent_for_profiles_that_never_subscribed(marketing, expected):
    assert may_subscribe(marketing, MAIN) is expected


# deal events -------------------------------------------------------------------------------------
AT = 1_767_312_000  # 2026-01-02T00:00:00Z


def deal_event(kind: DealEventKind, **overrides: Any) -> DealEvent:
    values: dict[str, Any] = dict(
        id="01kdq000000000000000000042",
        kind=kind,
        lead_id=55,
        at=AT,
        deal_name="Engines",
        deal_amount=5000.0,
        pipeline="Sales",
        stage="Proposal",
        previous_stage="Qualified",
        person=person(),
    )
    values.update(overrides)
    return DealEvent(**values)


def destination(**overrides: Any):
    return build_klaviyo(config(**overrides), DEFAULT_TAGS, FakeClock())


@pytest.mark.parametrize("kind, metric", [(k, DEFAULT_EVENTS[k.value]) for k in DealEventKind])
def test_each_event_kind_becomes_its_metric_and_action(kind, metric):
    plan_ = destination().plan_events([deal_event(kind)])
    change = plan_.changes[0]
    assert change.action == kind.value and change.record == {
        "event_id": "01kdq000000000000000000042"
    }
    assert change.person_id == 7 and change.email == "ada@acme.io"
    assert change.payload["data"]["attributes"]["metric"]["data"]["attributes"]["name"] == metric


def test_event_body_carries_kommo_time_unique_id_and_deal_properties():
    attributes = event_payload(deal_event(DealEventKind.STAGE_CHANGED), "ada@acme.io", config())[
        "data"
    ]["attributes"]
    assert (
        attributes["time"]
        == datetime.fromtimestamp(AT, UTC).isoformat()
        == "2026-01-02T00:00:00+00:00"
    )
    assert attributes["unique_id"] == unique_id("01kdq000000000000000000042")
    assert attributes["properties"] == {
        "deal_name": "Engines",
        "deal_stage": "Proposal",
        "previous_stage": "Qualified",
        "pipeline": "Sales",
        "deal_amount": 5000,
        "kommo_deal_id": 55,
    }
    assert attributes["profile"] == {
        "data": {"type": "profile", "attributes": {"email": "ada@acme.io"}}
    }
    assert "value" not in attributes and "backfill" not in attributes


def test_unique_id_is_stable_per_kommo_event_and_differs_between_events():
    assert unique_id("a1") == unique_id("a1") != unique_id("a2")


def test_deal_won_carries_value_and_currency_and_created_has_no_previous_stage():
    won = event_payload(deal_event(DealEventKind.WON), "a@b.io", config(currency="USD"))["data"][
        "attributes"
    ]
    assert (won["value"], won["value_currency"]) == (5000, "USD")
    created = event_payload(
        deal_event(DealEventKind.CREATED, previous_stage=None), "a@b.io", config()
    )
    assert "previous_stage" not in created["data"]["attributes"]["properties"]


def test_backfilled_events_are_marked_so_no_flow_fires():
    attributes = event_payload(deal_event(DealEventKind.LOST, backfill=True), "a@b.io", config())[
        "data"
    ]["attributes"]
    assert attributes["backfill"] is True


def test_custom_metric_names_come_from_config():
    names = {**DEFAULT_EVENTS, "won": "Opportunity Won"}
    change = destination(events=names).plan_events([deal_event(DealEventKind.WON)]).changes[0]
    assert (
        change.payload["data"]["attributes"]["metric"]["data"]["attributes"]["name"]
        == "Opportunity Won"
    )


def test_events_of_a_contact_without_email_or_without_contact_are_skipped():
    plan_ = destination().plan_events(
        [
            deal_event(DealEventKind.WON, person=person(email=None)),
            deal_event(DealEventKind.LOST, person=None),
        ]
    )
    assert plan_.changes == [] and [s.reason for s in plan_.skipped] == ["no_email", "no_email"]


def test_events_since_comes_from_config():
    assert (
        destination(events_since=datetime(2025, 1, 1, tzinfo=UTC)).events_since() == 1_735_689_600
    )
    assert destination().events_since() is None


def test_bulk_event_body_groups_per_profile_and_maps_pointers_back():
    payloads = [
        event_payload(
            deal_event(DealEventKind.CREATED, id=str(n), person=person(email=email)),
            email,
            config(),
        )
        for n, email in enumerate(["a@x.io", "b@x.io", "a@x.io"])
    ]
    body, locate = events_job_body(payloads)
    entries = body["data"]["attributes"]["events-bulk-create"]["data"]
    assert [len(e["attributes"]["events"]["data"]) for e in entries] == [2, 1]
    assert "profile" not in entries[0]["attributes"]["events"]["data"][0]["attributes"]
    assert locate(
        "/data/attributes/events-bulk-create/data/0/attributes/events/data/1/attributes/time"
    ) == [2]
    assert locate(
        "/data/attributes/events-bulk-create/data/0/attributes/profile/data/attributes/email"
    ) == [0, 2]
    assert locate("/data") == []
