"""End to end, Kommo sandbox → kommo-sync → Klaviyo sandbox: profiles, stage lists, consent and
exactly-once deal events from Kommo's event history."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.destinations.klaviyo import KlaviyoDestination, build_klaviyo
from kommo_sync.destinations.klaviyo.config import DEFAULT_EVENTS
from kommo_sync.destinations.klaviyo.mapping import plan_person
from kommo_sync.model import DealEvent, DealEventKind, Person, Stage
from tests.conftest import BOTH_BACKENDS, World

pytestmark = BOTH_BACKENDS

DEAL_METRICS = set(DEFAULT_EVENTS.values())
BEFORE_HISTORY = "2025-01-01"


def deal_events(world: World) -> list[dict[str, Any]]:
    return [e for e in world.klaviyo.events() if e["metric"] in DEAL_METRICS]


def consent_of(world: World, email: str) -> str:
    return world.klaviyo.profile_by_email(email)["subscriptions"]["email"]["marketing"]["consent"]


def people(world: World, sales: int, count: int, **contact: Any) -> list[int]:
    """`count` contacts, each with one lead in the first stage."""
    ids = []
    for n in range(count):
        cid = world.kommo.add_contact(f"P{n}", "Test", email=f"p{n}@firm.io", **contact)
        world.kommo.add_lead(f"Deal {n}", 100 * (n + 1), sales, contact_ids=[cid])
        ids.append(cid)
    return ids


def writes(world: World, path: str) -> list[Any]:
    return [r for r in world.klaviyo.writes() if r.path == path]


# first sync ---------------------------------------------------------------------------------------
def test_first_sync_creates_profiles_list_memberships_and_deal_created_events(world, sales):
    world.with_klaviyo(events_since=BEFORE_HISTORY)
    ada = world.kommo.add_contact(
        "Ada",
        "Lovelace",
        email="Ada@Analytical.io",
        phone="+49 30 1234567",
        company_id=world.kommo.add_company("Analytical Engines"),
        consent=True,
    )
    lead = world.kommo.add_lead(
        "Engines", 5000, sales, world.status_id(sales, "Proposal"), contact_ids=[ada]
    )
    nobody = world.kommo.add_contact("No", "Mail")
    world.kommo.add_lead("Walk-in", 10, sales, contact_ids=[nobody])
    result = world.run()
    profile = world.klaviyo.profile_by_email("ada@analytical.io")
    assert (
        profile["first_name"],
        profile["last_name"],
        profile["organization"],
        profile["phone_number"],
    ) == ("Ada", "Lovelace", "Analytical Engines", "+49301234567")
    assert profile["properties"] == {
        "crm_stage": "Proposal",
        "crm_pipeline": "Sales",
        "deal_amount": 5000,
        "kommo_deal_id": lead,
        "kommo_contact_id": ada,
    }
    assert profile["lists"] == [world.klaviyo_list]
    [event] = deal_events(world)
    assert event["metric"] == "Deal Created" and event["profile_id"] == profile["id"]
    assert event["time"] == world.kommo.lead(lead)["created_at"]
    assert event["properties"]["deal_stage"] == "Incoming leads" and event["unique_id"].startswith(
        "kommo-event-"
    )
    assert (
        result.counts["klaviyo.events_skipped.no_email"] == 1
        and result.counts["klaviyo.skipped.no_email"] == 1
    )


def test_with_the_default_events_since_history_fires_nothing(world, sales):
    world.with_klaviyo()
    people(world, sales, 3)
    world.clock.advance(600)
    world.run()
    assert len(world.klaviyo.profiles.by_id) == 3 and deal_events(world) == []
    world.clock.advance(3600)
    world.run()
    assert deal_events(world) == []


def test_a_first_sync_of_many_goes_through_bulk_jobs(world, sales):
    won_list = world.klaviyo.add_list("Won")
    world.with_klaviyo(events_since=BEFORE_HISTORY, lists_by_stage={"won": won_list})
    ids = people(world, sales, 25, consent=True)
    world.kommo.move_lead(world.kommo.contact(ids[0])["lead_ids"][0], 142)
    result = world.run()
    assert result.counts["klaviyo.done"] == 25 and not result.rejections
    jobs = writes(world, "/api/profile-bulk-import-jobs")
    joined = sorted(
        sorted(item["id"] for item in j.json()["data"]["relationships"]["lists"]["data"])
        for j in jobs
    )
    assert joined == sorted(
        [[world.klaviyo_list], sorted([world.klaviyo_list, won_list])]
    )  # lists joined in the jobs
    assert not writes(world, "/api/profile-import") and not writes(world, f"/api/lists/{won_list}")
    assert not [
        r
        for r in world.klaviyo.requests("GET", "/api/profile-bulk-import-jobs/")
        if r.path.endswith("/profiles")
    ]
    assert len(world.klaviyo.list_members(world.klaviyo_list)) == 25
    assert world.klaviyo.list_members(won_list) == {
        world.klaviyo.profile_by_email("p0@firm.io")["id"]
    }
    assert len(writes(world, "/api/profile-subscription-bulk-create-jobs")) == 1
    assert consent_of(world, "p7@firm.io") == "SUBSCRIBED"
    assert len(writes(world, "/api/event-bulk-create-jobs")) == 1 and not writes(
        world, "/api/events"
    )
    assert sorted(e["metric"] for e in deal_events(world)).count("Deal Created") == 25


# deal events between runs -------------------------------------------------------------------------
def test_two_stage_moves_and_a_win_between_runs_become_three_events_in_order(world, sales):
    world.with_klaviyo(events_since=BEFORE_HISTORY, currency="USD")
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io")
    lead = world.kommo.add_lead("Engines", 5000, sales, contact_ids=[ada])
    world.run()
    moves = []
    for name in ("Qualified", "Proposal"):
        world.clock.advance(3600)
        world.kommo.move_lead(lead, world.status_id(sales, name))
        moves.append(int(world.clock.now()))
    world.clock.advance(3600)
    world.kommo.move_lead(lead, 142)
    moves.append(int(world.clock.now()))
    world.clock.advance(60)
    world.run()
    events = deal_events(world)[1:]
    assert [e["metric"] for e in events] == ["Stage Changed", "Stage Changed", "Deal Won"]
    assert [e["time"] for e in events] == moves
    assert [(e["properties"]["previous_stage"], e["properties"]["deal_stage"]) for e in events] == [
        ("Incoming leads", "Qualified"),
        ("Qualified", "Proposal"),
        ("Proposal", "Closed - won"),
    ]
    assert (events[2]["value"], events[2]["value_currency"]) == (5000, "USD")


def test_a_rerun_and_a_backfill_send_no_event_again_and_older_history_goes_as_backfill(
    world, sales
):
    world.with_klaviyo(events_since="2025-12-01")
    old = world.kommo.add_contact("Old", email="old@firm.io")
    world.kommo.add_lead(
        "Old deal", 100, sales, contact_ids=[old], created_at=1_748_736_000
    )  # 2025-06-01
    people(world, sales, 2)
    world.run()
    assert len(deal_events(world)) == 2
    world.clock.advance(3600)
    world.run()
    assert len(deal_events(world)) == 2
    result = world.cli("backfill", "--since", "2025-01-01")
    assert result.exit_code == 0, result.output
    events = deal_events(world)
    assert len(events) == 3 and events[2]["email"] == "old@firm.io"
    backfilled = [
        r.json()["data"]["attributes"]
        for r in writes(world, "/api/events")
        if r.json()["data"]["attributes"]["profile"]["data"]["attributes"]["email"] == "old@firm.io"
    ]
    assert [a["backfill"] for a in backfilled] == [True]
    world.cli("backfill", "--since", "2025-01-01")
    assert len(deal_events(world)) == 3


def test_lost_sends_deal_lost_and_moves_to_the_lost_list(world, sales):
    open_list, lost_list = world.klaviyo.add_list("Open deals"), world.klaviyo.add_list("Lost")
    world.with_klaviyo(
        events_since=BEFORE_HISTORY, lists_by_stage={"in_progress": open_list, "lost": lost_list}
    )
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io")
    lead = world.kommo.add_lead(
        "Engines", 5000, sales, world.status_id(sales, "Qualified"), contact_ids=[ada]
    )
    world.run()
    profile_id = world.klaviyo.profile_by_email("ada@analytical.io")["id"]
    assert profile_id in world.klaviyo.list_members(open_list)
    world.clock.advance(3600)
    world.kommo.move_lead(lead, 143)
    world.run()
    assert [e["metric"] for e in deal_events(world)] == ["Deal Created", "Deal Lost"]
    assert profile_id in world.klaviyo.list_members(lost_list)
    assert profile_id not in world.klaviyo.list_members(open_list)
    assert profile_id in world.klaviyo.list_members(world.klaviyo_list)
    assert (
        world.klaviyo.profile_by_email("ada@analytical.io")["properties"]["crm_stage"]
        == "Closed - lost"
    )


# identity -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("others", [0, 12])
def test_an_email_change_keeps_one_profile(world, sales, others):
    world.with_klaviyo()
    ids = people(world, sales, others)
    ada = world.kommo.add_contact("Ada", email="ada@old.io")
    world.run()
    profile_id = world.klaviyo.profile_by_email("ada@old.io")["id"]
    world.clock.advance(60)
    world.kommo.update_contact(ada, email="ada@new.io")
    for cid in ids:  # enough changes for the bulk path
        world.kommo.update_contact(cid, first_name="Renamed")
    world.run()
    assert world.klaviyo.profile_by_email("ada@old.io") is None
    assert world.klaviyo.profile_by_email("ada@new.io")["id"] == profile_id
    assert len(world.klaviyo.profiles.by_id) == others + 1


@pytest.mark.parametrize("others", [0, 12])
def test_a_shared_office_phone_never_merges_two_people(world, sales, others):
    world.with_klaviyo(phone_region="DE")
    world.kommo.add_contact("Ada", email="ada@office.io", phone="030 1234567")
    world.kommo.add_contact("Bob", email="bob@office.io", phone="030 1234567")
    people(world, sales, others)
    result = world.run()
    ada, bob = (world.klaviyo.profile_by_email(e) for e in ("ada@office.io", "bob@office.io"))
    assert ada["id"] != bob["id"] and ada["first_name"] == "Ada" and bob["first_name"] == "Bob"
    assert ada["phone_number"] == "+49301234567" and bob["phone_number"] is None
    assert not result.rejections and len(world.klaviyo.profiles.by_id) == others + 2
    assert len(writes(world, "/api/profile-bulk-import-jobs")) == (1 if others else 0)
    singles = [r.json()["data"]["attributes"] for r in writes(world, "/api/profile-import")]
    if others:  # in bulk the second card goes without the phone in the job itself
        rows = [
            row["attributes"]
            for w in writes(world, "/api/profile-bulk-import-jobs")
            for row in w.json()["data"]["attributes"]["profiles"]["data"]
        ]
        assert [
            r.get("phone_number") for r in rows if r["email"] in ("ada@office.io", "bob@office.io")
        ] == ["+49301234567", None]
        assert singles == []
    else:  # one by one, the refused import is resent without it
        assert [a.get("phone_number") for a in singles if a["email"] == "bob@office.io"][-1] is None


def test_a_profile_of_someone_else_with_our_phone_is_not_taken_over(world, sales):
    world.with_klaviyo(phone_region="DE")
    stranger = world.klaviyo.add_profile("reception@office.io", phone_number="+49301234567")
    world.kommo.add_contact("Ada", email="ada@office.io", phone="030 1234567")
    world.run()
    assert world.klaviyo.profile_by_id(stranger)["email"] == "reception@office.io"
    assert world.klaviyo.profile_by_email("ada@office.io")["id"] != stranger


# bad records --------------------------------------------------------------------------------------
@pytest.mark.parametrize("others", [2, 12])
def test_a_bad_email_rejects_only_that_record_with_klaviyos_reason(world, sales, others):
    world.with_klaviyo(events_since=BEFORE_HISTORY)
    people(world, sales, others)
    broken = world.kommo.add_contact("Broken", email="broken@@firm")
    world.kommo.add_lead("Broken deal", 1, sales, contact_ids=[broken])
    result = world.run()
    assert [r["contact_id"] for r in result.rejections] == [
        broken,
        broken,
    ]  # the profile and its event
    assert all(
        "Invalid email address" in r["reason"] and r["kind"] == "permanent"
        for r in result.rejections
    )
    assert len(world.klaviyo.profiles.by_id) == others
    assert len(deal_events(world)) == others
    if others > 10:  # refused as a whole, resent without the bad row
        assert [r.status for r in writes(world, "/api/profile-bulk-import-jobs")] == [400, 202]
        assert [r.status for r in writes(world, "/api/event-bulk-create-jobs")] == [400, 202]
    world.clock.advance(60)
    assert world.run().rejections == []  # refused again only when the data changes


def test_an_unreadable_phone_is_dropped_and_counted_and_the_profile_syncs(world, sales):
    world.with_klaviyo(phone_region="DE")
    world.kommo.add_contact("Ada", email="ada@firm.io", phone="12345")
    result = world.run()
    assert result.counts["klaviyo.skipped.bad_phone"] == 1 and not result.rejections
    assert world.klaviyo.profile_by_email("ada@firm.io")["phone_number"] is None


# consent ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("others", [0, 12])
def test_no_consent_means_no_subscription(world, sales, others):
    world.with_klaviyo()
    people(world, sales, others)
    world.kommo.add_contact("Yes", email="yes@firm.io", consent=True)
    world.kommo.add_contact("No", email="no@firm.io", consent=False)
    world.run()
    assert consent_of(world, "yes@firm.io") == "SUBSCRIBED"
    assert consent_of(world, "no@firm.io") == "NEVER_SUBSCRIBED"
    if others:
        assert consent_of(world, "p0@firm.io") == "NEVER_SUBSCRIBED"
    subscribed = [
        row["attributes"]["email"]
        for r in writes(world, "/api/profile-subscription-bulk-create-jobs")
        for row in r.json()["data"]["attributes"]["profiles"]["data"]
    ]
    assert subscribed == ["yes@firm.io"]


@pytest.mark.parametrize("others", [0, 12])
def test_someone_who_unsubscribed_in_klaviyo_is_never_resubscribed(world, sales, others):
    world.with_klaviyo()
    world.klaviyo.add_profile("gone@firm.io")
    world.klaviyo.unsubscribe("gone@firm.io")
    people(world, sales, others, consent=True)
    gone = world.kommo.add_contact("Gone", email="gone@firm.io", consent=True)
    world.run()
    assert consent_of(world, "gone@firm.io") == "UNSUBSCRIBED"
    world.clock.advance(60)
    world.kommo.update_contact(gone, first_name="Still gone")
    world.run()
    assert consent_of(world, "gone@firm.io") == "UNSUBSCRIBED"


def test_consent_withdrawn_in_kommo_unsubscribes(world, sales):
    world.with_klaviyo()
    ada = world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    world.run()
    assert consent_of(world, "ada@firm.io") == "SUBSCRIBED"
    world.clock.advance(60)
    world.kommo.update_contact(ada, consent=False)
    result = world.run()
    assert result.counts["klaviyo.unsubscribe"] == 1
    assert consent_of(world, "ada@firm.io") == "UNSUBSCRIBED"


# dry run, limits ----------------------------------------------------------------------------------
def test_dry_run_shows_klaviyo_operations_beside_mailchimp_and_sends_no_write(world, sales):
    world.with_mailchimp().with_klaviyo(events_since=BEFORE_HISTORY)
    people(world, sales, 2, consent=True)
    code, body = world.cli_json("run", "--dry-run")
    assert code == 0
    klaviyo = [op for op in body["operations"] if op["destination"] == "klaviyo"]
    assert sorted(op["action"] for op in klaviyo) == ["create", "create", "created", "created"]
    create = next(op for op in klaviyo if op["action"] == "create")
    assert create["lists_added"] == [world.klaviyo_list] and create["subscribe"] is True
    assert {op["destination"] for op in body["operations"]} == {"mailchimp", "klaviyo"}
    assert world.klaviyo.writes() == []


def test_throttling_is_waited_out_with_retry_after(world, sales):
    world.with_klaviyo()
    people(world, sales, 2)
    world.klaviyo.fail_next(2, 429)
    result = world.run()
    assert result.counts["klaviyo.done"] == 2 and not result.rejections


def test_a_missing_list_is_a_config_error(world, sales):
    world.with_klaviyo(list_id="NoSuch")
    result = world.cli("run")
    assert result.exit_code == 2 and "klaviyo.list_id: no list 'NoSuch'" in result.output


# the destination alone, against the sandbox: conflicts and refusals plain scenarios do not reach
def destination(world: World) -> KlaviyoDestination:
    world.with_klaviyo(phone_region="DE")
    return build_klaviyo(world.config().klaviyo, DEFAULT_TAGS, world.clock)


def ada(email: str = "ada@firm.io") -> Person:
    return Person(
        contact_id=7,
        email=email,
        first_name="Ada",
        last_name="",
        phone="030 1234567",
        company=None,
        lead_source=None,
        consent=None,
        stage=Stage.NEW,
        contact_ids=(7,),
    )


def profile_change(dest: KlaviyoDestination, person: Person, pushed: dict[str, Any] | None = None):
    change, _ = plan_person(person, pushed, False, dest.config, DEFAULT_TAGS)
    return change


def duplicate_of(profile_id: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "id": "e1",
                "status": 409,
                "code": "duplicate_profile",
                "title": "Conflict.",
                "detail": "A profile already exists with one of these identifiers.",
                "source": {"pointer": "/data/attributes"},
                "meta": {"duplicate_profile_id": profile_id},
            }
        ]
    }


def test_a_conflict_takes_over_the_reported_profile_only_when_its_email_is_ours(world):
    dest = destination(world)
    ours = world.klaviyo.add_profile("ada@firm.io")
    world.klaviyo.fail_next(2, 409, duplicate_of(ours))  # with the phone, and again without it
    [outcome] = dest.push([profile_change(dest, ada())])
    assert outcome.ok and outcome.record_updates["profile_id"] == ours
    last = world.klaviyo.requests("POST", "/api/profile-import")[-1].json()["data"]
    assert last["id"] == ours and "phone_number" not in last["attributes"]


def test_a_conflict_with_someone_elses_profile_is_rejected_with_the_reason(world):
    dest = destination(world)
    stranger = world.klaviyo.add_profile("reception@firm.io")
    world.klaviyo.fail_next(2, 409, duplicate_of(stranger))
    [outcome] = dest.push([profile_change(dest, ada())])
    assert not outcome.ok and outcome.permanent
    assert "duplicate_profile" in outcome.reason and stranger in outcome.reason
    assert world.klaviyo.profile_by_id(stranger)["first_name"] is None


def test_a_stored_profile_gone_from_klaviyo_is_upserted_again_by_email(world):
    dest = destination(world)
    pushed = {**profile_change(dest, ada()).record, "profile_id": "01GONE0000000000000000000"}
    renamed = replace(ada(), first_name="Augusta")
    [outcome] = dest.push([profile_change(dest, renamed, pushed)])
    assert (
        outcome.ok
        and outcome.record_updates["profile_id"]
        == world.klaviyo.profile_by_email("ada@firm.io")["id"]
    )


def test_an_email_change_onto_another_profiles_email_is_rejected_not_merged(world):
    dest = destination(world)
    mine = world.klaviyo.add_profile("ada@firm.io")
    theirs = world.klaviyo.add_profile("boss@firm.io")
    pushed = {**profile_change(dest, ada()).record, "profile_id": mine}
    [outcome] = dest.push([profile_change(dest, ada("boss@firm.io"), pushed)])
    assert (
        not outcome.ok
        and outcome.permanent
        and "belongs to another Klaviyo profile" in outcome.reason
    )
    assert world.klaviyo.profile_by_id(mine)["email"] == "ada@firm.io"
    assert world.klaviyo.profile_by_id(theirs)["first_name"] is None


def test_a_bulk_event_request_refused_without_pointers_goes_one_by_one(world):
    dest = destination(world)
    events = [
        DealEvent(
            id=f"ev{n}",
            kind=DealEventKind.CREATED,
            lead_id=n,
            at=1_767_000_000 + n,
            deal_name="D",
            deal_amount=1.0,
            pipeline="Sales",
            stage="Incoming leads",
            previous_stage=None,
            person=ada(f"p{n}@firm.io"),
        )
        for n in range(12)
    ]
    changes = dest.plan_events(events).changes
    world.klaviyo.fail_next(1, 409, duplicate_of("01X"))
    outcomes = dest.push_events(changes + changes[:1])  # an event twice: never twice in one request
    assert all(o.ok for o in outcomes) and len(outcomes) == 13
    assert len(world.klaviyo.requests("POST", "/api/events")) == 12
    assert len(deal_events(world)) == 12


def test_someone_unsubscribed_in_klaviyo_before_we_connected_is_never_subscribed(world, sales):
    world.with_klaviyo()
    world.klaviyo.add_profile("old@firm.io")
    world.klaviyo.unsubscribe("old@firm.io")
    for i in range(12):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
    world.kommo.add_contact("Old", email="old@firm.io", consent=True)
    result = world.run()
    assert result.counts["klaviyo.suppressions_known"] == 1
    assert consent_of(world, "old@firm.io") == "UNSUBSCRIBED"
    assert consent_of(world, "p3@firm.io") == "SUBSCRIBED"
    world.clock.advance(60)
    assert world.run().counts["klaviyo.suppressions_known"] == 0  # read once, when connected


def test_an_email_change_after_a_bulk_first_sync_keeps_one_profile(world, sales):
    world.with_klaviyo()
    ids = people(world, sales, 12)
    world.run()
    first = world.klaviyo.profile_by_email("p0@firm.io")["id"]
    world.clock.advance(60)
    world.kommo.update_contact(ids[0], email="p0.new@firm.io")
    world.run()
    assert world.klaviyo.profile_by_email("p0.new@firm.io")["id"] == first
    assert world.klaviyo.profile_by_email("p0@firm.io") is None
    assert len(world.klaviyo.profiles.by_id) == 12


def test_a_run_with_nothing_in_flight_pushes_its_queue_in_full_batches(world, sales):
    world.with_klaviyo()
    people(world, sales, 1300)  # more than a tail batch, less than a full one
    assert world.run().rejected == 0
    [job] = writes(world, "/api/profile-bulk-import-jobs")
    assert len(job.json()["data"]["attributes"]["profiles"]["data"]) == 1300


def test_a_few_phone_conflicts_are_resent_in_one_job_without_the_phone(world, sales):
    world.with_klaviyo(phone_region="DE")
    for n in range(3):
        world.klaviyo.add_profile(f"reception{n}@elsewhere.io", phone_number=f"+4930123456{n}")
    for n in range(12):
        cid = world.kommo.add_contact(
            f"P{n}", "Test", email=f"p{n}@firm.io", phone=f"030 123456{n}"
        )
        world.kommo.add_lead(f"Deal {n}", 100, sales, contact_ids=[cid])
    result = world.run()
    assert not result.rejections
    assert len(writes(world, "/api/profile-bulk-import-jobs")) == 2 and not writes(
        world, "/api/profile-import"
    )
    assert [world.klaviyo.profile_by_email(f"p{n}@firm.io")["phone_number"] for n in range(4)] == [
        None,
        None,
        None,
        "+49301234563",
    ]
    assert (
        world.klaviyo.profile_by_email("reception0@elsewhere.io")["phone_number"] == "+49301234560"
    )
