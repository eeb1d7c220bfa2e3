"""Mailchimp end to end against the sandboxes: members, tags, consent, renames, rejections."""

import pytest
import requests

from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.destinations.mailchimp.mapping import plan_person, subscriber_hash
from kommo_sync.model import Person, Stage
from tests.conftest import BOTH_BACKENDS, assert_no_secret

pytestmark = BOTH_BACKENDS


def mc_writes(world):
    return [r for r in world.mailchimp.writes()]


def test_first_sync_lands_members_with_fields_tag_and_consent(world, sales):
    world.with_mailchimp()
    acme = world.kommo.add_company("Acme GmbH")
    ada = world.kommo.add_contact(
        "Ada",
        "Lovelace",
        email="Ada@Analytical.io ",
        phone="+49 30 1234567",
        company_id=acme,
        consent=True,
        lead_source="Webinar",
    )
    world.kommo.add_lead(
        "Engines", 5000, sales, world.status_id(sales, "Proposal"), contact_ids=[ada]
    )
    world.kommo.add_contact("Bob", "Stone", email="bob@stone.io", consent=False)
    result = world.cli("run")
    assert result.exit_code == 0, result.output
    member = world.mailchimp.member(world.list_id, "ada@analytical.io")
    assert member["status"] == "subscribed"
    assert (
        member["merge_fields"]["FNAME"] == "Ada"
        and member["merge_fields"]["COMPANY"] == "Acme GmbH"
    )
    assert member["merge_fields"]["LEADSOURCE"] == "Webinar"
    assert world.mailchimp.member_tags(world.list_id, "ada@analytical.io") == {"In Progress"}
    assert (
        world.mailchimp.member(world.list_id, "bob@stone.io") is None
    )  # skip: no consent, not a member
    assert_no_secret(result.output)


def test_a_second_run_with_nothing_changed_sends_no_write(world, sales):
    world.with_mailchimp()
    for i in range(15):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
    world.run()
    world.clock.advance(3600)
    before = len(mc_writes(world))
    result = world.run()
    assert len(mc_writes(world)) == before
    assert result.counts["mailchimp.done"] == 0


def test_won_and_lost_retag_while_the_marketers_tag_survives(world, sales):
    world.with_mailchimp()
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    bob = world.kommo.add_contact("Bob", email="bob@stone.io", consent=True)
    deal_a = world.kommo.add_lead(
        "A", 100, sales, world.status_id(sales, "Qualified"), contact_ids=[ada]
    )
    deal_b = world.kommo.add_lead(
        "B", 100, sales, world.status_id(sales, "Qualified"), contact_ids=[bob]
    )
    world.run()
    _tag_by_marketer(world, "ada@analytical.io", "VIP")
    world.clock.advance(60)
    world.kommo.move_lead(deal_a, 142)
    world.kommo.move_lead(deal_b, 143)
    assert world.run().rejected == 0
    assert world.mailchimp.member_tags(world.list_id, "ada@analytical.io") == {"Customer", "VIP"}
    assert world.mailchimp.member_tags(world.list_id, "bob@stone.io") == {"Lost Lead"}


def test_bulk_path_creates_retags_and_keeps_marketer_tags(world, sales):
    world.with_mailchimp()
    people, deals = _qualified(world, sales, 40)
    world.run()
    assert world.mailchimp.requests(
        "POST", f"/3.0/lists/{world.list_id}"
    )  # batch subscribe was used
    assert all(
        world.mailchimp.member_tags(world.list_id, f"p{i}@firm.io") == {"In Progress"}
        for i in range(40)
    )
    _tag_by_marketer(world, "p0@firm.io", "VIP")
    world.clock.advance(60)
    for deal in deals[:20]:
        world.kommo.move_lead(deal, 142)
    for contact in people[20:]:
        world.kommo.update_contact(contact, first_name="Renamed")
    result = world.run()
    assert result.rejected == 0
    assert world.mailchimp.member_tags(world.list_id, "p0@firm.io") == {"Customer", "VIP"}
    assert world.mailchimp.member_tags(world.list_id, "p25@firm.io") == {"In Progress"}
    assert (
        world.mailchimp.member(world.list_id, "p25@firm.io")["merge_fields"]["FNAME"] == "Renamed"
    )
    writes = mc_writes(world)
    assert sum(1 for w in writes if w.path == "/3.0/batches") >= 1


def test_an_email_change_renames_the_member_instead_of_adding_one(world, sales):
    world.with_mailchimp()
    ada = world.kommo.add_contact("Ada", email="ada@old.io", consent=True)
    world.run()
    world.clock.advance(60)
    world.kommo.update_contact(ada, email="ada@new.io")
    result = world.run()
    assert result.counts["mailchimp.rename"] == 1
    emails = [m["email_address"] for m in world.mailchimp.members(world.list_id)]
    assert emails == ["ada@new.io"]


def test_consent_withdrawn_unsubscribes(world, sales):
    world.with_mailchimp()
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    world.run()
    world.clock.advance(60)
    world.kommo.update_contact(ada, consent=False)
    world.run()
    assert world.mailchimp.member(world.list_id, "ada@analytical.io")["status"] == "unsubscribed"


def test_only_the_consent_withdrawn_change_is_marked_as_opting_out():
    config = MailchimpConfig(api_key="k-us1", list_id="l1", base_url="http://mc/3.0")
    ada = Person(1, "ada@analytical.io", "Ada", "", None, None, None, True, Stage.NEW)
    created = plan_person(ada, None, False, config, dict(DEFAULT_TAGS))
    withdrawn = plan_person(
        Person(1, "ada@analytical.io", "Ada", "", None, None, None, False, Stage.NEW),
        created.record,
        False,
        config,
        dict(DEFAULT_TAGS),
    )
    renamed = plan_person(
        Person(1, "ada@analytical.io", "Augusta", "", None, None, None, True, Stage.NEW),
        created.record,
        False,
        config,
        dict(DEFAULT_TAGS),
    )
    assert (created.action, created.opts_out) == ("create", False)
    assert (withdrawn.action, withdrawn.opts_out) == ("unsubscribe", True)
    assert (renamed.action, renamed.opts_out) == ("update", False)


def test_an_already_unsubscribed_member_is_not_resubscribed_but_gets_fields_and_tag(world, sales):
    world.with_mailchimp()
    world.mailchimp.add_member(world.list_id, "ada@analytical.io", status="unsubscribed")
    world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io", consent=True)
    result = world.run()
    assert result.rejected == 0
    member = world.mailchimp.member(world.list_id, "ada@analytical.io")
    assert member["status"] == "unsubscribed" and member["merge_fields"]["LNAME"] == "Lovelace"
    assert world.mailchimp.member_tags(world.list_id, "ada@analytical.io") == {"New Lead"}
    bodies = [w.json() for w in world.mailchimp.writes()]
    assert not any(isinstance(b, dict) and b.get("status") == "subscribed" for b in bodies)


def test_bulk_never_resubscribes_unsubscribed_or_cleaned_members(world, sales):
    world.with_mailchimp()
    world.mailchimp.add_member(world.list_id, "gone@firm.io", status="unsubscribed")
    world.mailchimp.add_member(world.list_id, "bounced@firm.io", status="cleaned")
    for i in range(20):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
    world.kommo.add_contact("Gone", email="gone@firm.io", consent=True)
    world.kommo.add_contact("Bounced", email="bounced@firm.io", consent=True)
    result = world.run()
    assert result.rejected == 0
    assert world.mailchimp.member(world.list_id, "gone@firm.io")["status"] == "unsubscribed"
    assert world.mailchimp.member(world.list_id, "bounced@firm.io")["status"] == "cleaned"
    assert world.mailchimp.member_tags(world.list_id, "gone@firm.io") == {"New Lead"}


@pytest.mark.parametrize("someone_there", [False, True])
def test_update_if_member_is_asked_only_when_the_audience_held_anyone(world, sales, someone_there):
    world.with_mailchimp()
    if someone_there:
        world.mailchimp.add_member(world.list_id, "q3@firm.io", status="unsubscribed")
    for i in range(20):
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True)
        world.kommo.add_contact(f"Q{i}", "Quiet", email=f"q{i}@firm.io", consent=False)
    assert world.run().rejected == 0
    probes = [
        op
        for w in world.mailchimp.writes()
        if w.path == "/3.0/batches"
        for op in w.json()["operations"]
        if op["method"] == "PATCH"
    ]
    assert len(probes) == (20 if someone_there else 0)
    assert world.mailchimp.member(world.list_id, "q0@firm.io") is None
    assert world.mailchimp.member(world.list_id, "p0@firm.io")["status"] == "subscribed"
    if someone_there:
        assert (
            world.mailchimp.member(world.list_id, "q3@firm.io")["merge_fields"]["LNAME"] == "Quiet"
        )
    world.clock.advance(60)
    world.mailchimp.add_member(world.list_id, "late@firm.io", status="subscribed")
    world.kommo.add_contact("Late", "Quiet", email="late@firm.io", consent=False)
    world.run()  # members were pushed: no longer "empty"
    assert world.mailchimp.member(world.list_id, "late@firm.io")["merge_fields"]["LNAME"] == "Quiet"


def test_a_bad_email_is_rejected_with_a_reason_the_rest_syncs_and_it_is_not_retried(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Fake", email="test@example.com", consent=True)
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    code, body = world.cli_json("run")
    assert code == 1
    [rejection] = body["rejections"]
    assert (
        rejection["email"] == "test@example.com" and "looks fake or invalid" in rejection["reason"]
    )
    assert rejection["kind"] == "permanent"
    assert world.mailchimp.member(world.list_id, "ada@analytical.io")["status"] == "subscribed"
    world.clock.advance(3600)
    before = len(mc_writes(world))
    code, body = world.cli_json("run")
    assert code == 0 and len(mc_writes(world)) == before
    status = __import__("json").loads(world.cli("status", "--json").output)
    assert status["rejection_counts"] == {"permanent": 1}
    assert "looks fake or invalid" in status["rejections"][0]["reason"]


def test_a_transient_failure_is_retried_on_the_next_run(world, sales):
    world.with_mailchimp()
    world.raw["feedback"] = {"unsubscribes": False}  # so the injected failures hit the member write
    world.kommo.add_contact("Bob", email="bob@stone.io", consent=True)
    world.run()  # merge fields and tags are known from here on
    world.clock.advance(60)
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    world.mailchimp.fail_next(5, 503)
    first = world.run()
    assert first.counts["mailchimp.rejected.transient"] == 1
    world.clock.advance(3600)
    second = world.run()
    assert second.counts["mailchimp.done"] == 1
    assert world.mailchimp.member(world.list_id, "ada@analytical.io")["status"] == "subscribed"


def test_without_consent_transactional_and_pending_modes(world, sales):
    world.with_mailchimp(without_consent="transactional")
    world.kommo.add_contact("Bob", email="bob@stone.io", consent=False)
    world.run()
    assert world.mailchimp.member(world.list_id, "bob@stone.io")["status"] == "transactional"


def test_skip_mode_still_updates_an_existing_member(world, sales):
    world.with_mailchimp()
    world.mailchimp.add_member(world.list_id, "bob@stone.io", status="subscribed")
    world.kommo.add_contact("Bob", "Stone", email="bob@stone.io", consent=False)
    world.kommo.add_contact("Cy", email="cy@stone.io", consent=False)
    world.run()
    assert world.mailchimp.member(world.list_id, "bob@stone.io")["merge_fields"]["LNAME"] == "Stone"
    assert world.mailchimp.member(world.list_id, "cy@stone.io") is None


def test_renaming_a_tag_in_config_removes_the_old_one(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    world.run()
    world.raw["tags"] = {"new": "Fresh Lead"}
    world.clock.advance(60)
    result = world.run()
    assert result.counts["mailchimp.replanned_for_new_settings"] == 1
    assert world.mailchimp.member_tags(world.list_id, "ada@analytical.io") == {"Fresh Lead"}
    world.clock.advance(60)
    assert world.run().counts["mailchimp.replanned_for_new_settings"] == 0


def test_missing_merge_fields_are_created_once(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    world.run()
    world.clock.advance(60)
    world.kommo.add_contact("Bob", email="bob@stone.io", consent=True)
    world.run()
    created = world.mailchimp.requests("POST", f"/3.0/lists/{world.list_id}/merge-fields")
    assert sorted(r.json()["tag"] for r in created) == ["COMPANY", "LEADSOURCE"]


def test_dry_run_shows_operations_and_sends_no_write(world, sales):
    world.with_mailchimp()
    ada = world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    world.run()
    world.clock.advance(60)
    world.kommo.update_contact(ada, email="ada@new.io", first_name="Augusta")
    world.kommo.add_contact("Bob", email="bob@stone.io", consent=True)
    before = len(mc_writes(world))
    code, body = world.cli_json("run", "--dry-run")
    assert len(mc_writes(world)) == before
    ops = {op["email"]: op for op in body["operations"] if op["destination"] == "mailchimp"}
    assert (
        ops["ada@new.io"]["action"] == "rename"
        and ops["ada@new.io"]["renamed_from"] == "ada@analytical.io"
    )
    assert "FNAME" in ops["ada@new.io"]["fields"]
    assert (
        ops["bob@stone.io"]["action"] == "create" and ops["bob@stone.io"]["tag_added"] == "New Lead"
    )
    human = world.cli("run", "--dry-run")
    assert "rename" in human.output and "Operations" in human.output
    assert_no_secret(human.output)


def test_people_without_email_are_skipped_and_counted(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Nomail")
    result = world.run()
    assert result.counts["mailchimp.skipped.no_email"] == 1


def _tag_by_marketer(world, email, tag):
    url = f"{world.servers[1].url}/3.0/lists/{world.list_id}/members/{subscriber_hash(email)}/tags"
    response = requests.post(
        url,
        json={"tags": [{"name": tag, "status": "active"}]},
        auth=("marketer", world.mailchimp.api_key),
        timeout=5,
    )
    assert response.status_code == 204


def test_a_new_audience_gets_everyone_again_with_its_own_tags(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", email="ada@analytical.io", consent=True)
    world.run()
    other = world.mailchimp.add_list("Second audience")
    world.raw["mailchimp"]["list_id"] = other
    world.clock.advance(60)
    result = world.run()
    assert result.rejected == 0
    assert world.mailchimp.member(other, "ada@analytical.io")["status"] == "subscribed"
    assert world.mailchimp.member_tags(other, "ada@analytical.io") == {"New Lead"}


def test_a_tag_a_marketer_deleted_rejects_its_moves_once_and_is_made_again(world, sales):
    world.with_mailchimp()
    people, deals = _qualified(world, sales, 40)
    world.run()
    world.clock.advance(60)
    for deal in deals[:20]:
        world.kommo.move_lead(deal, 142)
    world.run()  # "Customer" made and remembered
    assert world.mailchimp.member_tags(world.list_id, "p0@firm.io") == {"Customer"}
    customer = _segment_id(world, "Customer")
    _delete_segment(world, customer)
    world.clock.advance(60)
    for deal, contact in zip(deals[20:], people[20:], strict=True):
        world.kommo.move_lead(deal, 142)
        world.kommo.update_contact(contact, first_name="Won")
    code, body = world.cli_json("run")
    assert code == 1 and len(body["rejections"]) == 20
    assert all(
        "tag 'Customer' was deleted in Mailchimp" in r["reason"] and r["kind"] == "transient"
        for r in body["rejections"]
    )
    assert world.mailchimp.member(world.list_id, "p25@firm.io")["merge_fields"]["FNAME"] == "Won"
    assert (
        world.mailchimp.member_tags(world.list_id, "p25@firm.io") == set()
    )  # In Progress left already
    world.clock.advance(3600)
    assert world.run().rejected == 0
    assert all(
        world.mailchimp.member_tags(world.list_id, f"p{i}@firm.io") == {"Customer"}
        for i in range(20, 40)
    )
    assert _segment_id(world, "Customer") != customer


def _segment_id(world, name):
    response = requests.get(
        f"{world.servers[1].url}/3.0/lists/{world.list_id}/segments",
        params={"type": "static", "count": 1000},
        auth=("marketer", world.mailchimp.api_key),
        timeout=5,
    )
    return {s["name"]: s["id"] for s in response.json()["segments"]}.get(name)


def _delete_segment(world, segment_id):
    response = requests.delete(
        f"{world.servers[1].url}/3.0/lists/{world.list_id}/segments/{segment_id}",
        auth=("marketer", world.mailchimp.api_key),
        timeout=5,
    )
    assert response.status_code == 204


def _qualified(world, sales, n):
    """`n` consenting contacts, each with a deal in Qualified: the bulk path's size."""
    people = [
        world.kommo.add_contact(f"P{i}", email=f"p{i}@firm.io", consent=True) for i in range(n)
    ]
    qualified = world.status_id(sales, "Qualified")
    deals = [
        world.kommo.add_lead(f"D{i}", 10, sales, qualified, contact_ids=[c])
        for i, c in enumerate(people)
    ]
    return people, deals
