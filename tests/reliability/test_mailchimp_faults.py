"""Issue 10, Mailchimp's cases: whole requests refused, tags that must never go silently missing,
creations whose outcome is lost, paging that loops, against the sandbox's fault switch."""

import json

import pytest

from kommo_sync.batching import JobTimer
from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.destinations.mailchimp import MailchimpDestination, mailchimp_http
from kommo_sync.http import HttpClient
from kommo_sync.model import Person, Stage
from kommo_sync.sandbox.faults import Fault

LIST = r"^/3\.0/lists/[^/]+$"
UNREADABLE = {"title": "Bad Request", "detail": "The request could not be read."}
BATCHES = r"^/3\.0/batches$"


def people(world, n, **extra):
    return [
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True, **extra)
        for i in range(n)
    ]


def emails(n):
    return [f"p{i}@firm.io" for i in range(n)]


def tags(world, addresses):
    return {email: world.mailchimp.member_tags(world.list_id, email) for email in addresses}


def sizes(world, method, path, key):
    """How many items each logged write to `path` held, in order."""
    return [
        len(json.loads(r.body)[key])
        for r in world.mailchimp.log
        if r.method == method and r.path == path
    ]


def rejection_kinds(result):
    return {r["email"]: r["kind"] for r in result.rejections}


# case 1: whole requests refused ----------------------------------------------------------------
def test_a_batch_subscribe_refused_whole_holds_everyone_back_and_the_next_run_lands_them(
    world, sales
):
    world.with_mailchimp()
    people(world, 12)
    world.mailchimp.faults.add(Fault(method="POST", path=LIST, status=400, body=UNREADABLE))
    first = world.run()
    assert rejection_kinds(first) == {email: "transient" for email in emails(12)}
    assert world.mailchimp.members(world.list_id) == []
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert tags(world, emails(12)) == {email: {"New Lead"} for email in emails(12)}


def test_a_batch_subscribe_too_large_is_sent_again_in_halves_within_the_run(world, sales):
    world.with_mailchimp()
    people(world, 12)
    world.mailchimp.faults.add(_too_large(LIST))
    assert world.run().rejected == 0
    assert sizes(world, "POST", f"/3.0/lists/{world.list_id}", "members") == [12, 6, 6]
    assert tags(world, emails(12)) == {email: {"New Lead"} for email in emails(12)}


def test_one_member_still_too_large_is_held_back_and_lands_once_the_fault_clears(world, sales):
    world.with_mailchimp()
    people(world, 12)
    world.mailchimp.faults.add(
        Fault(
            method="POST",
            path=LIST,
            status=413,
            times=0,
            body={"title": "Request Entity Too Large", "detail": "Too large."},
        )
    )
    first = world.run()
    assert rejection_kinds(first) == {email: "transient" for email in emails(12)}
    assert sizes(world, "POST", f"/3.0/lists/{world.list_id}", "members").count(1) == 12
    world.mailchimp.faults.clear()
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert tags(world, emails(12)) == {email: {"New Lead"} for email in emails(12)}


def _renamed_everyone(world, n):
    contacts = people(world, n)
    world.run()
    world.clock.advance(600)
    for contact in contacts:
        world.kommo.update_contact(contact, first_name="Renamed")


def _first_names(world, n):
    return {m["merge_fields"]["FNAME"] for m in world.mailchimp.members(world.list_id)[:n]}


def test_a_batch_job_too_large_is_sent_again_in_halves_within_the_run(world, sales):
    world.with_mailchimp()
    _renamed_everyone(world, 12)
    world.mailchimp.faults.add(_too_large(BATCHES))
    assert world.run().rejected == 0
    assert sizes(world, "POST", "/3.0/batches", "operations") == [12, 6, 6]
    assert _first_names(world, 12) == {"Renamed"}


def test_a_batch_job_refused_whole_holds_everyone_back_and_the_next_run_lands_them(world, sales):
    world.with_mailchimp()
    _renamed_everyone(world, 12)
    world.mailchimp.faults.add(Fault(method="POST", path=BATCHES, status=400, body=UNREADABLE))
    assert rejection_kinds(world.run()) == {email: "transient" for email in emails(12)}
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert _first_names(world, 12) == {"Renamed"}


@pytest.mark.parametrize(
    "method, path", [("GET", r"^/3\.0/lists/[^/]+/merge-fields$"), ("POST", LIST)]
)
def test_an_audience_that_does_not_exist_sets_mailchimp_aside_naming_the_list_id(
    world, sales, method, path
):
    world.with_mailchimp()
    people(world, 12)
    world.mailchimp.faults.add(
        Fault(
            method=method,
            path=path,
            status=404,
            times=0,
            body={
                "title": "Resource Not Found",
                "detail": "The requested resource could not be found.",
            },
        )
    )
    result = world.run()
    reason = result.destinations["mailchimp"]["reason"]
    assert (
        result.set_aside == ["mailchimp"]
        and "mailchimp.list_id" in reason
        and world.list_id in reason
    )
    assert rejection_kinds(result) == {email: "transient" for email in emails(12)}
    world.mailchimp.faults.clear()
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert tags(world, emails(12)) == {email: {"New Lead"} for email in emails(12)}


def test_a_wrong_list_id_in_the_config_ends_in_one_line_naming_it(world, sales):
    world.with_mailchimp(list_id="0000000000")
    people(world, 3)
    result = world.cli("run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "mailchimp.list_id" in result.output and "0000000000" in result.output


# case 2: stage tags never silently missing --------------------------------------------------------
SEGMENTS = r"^/3\.0/lists/[^/]+/segments$"


def _twenty_won_and_renamed(world, sales):
    """40 people In Progress; then 20 of them win (tag Customer, made in this run) and are
    renamed."""
    contacts = people(world, 40)
    deals = [
        world.kommo.add_lead(
            f"D{i}", 10, sales, world.status_id(sales, "Qualified"), contact_ids=[c]
        )
        for i, c in enumerate(contacts)
    ]
    world.run()
    world.clock.advance(600)
    for deal, contact in zip(deals[:20], contacts[:20], strict=True):
        world.kommo.move_lead(deal, 142)
        world.kommo.update_contact(contact, first_name="Won")


def _customers(world, names=("Customer",)):
    return {name: segment_id for name, segment_id in _segments(world).items() if name in names}


def _segments(world):
    with world.mailchimp.lock:
        audience = world.mailchimp.audiences[world.list_id]
        return {segment.name: segment.id for segment in audience.segments.values()}


def _all_right_and_settled(world):
    assert tags(world, emails(20)) == {email: {"Customer"} for email in emails(20)}
    assert world.mailchimp.member(world.list_id, "p0@firm.io")["merge_fields"]["FNAME"] == "Won"
    world.clock.advance(600)
    assert world.run().counts["mailchimp.done"] == 0  # nothing left to repair


def test_a_tag_made_meanwhile_by_batch_subscribe_is_read_back_and_used(world, sales):
    world.with_mailchimp()
    _twenty_won_and_renamed(world, sales)
    # Our read of the tags went out before batch subscribe (of a new customer) made "Customer".
    world.mailchimp.faults.add(
        Fault(method="GET", path=SEGMENTS, status=200, body={"segments": [], "total_items": 0})
    )
    world.mailchimp.add_tag(world.list_id, "Customer")
    assert world.run().rejected == 0
    _all_right_and_settled(world)


def test_a_tag_created_with_its_answer_lost_is_read_back_and_not_made_twice(world, sales):
    world.with_mailchimp()
    _twenty_won_and_renamed(world, sales)
    world.mailchimp.faults.add(Fault(method="POST", path=SEGMENTS, kind="reset_after"))
    assert world.run().rejected == 0
    assert len(world.mailchimp.requests("POST", f"/3.0/lists/{world.list_id}/segments")) == 1
    _all_right_and_settled(world)


def test_a_tag_that_cannot_be_made_holds_its_people_back_and_the_next_run_repairs_them(
    world, sales
):
    world.with_mailchimp()
    _twenty_won_and_renamed(world, sales)
    world.mailchimp.faults.add(Fault(method="POST", path=SEGMENTS, status=500, times=0))
    result = world.run()
    assert result.set_aside == []
    assert rejection_kinds(result) == {email: "transient" for email in emails(20)}
    assert all("Customer" in r["reason"] for r in result.rejections)
    assert _customers(world) == {}
    world.mailchimp.faults.clear()
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert len(_customers(world)) == 1
    _all_right_and_settled(world)


def test_a_tag_move_failing_in_the_batch_job_holds_its_people_back_until_repaired(
    world, sales, monkeypatch
):
    world.with_mailchimp()
    _twenty_won_and_renamed(world, sales)
    run_operation = world.mailchimp._run_operation

    def tag_moves_fail(operation):
        if operation.get("operation_id", "").startswith("tag:"):
            return [
                {
                    "status_code": 500,
                    "operation_id": operation["operation_id"],
                    "response": json.dumps(
                        {"title": "Internal Server Error", "detail": "Try again."}
                    ),
                }
            ]
        return run_operation(operation)

    monkeypatch.setattr(world.mailchimp, "_run_operation", tag_moves_fail)
    result = world.run()
    assert rejection_kinds(result) == {email: "transient" for email in emails(20)}
    monkeypatch.undo()
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert tags(world, emails(40)[20:]) == {email: {"In Progress"} for email in emails(40)[20:]}
    _all_right_and_settled(world)


# case 3: merge fields made once -----------------------------------------------------------------
MERGE_FIELDS = r"^/3\.0/lists/[^/]+/merge-fields$"


def _merge_field_posts(world):
    posts = world.mailchimp.requests("POST", f"/3.0/lists/{world.list_id}/merge-fields")
    return [json.loads(r.body)["tag"] for r in posts]


def _audience_merge_tags(world):
    with world.mailchimp.lock:
        return sorted(world.mailchimp.audiences[world.list_id].merge_fields)


def test_a_merge_field_created_with_its_answer_lost_is_read_back_and_not_made_twice(world, sales):
    world.with_mailchimp()
    people(world, 3)
    world.mailchimp.faults.add(Fault(method="POST", path=MERGE_FIELDS, kind="reset_after"))
    result = world.run()
    assert result.set_aside == [] and result.rejected == 0
    assert _merge_field_posts(world) == ["COMPANY", "LEADSOURCE"]
    assert {"COMPANY", "LEADSOURCE"} <= set(_audience_merge_tags(world))
    world.clock.advance(600)
    world.run()
    assert _merge_field_posts(world) == ["COMPANY", "LEADSOURCE"]  # remembered: not asked again


def test_a_merge_field_made_meanwhile_is_accepted(world, sales):
    world.with_mailchimp()
    people(world, 3)
    world.mailchimp.add_merge_field(world.list_id, "COMPANY", "Company")
    # our read of the merge fields went out before COMPANY was made
    stale = {"merge_fields": [{"tag": "FNAME"}, {"tag": "LNAME"}], "total_items": 2}
    world.mailchimp.faults.add(Fault(method="GET", path=MERGE_FIELDS, status=200, body=stale))
    result = world.run()
    assert result.set_aside == [] and result.rejected == 0
    assert _merge_field_posts(world) == [
        "COMPANY",
        "LEADSOURCE",
        "PHONE",
    ]  # two refused: exist already
    assert world.mailchimp.member(world.list_id, "p0@firm.io")["status"] == "subscribed"


def test_a_merge_field_mailchimp_refuses_sets_it_aside_naming_the_config_key(world, sales):
    world.with_mailchimp()
    people(world, 3)
    for number in range(26):  # the audience's 30 are taken
        world.mailchimp.add_merge_field(world.list_id, f"EXTRA{number}", f"Extra {number}")
    result = world.cli("run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "mailchimp.merge_fields" in result.output and "COMPANY" in result.output


# case 4: a Mailchimp that ignores `offset` ------------------------------------------------------
def test_unsubscribes_paged_by_a_mailchimp_ignoring_offset_stop_as_a_paging_loop(world, sales):
    world.with_mailchimp()
    people(world, 3)
    world.run()
    world.clock.advance(600)
    for number in range(1001):
        world.mailchimp.add_member(
            world.list_id,
            f"u{number}@elsewhere.io",
            status="unsubscribed",
            last_changed=world.clock.now(),
        )
    world.clock.advance(600)
    world.mailchimp.ignore_offset = True
    result = world.run()
    assert result.set_aside == ["mailchimp"]
    assert "repeats a page" in result.destinations["mailchimp"]["reason"]
    world.mailchimp.ignore_offset = False
    world.clock.advance(600)
    assert world.run().set_aside == []


def test_tags_paged_by_a_mailchimp_ignoring_offset_stop_as_a_paging_loop(world, sales):
    world.with_mailchimp()
    for number in range(1001):
        world.mailchimp.add_tag(world.list_id, f"Marketing {number:04}")
    _twenty_won_and_renamed(world, sales)
    world.mailchimp.add_tag(world.list_id, "Customer")  # on the second page
    world.mailchimp.ignore_offset = True
    result = world.run()
    assert result.set_aside == ["mailchimp"]
    assert "repeats a page" in result.destinations["mailchimp"]["reason"]
    world.mailchimp.ignore_offset = False
    world.clock.advance(600)
    assert world.run().rejected == 0
    _all_right_and_settled(world)


# a results archive that is not one ---------------------------------------------------------------
ARCHIVE = r"^/batch-results/"


def test_a_results_archive_answered_with_a_page_is_fetched_again_from_a_fresh_link(world, sales):
    world.with_mailchimp()
    _renamed_everyone(world, 12)
    world.mailchimp.faults.add(Fault(method="GET", path=ARCHIVE, kind="html"))
    assert world.run().rejected == 0
    assert _first_names(world, 12) == {"Renamed"}


def test_a_results_archive_link_that_expired_is_fetched_again_from_a_fresh_link(world, sales):
    world.with_mailchimp()
    _renamed_everyone(world, 12)
    expired = {"Code": "AccessDenied", "Message": "Request has expired"}
    world.mailchimp.faults.add(Fault(method="GET", path=ARCHIVE, status=403, body=expired))
    result = world.run()
    assert result.set_aside == [] and result.rejected == 0
    assert _first_names(world, 12) == {"Renamed"}


@pytest.mark.parametrize("kind", ["html", "no_content"])
def test_a_results_archive_never_readable_holds_its_people_back_until_the_next_run(
    world, sales, kind
):
    world.with_mailchimp()
    _renamed_everyone(world, 12)
    world.mailchimp.faults.add(Fault(method="GET", path=ARCHIVE, kind=kind, times=0))
    result = world.run()
    assert result.set_aside == [] and rejection_kinds(result) == {
        email: "transient" for email in emails(12)
    }
    assert all("archive" in r["reason"] for r in result.rejections)
    world.mailchimp.faults.clear()
    world.clock.advance(600)
    assert world.run().rejected == 0
    assert _first_names(world, 12) == {"Renamed"}


# case 5: the wiring sets the HTTP timeout and the first poll --------------------------------------
class _Memory(dict):
    def get(self, key, default=None):
        return super().get(key, default)

    def set(self, key, value):
        self[key] = value


def test_the_http_timeout_and_the_first_batch_poll_are_set_by_the_caller(world):
    world.with_mailchimp()
    config = world.config().mailchimp
    http = mailchimp_http(config, world.clock, timeout=7.0)
    archive = HttpClient(
        base_url="", vendor="Mailchimp batch archive", clock=world.clock, expect_json=False
    )
    destination = MailchimpDestination(
        config, dict(DEFAULT_TAGS), http, archive, world.clock, job_timer=JobTimer(first=2.0)
    )
    destination.prepare(_Memory(), dry_run=False)
    before = [
        Person(i, f"p{i}@firm.io", "Old", "", None, None, None, True, Stage.NEW) for i in range(12)
    ]
    pushed = {c.person_id: c.record for c in destination.plan(before, {}, set()).changes}
    after = [
        Person(i, f"p{i}@firm.io", "New", "", None, None, None, True, Stage.NEW) for i in range(12)
    ]
    slept = len(world.clock.slept)
    outcomes = destination.push(destination.plan(after, pushed, set()).changes)
    assert http.timeout == 7.0
    assert world.clock.slept[slept] == 2.0  # the first poll of the job
    assert {(o.kind, o.record_updates["status"]) for o in outcomes} == {("done", "absent")}


# case 6: what the state stores is not what a push worker goes on changing ------------------------
def _twelve(stage):
    return [Person(i, f"p{i}@firm.io", "Ada", "", None, None, None, True, stage) for i in range(12)]


def test_the_tag_ids_handed_to_the_state_do_not_change_when_a_later_push_makes_a_tag(world):
    """The main thread writes the memory to the state while a push worker may be adding a tag:
    the value handed over must be a copy, not the worker's live map."""
    world.with_mailchimp()
    config = world.config().mailchimp
    archive = HttpClient(
        base_url="", vendor="Mailchimp batch archive", clock=world.clock, expect_json=False
    )
    http = mailchimp_http(config, world.clock)
    destination = MailchimpDestination(config, dict(DEFAULT_TAGS), http, archive, world.clock)
    memory = _Memory()
    destination.prepare(memory, dry_run=False)
    created = destination.plan(_twelve(Stage.NEW), {}, set()).changes
    destination.push(created)
    handed_over = memory["segments"]
    as_handed = dict(handed_over)
    pushed = {c.person_id: c.record for c in created}
    destination.push(destination.plan(_twelve(Stage.WON), pushed, set()).changes)
    assert "Customer" in memory["segments"]  # the later push made the tag and stored it anew
    assert handed_over == as_handed


def _too_large(path):
    body = {"title": "Request Entity Too Large", "detail": "Too large."}
    return Fault(method="POST", path=path, status=413, body=body)
