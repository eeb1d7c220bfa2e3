"""Issue 10, the engine's cases: interrupted first syncs, bad catalogs, our own unsubscribes read
back, a destination down while the other goes on, Kommo paging loops and notes whose outcome is
lost.

A crash is a real one: `kommo-sync run` in a child process that a sandbox SIGKILLs when a chosen
request arrives (or after the vendor applied it); the runs after it go on in-process on a clock
that never waits (both on the wall clock, as the child shares the sandboxes' time)."""

import json
import signal

import pytest
import requests

from kommo_sync.destinations.mailchimp.mapping import subscriber_hash
from kommo_sync.feedback import _ours
from kommo_sync.sandbox.faults import Fault
from tests.conftest import BACKENDS, KOMMO_TOKEN, MAILCHIMP_KEY, fresh_schema_url
from tests.reliability.harness import DEAL_METRICS, real_time_world, run_killed

LIST = r"^/3\.0/lists/[^/]+"


def consent(world, email):
    return world.klaviyo.profile_by_email(email)["subscriptions"]["email"]["marketing"]["consent"]


def people(world, n, **extra):
    return [
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True, **extra)
        for i in range(n)
    ]


@pytest.fixture
def live(request, tmp_path):
    """A world on the wall clock, for a run killed in a child process (job polls kept short);
    its state in SQLite unless parametrized `postgres`."""
    postgres = getattr(request, "param", "sqlite") == "postgres"
    url = fresh_schema_url(request.getfixturevalue("postgres_url")) if postgres else None
    world = real_time_world(tmp_path / "live", url)
    world.raw["network"] = {"timeout_seconds": 5, "first_poll_seconds": 0.05}
    yield world
    world.close()


def kill_run(world, app, fault):
    """`kommo-sync run` in a child process, SIGKILLed by sandbox `app` when `fault` hits it."""
    log = world.tmp / "child.log"
    code = run_killed(world, app, fault, log)
    output = log.read_text(errors="replace")[-3000:]
    assert code == -signal.SIGKILL, f"the kill never came (exit {code}):\n{output}"
    assert fault.hits == 1


def add_sales(world):
    """The `sales` fixture's pipeline, in a world of one's own."""
    return world.kommo.add_pipeline("Sales", ["Qualified", "Proposal"], is_main=True)


# case 1 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("interruption", ["expired token", "killed"])
def test_people_who_opt_out_after_an_interrupted_first_sync_are_never_subscribed_and_get_their_note(
    request, interruption
):
    world = request.getfixturevalue("world" if interruption == "expired token" else "live")
    world.with_klaviyo(subscribe_with_consent=True)
    people(world, 15)
    if interruption == "expired token":
        world.kommo.faults.add(Fault(method="GET", path=r"^/api/v4/contacts$", status=401, times=0))
        assert world.cli("run").exit_code == 4
        world.kommo.faults.clear()
    else:  # killed as Kommo's first contacts page is asked for
        first_page = Fault("GET", r"^/api/v4/contacts$", kind="kill_before", query={"page": "1"})
        kill_run(world, world.kommo, first_page)
        assert not world.klaviyo.writes()
    world.clock.advance(120)
    for i in range(3):
        world.klaviyo.unsubscribe(f"p{i}@firm.io")
    world.clock.advance(120)
    result = world.run()
    assert [consent(world, f"p{i}@firm.io") for i in range(5)] == ["UNSUBSCRIBED"] * 3 + [
        "SUBSCRIBED"
    ] * 2
    assert result.counts["klaviyo.feedback.unsubscribed"] == 3
    assert (
        sorted(n["params"]["text"].split(" on ")[0] for n in world.kommo.notes)
        == ["Unsubscribed from Klaviyo email marketing"] * 3
    )


# case 5 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("answer", ["empty", "no_content"])
def test_a_catalog_without_pipelines_stops_the_run_before_the_pull(world, sales, answer):
    world.with_mailchimp()
    ada = world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    world.kommo.add_lead("Deal", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[ada])
    world.kommo.pipelines_answer = answer
    result = world.cli("run")
    assert result.exit_code == 4 and "without pipelines" in result.output
    assert not world.kommo.requests("GET", "/api/v4/contacts") and not world.mailchimp.writes()
    world.kommo.pipelines_answer = None
    world.clock.advance(60)
    assert world.cli("run").exit_code == 0
    assert world.mailchimp.member_tags(world.list_id, "ada@firm.io") == {"In Progress"}


def _catalog_without(world, pipeline_id):
    body = requests.get(
        world.servers[0].url + "/api/v4/leads/pipelines",
        headers={"Authorization": f"Bearer {KOMMO_TOKEN}"},
    ).json()
    body["_embedded"]["pipelines"] = [
        p for p in body["_embedded"]["pipelines"] if p["id"] != pipeline_id
    ]
    return body


def test_a_lead_in_a_pipeline_missing_from_the_catalog_keeps_its_contact_queued_until_it_is_there(
    world, sales
):
    world.with_mailchimp()
    ada = world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    world.kommo.add_contact("Bob", email="bob@firm.io", consent=True)
    world.kommo.add_lead("Deal", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[ada])
    world.kommo.faults.add(
        Fault(
            method="GET",
            path=r"^/api/v4/leads/pipelines$",
            status=200,
            body=_catalog_without(world, sales),
        )
    )
    result = world.run()
    assert result.counts["held_unknown_status"] == 1 and result.warnings
    assert world.mailchimp.member(world.list_id, "ada@firm.io") is None  # never tagged by a guess
    assert world.mailchimp.member_tags(world.list_id, "bob@firm.io") == {"New Lead"}
    world.clock.advance(60)
    world.run()
    assert world.mailchimp.member_tags(world.list_id, "ada@firm.io") == {"In Progress"}
    assert world.run().counts["held_unknown_status"] == 0


def test_a_renamed_status_re_plans_the_contacts_of_its_pipeline(world, sales):
    world.with_klaviyo()
    ada = world.kommo.add_contact("Ada", email="ada@firm.io", consent=True)
    world.kommo.add_lead("Deal", 10, sales, world.status_id(sales, "Proposal"), contact_ids=[ada])
    world.run()
    assert world.klaviyo.profile_by_email("ada@firm.io")["properties"]["crm_stage"] == "Proposal"
    for status in world.kommo.statuses(sales):
        if status["name"] == "Proposal":
            status["name"] = "Offer sent"
    world.clock.advance(60)
    result = world.run()
    assert result.counts["replanned_for_catalog_change"] == 1
    assert world.klaviyo.profile_by_email("ada@firm.io")["properties"]["crm_stage"] == "Offer sent"


# case 6 ------------------------------------------------------------------------------------------
def test_a_crash_after_pushing_our_own_unsubscribes_writes_no_feedback_note(live):
    world = live
    world.with_mailchimp()
    contacts = people(world, 12)
    world.run()
    world.clock.advance(600)
    for contact in contacts[:5]:
        world.kommo.update_contact(contact, consent=False)
    last = LIST + f"/members/{subscriber_hash('p4@firm.io')}$"  # one by one, in contact order
    kill_run(world, world.mailchimp, Fault("PATCH", last, kind="kill_after"))
    assert sum(m["status"] == "unsubscribed" for m in world.mailchimp.members(world.list_id)) == 5
    world.clock.advance(600)
    result = world.run()
    assert world.kommo.notes == [] and result.counts["notes_planned"] == 0
    world.mailchimp.unsubscribe(world.list_id, "p9@firm.io")  # a real one is still news
    world.clock.advance(600)
    world.run()
    assert [n["entity_id"] for n in world.kommo.notes] == [contacts[9]]


# killed after a push, before its outcome is recorded ---------------------------------------------
@pytest.mark.parametrize("live", BACKENDS, indirect=True)
def test_a_first_sync_killed_after_its_batch_subscribe_is_finished_by_the_next_run_without_repeats(
    live,
):
    """Mailchimp took the batch subscribe; the queue remembers the people whose outcome was lost."""
    world = live
    add_sales(world)
    world.with_mailchimp()
    for i in range(12):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
    kill_run(world, world.mailchimp, Fault("POST", LIST + "$", kind="kill_after"))
    assert len(world.mailchimp.members(world.list_id)) == 12  # pushed, but not recorded
    world.clock.advance(60)
    result = world.run()  # nothing new in Kommo: the queue remembers
    assert result.counts["mailchimp.done"] == 12 and result.rejected == 0
    members = world.mailchimp.members(world.list_id)
    assert len(members) == 12 and {m["status"] for m in members} == {"subscribed"}
    assert all(
        world.mailchimp.member_tags(world.list_id, m["email_address"]) == {"New Lead"}
        for m in members
    )
    world.clock.advance(60)
    assert world.run().counts["mailchimp.done"] == 0


def _deal_events(world):
    return [e for e in world.klaviyo.events() if e["metric"] in DEAL_METRICS]


def _bulk_events(request):
    entries = request.json()["data"]["attributes"]["events-bulk-create"]["data"]
    return sum(len(entry["attributes"]["events"]["data"]) for entry in entries)


def test_events_of_a_run_killed_after_their_bulk_job_are_resent_one_by_one_and_stored_once(live):
    world = live
    sales = add_sales(world)
    world.with_klaviyo(events_since="2025-01-01")
    for n in range(12):
        cid = world.kommo.add_contact(f"P{n}", "Test", email=f"p{n}@firm.io")
        world.kommo.add_lead(f"Deal {n}", 100 * (n + 1), sales, contact_ids=[cid])
    job = r"^/api/event-bulk-create-jobs$"
    kill_run(world, world.klaviyo, Fault("POST", job, kind="kill_after"))
    jobs = [r for r in world.klaviyo.writes() if r.path == "/api/event-bulk-create-jobs"]
    assert [_bulk_events(r) for r in jobs] == [12] and len(_deal_events(world)) == 12
    result = world.run()
    assert result.counts["klaviyo.events_in_flight"] == 12
    resent = [
        r.json()["data"]["attributes"]["unique_id"]
        for r in world.klaviyo.writes()
        if r.path == "/api/events"
    ]
    assert len(resent) == 12 and set(resent) == {e["unique_id"] for e in _deal_events(world)}
    assert len(_deal_events(world)) == 12
    world.clock.advance(3600)
    world.run()
    assert len(_deal_events(world)) == 12


# case 8 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("world", BACKENDS, indirect=True)
def test_mailchimp_down_is_set_aside_while_klaviyo_events_and_notes_go_on_and_it_catches_up_later(
    world, sales
):
    world.with_mailchimp().with_klaviyo()
    contacts = people(world, 12)
    world.kommo.add_lead(
        "Deal", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[contacts[0]]
    )
    world.mailchimp.faults.add(Fault(method="*", path=r"^/3\.0/", status=503, times=0))
    code, report = world.cli_json("run")
    assert code == 4
    assert report["destinations"]["mailchimp"]["status"] == "set_aside"
    assert "503" in report["destinations"]["mailchimp"]["reason"]
    assert report["destinations"]["klaviyo"] == {"status": "ok", "reason": ""}
    assert len(world.klaviyo.list_members(world.klaviyo_list)) == 12
    assert [e["email"] for e in world.klaviyo.events("Deal Created")] == ["p0@firm.io"]
    assert world.mailchimp.members(world.list_id) == []
    klaviyo_writes = len(world.klaviyo.writes())
    world.mailchimp.faults.clear()
    world.clock.advance(60)
    code, report = world.cli_json("run")
    assert code == 0 and report["counts"]["mailchimp.done"] == 12
    assert len(world.klaviyo.writes()) == klaviyo_writes  # only Mailchimp's queue was held
    assert {m["status"] for m in world.mailchimp.members(world.list_id)} == {"subscribed"}


def test_a_mailchimp_outage_does_not_move_its_feedback_cursor(world, sales):
    world.with_mailchimp().with_klaviyo()
    people(world, 3)
    world.run()
    world.clock.advance(600)
    world.mailchimp.unsubscribe(world.list_id, "p1@firm.io")
    world.mailchimp.faults.add(Fault(method="GET", path=r"/members$", status=503, times=0))
    world.clock.advance(60)
    assert world.cli("run").exit_code == 4 and world.kommo.notes == []
    world.mailchimp.faults.clear()
    world.clock.advance(60)
    assert world.cli("run").exit_code == 0
    assert len(world.kommo.notes) == 1


def test_a_bad_kommo_token_stops_the_whole_run(world, sales):
    world.with_mailchimp()
    people(world, 2)
    world.kommo.faults.add(Fault(method="GET", path=r"^/api/v4/contacts$", status=401, times=0))
    result = world.cli("run")
    assert result.exit_code == 4 and "KOMMO_TOKEN" in result.output


# case 7 ------------------------------------------------------------------------------------------
def test_a_kommo_that_ignores_the_page_stops_with_a_clear_fatal_error(world, sales):
    world.with_mailchimp()
    for i in range(260):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
    world.kommo.ignore_page = True
    result = world.cli("run")
    assert result.exit_code == 4 and "repeats a page" in result.output
    assert len([r for r in world.kommo.requests("GET") if r.path == "/api/v4/contacts"]) == 2


# cases 2 and 4: notes ----------------------------------------------------------------------------
def _noted(world, n):
    world.with_mailchimp()
    world.raw["feedback"] = {"note_on_open_deals": False}
    contacts = people(world, n)
    world.run()
    world.clock.advance(600)
    for i in range(n):
        world.mailchimp.unsubscribe(world.list_id, f"p{i}@firm.io")
    world.clock.advance(60)
    return contacts


@pytest.mark.parametrize("world", BACKENDS, indirect=True)
@pytest.mark.parametrize("kind", ["reset_after", "status"])
def test_a_notes_batch_whose_answer_is_lost_is_read_back_never_written_twice(world, sales, kind):
    contacts = _noted(world, 6)
    world.kommo.faults.add(
        Fault(method="POST", path=r"^/api/v4/contacts/notes$", kind=kind, status=504)
    )
    result = world.run()
    assert sorted(n["entity_id"] for n in world.kommo.notes) == sorted(contacts)
    assert result.counts["notes_outcome_unknown"] == 1
    world.clock.advance(60)
    world.run()
    assert len(world.kommo.notes) == 6


def test_a_note_kommo_names_as_bad_is_rejected_alone_and_the_rest_are_written(world, sales):
    contacts = _noted(world, 6)
    refusal = {
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed",
        "validation-errors": [
            {
                "request_id": "2",
                "errors": [{"code": "NotFound", "path": "entity_id", "detail": "Entity not found"}],
            }
        ],
    }
    world.kommo.faults.add(
        Fault(method="POST", path=r"^/api/v4/contacts/notes$", status=400, body=refusal)
    )
    result = world.run()
    assert len(world.kommo.notes) == 5 and result.counts["notes_rejected"] == 1
    assert result.counts["notes_written"] == 5 and contacts


def test_an_old_unsubscribe_our_own_update_moves_is_not_news_so_kommo_consent_stays(world, sales):
    """Unsubscribed in Mailchimp long before the account was connected: our merge-field update
    moves the member's last-changed time, which is no reason to note it or to clear Kommo's box."""
    world.with_mailchimp()
    world.raw["feedback"] = {"consent_field_write": True}
    world.mailchimp.add_member(
        world.list_id,
        "old@firm.io",
        status="unsubscribed",
        last_changed=world.clock.now() - 365 * 86400,
    )
    old = world.kommo.add_contact("Old", email="old@firm.io", consent=True)
    world.run()
    world.clock.advance(600)
    world.kommo.update_contact(old, first_name="Renamed")
    world.run()
    world.clock.advance(600)
    world.run()
    assert world.kommo.consent(old) is True and world.kommo.notes == []
    assert world.mailchimp.member(world.list_id, "old@firm.io")["status"] == "unsubscribed"


@pytest.mark.parametrize(
    "seen_after, ours",
    [(-900, False), (-300, True), (0, True), (40, True), (86_000, True), (90 * 86_400, False)],
)
def test_an_unsubscribe_is_ours_from_a_little_before_our_push_to_a_day_after(seen_after, ours):
    """The vendor's clock may lag ours and bulk jobs apply late; months later it is the person's
    own."""
    assert _ours(1_000_000, 1_000_000 + seen_after) is ours


def test_a_vendor_echoing_a_key_in_its_refusal_never_gets_it_into_the_state_file(world, sales):
    world.with_mailchimp()
    people(world, 2)
    echo = {
        "title": "Invalid Resource",
        "status": 400,
        "detail": f"p0@firm.io looks fake or invalid (request signed with {MAILCHIMP_KEY})",
    }
    world.mailchimp.faults.add(Fault(method="PUT", path=r"/members/", status=400, body=echo))
    result = world.run()
    assert result.rejected == 1
    stored = (world.tmp / "state.db").read_bytes()
    assert MAILCHIMP_KEY.encode() not in stored and b"looks fake or invalid" in stored
    code, status = world.cli_json("status")
    assert MAILCHIMP_KEY not in json.dumps(status)
