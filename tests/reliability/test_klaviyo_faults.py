"""Issue 10, Klaviyo's cases: refusals naming no record, requests too large, people suppressed
while a run goes on, event jobs whose answer is lost, a paging loop, and the wiring's timeouts."""

from __future__ import annotations

from typing import Any

import pytest

from kommo_sync.batching import JobTimer
from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.destinations.klaviyo import build_klaviyo
from kommo_sync.errors import PagingLoop
from kommo_sync.model import Person, Stage
from kommo_sync.sandbox.faults import Fault
from tests.conftest import World
from tests.e2e.test_klaviyo_e2e import (
    BEFORE_HISTORY,
    consent_of,
    deal_events,
    destination,
    plan_person,
    writes,
)

IMPORT_JOBS = r"^/api/profile-bulk-import-jobs$"
SUBSCRIBE_JOBS = r"^/api/profile-subscription-bulk-create-jobs$"
EVENT_JOBS = r"^/api/event-bulk-create-jobs$"
NO_POINTER = {
    "errors": [
        {
            "id": "e1",
            "status": 400,
            "code": "invalid",
            "title": "Invalid input.",
            "detail": "The payload provided in the request is invalid.",
        }
    ]
}
WHOLE_BODY = {
    "errors": [
        {
            "id": "e2",
            "status": 400,
            "code": "invalid",
            "title": "Invalid input.",
            "detail": "Invalid JSON:API document.",
            "source": {"pointer": "/data"},
        }
    ]
}


def consenting(world: World, count: int) -> list[int]:
    return [
        world.kommo.add_contact(f"P{n}", "Test", email=f"p{n}@firm.io", consent=True)
        for n in range(count)
    ]


def fault(world: World, path: str, **how: Any) -> Fault:
    return world.klaviyo.faults.add(Fault(method="POST", path=path, **how))


def assert_everyone_landed(world: World, count: int) -> None:
    emails = [f"p{n}@firm.io" for n in range(count)]
    assert all(world.klaviyo.profile_by_email(e) for e in emails)
    assert len(world.klaviyo.list_members(world.klaviyo_list)) == count
    assert [consent_of(world, e) for e in emails] == ["SUBSCRIBED"] * count


def marketing(world: World, email: str) -> dict[str, Any]:
    return world.klaviyo.profile_by_email(email)["subscriptions"]["email"]["marketing"]


def subscribed(world: World) -> list[str]:
    return [
        row["attributes"]["email"]
        for r in writes(world, "/api/profile-subscription-bulk-create-jobs")
        for row in r.json()["data"]["attributes"]["profiles"]["data"]
    ]


def rows_sent(world: World, path: str) -> list[int]:
    return [len(r.json()["data"]["attributes"]["profiles"]["data"]) for r in writes(world, path)]


# 1. whole-request failures ----------------------------------------------------------------------
@pytest.mark.parametrize("body", [NO_POINTER, WHOLE_BODY], ids=["no pointer", "pointer to /data"])
def test_an_import_job_refused_naming_no_row_holds_every_row_back_and_the_next_run_lands_them(
    world, body
):
    world.with_klaviyo()
    consenting(world, 12)
    fault(world, IMPORT_JOBS, status=400, body=body)
    result = world.run()
    assert len(result.rejections) == 12 and {r["kind"] for r in result.rejections} == {"transient"}
    assert world.klaviyo.profiles.by_id == {}
    world.clock.advance(60)
    assert world.run().rejections == []
    assert_everyone_landed(world, 12)


def test_an_import_job_too_large_is_sent_again_in_halves(world):
    world.with_klaviyo()
    consenting(world, 12)
    fault(world, IMPORT_JOBS, status=413)
    result = world.run()
    assert result.rejections == [] and rows_sent(world, "/api/profile-bulk-import-jobs") == [
        12,
        6,
        6,
    ]
    assert [r.status for r in writes(world, "/api/profile-bulk-import-jobs")] == [413, 202, 202]
    assert_everyone_landed(world, 12)


def test_rows_still_too_large_alone_are_held_back_not_rejected_and_land_when_klaviyo_takes_them(
    world,
):
    world.with_klaviyo()
    consenting(world, 12)
    too_large = fault(world, IMPORT_JOBS, status=413, times=0)
    result = world.run()
    assert len(result.rejections) == 12 and {r["kind"] for r in result.rejections} == {"transient"}
    assert (
        rows_sent(world, "/api/profile-bulk-import-jobs").count(1) == 12
    )  # halved down to one row
    too_large.times = too_large.hits  # the fault clears
    world.clock.advance(60)
    assert world.run().rejections == []
    assert_everyone_landed(world, 12)


def test_a_bulk_subscribe_refused_naming_no_row_holds_everyone_back_and_the_next_run_subscribes(
    world,
):
    world.with_klaviyo()
    consenting(world, 12)
    fault(world, SUBSCRIBE_JOBS, status=400, body=NO_POINTER)
    result = world.run()
    assert len(result.rejections) == 12 and {r["kind"] for r in result.rejections} == {"transient"}
    assert consent_of(world, "p0@firm.io") == "NEVER_SUBSCRIBED"
    world.clock.advance(60)
    assert world.run().rejections == []
    assert_everyone_landed(world, 12)


# 2. suppressed while we were away ---------------------------------------------------------------
def test_people_who_opt_out_in_klaviyo_after_an_interrupted_first_sync_are_never_subscribed(world):
    world.with_klaviyo()
    world.raw["feedback"] = {"unsubscribes": False}  # no feedback read tells the plan about them
    consenting(world, 12)
    world.kommo.faults.add(Fault(method="GET", path=r"^/api/v4/contacts$", status=401, times=0))
    assert world.cli("run").exit_code == 4  # suppressions were loaded, nothing pushed
    world.kommo.faults.clear()
    world.clock.advance(120)
    for n in range(3):
        world.klaviyo.unsubscribe(f"p{n}@firm.io")
    world.clock.advance(120)
    assert world.run().rejections == []
    assert [consent_of(world, f"p{n}@firm.io") for n in range(5)] == ["UNSUBSCRIBED"] * 3 + [
        "SUBSCRIBED"
    ] * 2
    assert all(marketing(world, f"p{n}@firm.io")["suppression"] for n in range(3))
    assert sorted(subscribed(world)) == sorted(f"p{n}@firm.io" for n in range(3, 12))


def test_someone_suppressed_after_the_plan_is_left_out_of_the_subscribe_job_read_in_one_request(
    world,
):
    dest = destination(world)
    assert list(dest.known_suppressions()) == []
    people = [
        Person(
            contact_id=n,
            email=f"p{n}@firm.io",
            first_name="P",
            last_name="",
            phone=None,
            company=None,
            lead_source=None,
            consent=True,
            stage=Stage.NEW,
            contact_ids=(n,),
        )
        for n in range(12)
    ]
    changes = [plan_person(p, None, False, dest.config, DEFAULT_TAGS)[0] for p in people]
    world.clock.advance(300)
    world.klaviyo.unsubscribe("p4@firm.io")
    before = len(world.klaviyo.requests("GET", "/api/profiles"))
    outcomes = dest.push(changes)
    assert all(o.ok for o in outcomes) and outcomes[4].record_updates["kept_unsubscribed"] is True
    assert [consent_of(world, e) for e in ("p4@firm.io", "p5@firm.io")] == [
        "UNSUBSCRIBED",
        "SUBSCRIBED",
    ]
    assert marketing(world, "p4@firm.io")["suppression"]
    [read] = world.klaviyo.requests("GET", "/api/profiles")[before:]
    assert read.query["filter"] == [
        "greater-than(subscriptions.email.marketing.suppression.timestamp,"
        "2025-12-31T23:59:00+00:00)"
    ]  # the load, less a minute


# 3. event jobs whose outcome is unknown -----------------------------------------------------------
@pytest.mark.parametrize(
    "how",
    [{"kind": "reset_after"}, {"kind": "status", "status": 503}],
    ids=["answer lost after processing", "503"],
)
def test_an_event_job_whose_outcome_is_unknown_is_settled_one_by_one_without_duplicates(
    world, sales, how
):
    world.with_klaviyo(events_since=BEFORE_HISTORY)
    for n in range(12):
        contact = world.kommo.add_contact(f"P{n}", email=f"p{n}@firm.io")
        world.kommo.add_lead(f"Deal {n}", 100, sales, contact_ids=[contact])
    fault(world, EVENT_JOBS, **how)
    result = world.run()
    assert result.rejections == []
    assert len(writes(world, "/api/event-bulk-create-jobs")) == 1  # the job is never sent again
    assert len(writes(world, "/api/events")) == 12
    unique_ids = [e["unique_id"] for e in deal_events(world)]
    assert len(unique_ids) == 12 and len(set(unique_ids)) == 12


# 5. paging loops ----------------------------------------------------------------------------------
def test_a_next_link_leading_back_to_its_page_stops_the_read_with_a_paging_loop(world):
    dest = destination(world)
    world.klaviyo.next_link_loop = True
    # a backstop: a third arrival of the same read means it pages on, so it fails instead of hanging
    world.klaviyo.faults.add(
        Fault(method="GET", path=r"^/api/profiles$", status=401, attempt=3, times=0)
    )
    with pytest.raises(PagingLoop):
        list(dest.known_suppressions())
    with pytest.raises(PagingLoop):
        list(dest.read_feedback(0, int(world.clock.now()), activity=False))
    assert len(world.klaviyo.requests("GET", "/api/profiles")) == 4


# 6. wiring ----------------------------------------------------------------------------------------
def test_the_http_timeout_and_the_job_timer_are_set_by_the_wiring(world):
    world.with_klaviyo()
    timer = JobTimer(first=0.5)
    dest = build_klaviyo(
        world.config().klaviyo, DEFAULT_TAGS, world.clock, timeout=3.0, job_timer=timer
    )
    assert dest.http.timeout == 3.0 and dest.job_timer is timer
    assert build_klaviyo(world.config().klaviyo, DEFAULT_TAGS, world.clock).http.timeout == 60.0


# empty answers where a body is due ----------------------------------------------------------------
@pytest.mark.parametrize(
    "path, count",
    [(IMPORT_JOBS, 12), (r"^/api/profile-import$", 1)],
    ids=["bulk import job", "profile import"],
)
def test_an_empty_answer_where_klaviyo_owes_a_body_is_a_failed_attempt_and_the_profiles_land(
    world, path, count
):
    world.with_klaviyo()
    consenting(world, count)
    fault(world, path, kind="no_content")
    assert world.run().rejections == []
    assert_everyone_landed(world, count)


def test_an_import_job_whose_failed_rows_are_not_all_named_holds_every_row_back(world):
    """failed_count says a row failed but the import errors name none: nothing can be pinned on a
    row, so none counts as done; the next run sends them again and lands them."""
    world.with_klaviyo(phone_region="DE")
    consenting(world, 12)
    world.klaviyo.add_profile("office@firm.io", "+4930123456")
    world.kommo.add_contact(
        "Shared", "Phone", email="shared@firm.io", phone="+49 30 123456", consent=True
    )
    unnamed = {
        "data": [
            {
                "type": "import-error",
                "id": "x1",
                "attributes": {
                    "code": "invalid",
                    "title": "Invalid input.",
                    "detail": "Something in the job was refused.",
                },
            }
        ],
        "links": {"self": "", "next": None},
    }
    world.klaviyo.faults.add(
        Fault(method="GET", path=r"/import-errors/?$", status=200, body=unnamed)
    )
    result = world.run()
    assert {r["kind"] for r in result.rejections} == {"transient"} and result.rejected == 13
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert all(world.klaviyo.profile_by_email(f"p{n}@firm.io") for n in range(12))
    assert world.klaviyo.profile_by_email("shared@firm.io") is not None
    assert len(world.klaviyo.list_members(world.klaviyo_list)) == 13
