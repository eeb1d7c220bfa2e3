"""A contact deleted in Kommo leaves each destination as its `on_delete` says, once, durably."""

from __future__ import annotations

import json
from typing import Any

from kommo_sync.sandbox.faults import Fault
from kommo_sync.state import State
from tests.conftest import World

WON = 142
EMAIL = "ada@firm.io"


def pushed_then_deleted(world: World, sales: int, email: str = EMAIL) -> int:
    """A consenting customer pushed by one run, then deleted in Kommo; returns its id."""
    contact = world.kommo.add_contact("Ada", "Lovelace", email=email, consent=True)
    world.kommo.add_lead("Engines", 5000, sales, WON, contact_ids=[contact])
    assert world.cli("run").exit_code == 0
    world.clock.advance(600)
    world.kommo.delete_contact(contact)
    world.clock.advance(600)
    return contact


def member(world: World, email: str = EMAIL) -> dict[str, Any]:
    found = world.mailchimp.member(world.list_id, email)
    assert found is not None
    return found


def consent(world: World, email: str = EMAIL) -> str:
    profile = world.klaviyo.profile_by_email(email)
    assert profile is not None
    return str(profile["subscriptions"]["email"]["marketing"]["consent"])


def test_mailchimp_archives_a_deleted_contacts_member_by_default(world: World, sales: int) -> None:
    world.with_mailchimp()
    pushed_then_deleted(world, sales)
    result = world.run()
    assert result.counts["mailchimp.exit_archive"] == 1
    assert member(world)["status"] == "archived"
    subscribed = [m for m in world.mailchimp.members(world.list_id) if m["status"] == "subscribed"]
    assert subscribed == []
    assert world.run().counts["mailchimp.exit_archive"] == 0  # made once


def test_mailchimp_unsubscribes_or_keeps_as_configured(world: World, sales: int) -> None:
    world.with_mailchimp(on_delete="unsubscribe")
    pushed_then_deleted(world, sales)
    world.run()
    assert member(world)["status"] == "unsubscribed"
    world.with_mailchimp(on_delete="keep")
    pushed_then_deleted(world, sales, email="bob@firm.io")
    writes = len(world.mailchimp.writes())
    assert world.run().counts["mailchimp.done"] == 0
    assert len(world.mailchimp.writes()) == writes
    assert member(world, "bob@firm.io")["status"] == "subscribed"


def test_klaviyo_removes_a_deleted_profile_from_the_managed_lists(world: World, sales: int) -> None:
    world.with_klaviyo()
    pushed_then_deleted(world, sales)
    profile = world.klaviyo.profile_by_email(EMAIL)
    assert profile is not None and profile["id"] in world.klaviyo.list_members(world.klaviyo_list)
    result = world.run()
    assert result.counts["klaviyo.exit_remove_from_lists"] == 1
    assert profile["id"] not in world.klaviyo.list_members(world.klaviyo_list)
    assert consent(world) == "SUBSCRIBED"  # out of the lists, not unsubscribed


def test_klaviyo_suppresses_or_keeps_as_configured(world: World, sales: int) -> None:
    world.with_klaviyo(on_delete="suppress")
    pushed_then_deleted(world, sales)
    assert world.run().counts["klaviyo.exit_suppress"] == 1
    assert consent(world) == "UNSUBSCRIBED"
    world.with_klaviyo(on_delete="keep")
    pushed_then_deleted(world, sales, email="bob@firm.io")
    world.run()
    profile = world.klaviyo.profile_by_email("bob@firm.io")
    assert profile is not None and profile["id"] in world.klaviyo.list_members(world.klaviyo_list)
    assert consent(world, "bob@firm.io") == "SUBSCRIBED"


def test_a_contact_never_pushed_is_not_touched(world: World, sales: int) -> None:
    world.with_mailchimp()
    world.mailchimp.add_member(world.list_id, EMAIL, "subscribed")
    contact = world.kommo.add_contact("Ada", "Lovelace", email=EMAIL, consent=True)
    world.kommo.delete_contact(contact)  # deleted before any run pushed it
    world.clock.advance(600)
    world.run()
    world.clock.advance(600)
    assert world.run().counts["mailchimp.exit_archive"] == 0
    assert member(world)["status"] == "subscribed"


def test_a_vendor_fault_keeps_the_exit_queued_for_the_next_run(world: World, sales: int) -> None:
    world.with_mailchimp()
    pushed_then_deleted(world, sales)
    path = f"/3.0/lists/{world.list_id}/members/"
    world.mailchimp.faults.add(Fault(method="DELETE", path=path, status=503, times=5))
    result = world.run()
    assert result.counts["mailchimp.exits_held"] == 1
    assert any("1 deleted contacts still have an exit to make" in w for w in result.warnings)
    assert member(world)["status"] == "subscribed"
    world.clock.advance(600)
    assert world.run().counts["mailchimp.exit_archive"] == 1
    assert member(world)["status"] == "archived"


def deleted_then_restored(world: World, sales: int) -> None:
    """A pushed contact deleted in Kommo (its exit made by a run), then restored and synced."""
    contact = pushed_then_deleted(world, sales)
    world.run()
    world.clock.advance(600)
    world.kommo.restore_contact(contact)
    world.clock.advance(600)
    world.run()


def test_a_restore_after_archive_brings_the_member_back_subscribed(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    deleted_then_restored(world, sales)
    assert member(world)["status"] == "subscribed"


def test_an_unsubscribed_member_stays_unsubscribed_through_delete_and_restore(
    world: World, sales: int
) -> None:
    world.with_mailchimp(on_delete="unsubscribe")
    deleted_then_restored(world, sales)
    assert member(world)["status"] == "unsubscribed"


def test_someone_who_unsubscribed_then_was_archived_is_never_subscribed_by_a_restore(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    contact = world.kommo.add_contact("Ada", "Lovelace", email=EMAIL, consent=True)
    world.kommo.add_lead("Engines", 5000, sales, WON, contact_ids=[contact])
    world.run()
    world.clock.advance(600)
    world.mailchimp.unsubscribe(world.list_id, EMAIL)
    world.clock.advance(600)
    world.run()  # the unsubscribe is read back: a suppression
    world.kommo.delete_contact(contact)
    world.clock.advance(600)
    assert world.run().counts["mailchimp.exit_archive"] == 1
    world.kommo.restore_contact(contact)
    world.clock.advance(600)
    world.run()
    assert member(world)["status"] in ("archived", "unsubscribed")
    subscribed = [m for m in world.mailchimp.members(world.list_id) if m["status"] == "subscribed"]
    assert subscribed == []


def test_klaviyo_removal_covers_the_stage_lists_and_a_restore_rejoins_them(
    world: World, sales: int
) -> None:
    customers = world.klaviyo.add_list("Customers")
    world.with_klaviyo(lists_by_stage={"won": customers})
    contact = pushed_then_deleted(world, sales)
    profile = world.klaviyo.profile_by_email(EMAIL)
    assert profile is not None and profile["id"] in world.klaviyo.list_members(customers)
    world.run()
    assert profile["id"] not in world.klaviyo.list_members(customers)
    assert profile["id"] not in world.klaviyo.list_members(world.klaviyo_list)
    world.clock.advance(600)
    world.kommo.restore_contact(contact)
    world.clock.advance(600)
    world.run()
    assert profile["id"] in world.klaviyo.list_members(customers)
    assert profile["id"] in world.klaviyo.list_members(world.klaviyo_list)


def test_changing_on_delete_replans_nobody(world: World, sales: int) -> None:
    world.with_mailchimp()
    world.kommo.add_contact("Bob", "Babbage", email="bob@firm.io", consent=True)
    world.run()
    world.clock.advance(600)
    world.with_mailchimp(on_delete="unsubscribe")
    assert world.run().counts["mailchimp.done"] == 0


def test_a_member_mailchimp_will_not_archive_is_done(world: World, sales: int) -> None:
    """405 "Can not archive a contact that is bounced…": nothing to do, the exit is made."""
    world.with_mailchimp()
    pushed_then_deleted(world, sales)
    world.mailchimp.clean(world.list_id, EMAIL)
    result = world.run()
    assert result.counts["mailchimp.exit_archive"] == 1 and result.counts["mailchimp.done"] == 1
    assert result.rejected == 0 and member(world)["status"] == "cleaned"
    assert world.run().counts["mailchimp.exit_archive"] == 0


def test_what_is_kept_of_a_departed_person_is_a_tombstone_without_names(
    world: World, sales: int
) -> None:
    world.with_mailchimp().with_klaviyo()
    contact = pushed_then_deleted(world, sales)
    world.run()
    with State.open(world.config().state, dry_run=True) as state:
        kept = {name: state.pushed(name, [contact])[contact] for name in ("mailchimp", "klaviyo")}
    assert "Lovelace" not in json.dumps(kept) and "Ada" not in json.dumps(kept)
    assert kept["mailchimp"]["status"] == "archived" and kept["mailchimp"]["email"] == EMAIL
    assert "merge_fields" not in kept["mailchimp"]
    assert kept["klaviyo"]["lists"] == [] and "properties" not in kept["klaviyo"]
    world.clock.advance(600)
    world.kommo.restore_contact(contact)
    world.clock.advance(600)
    world.run()
    assert member(world)["status"] == "subscribed"
    assert member(world)["merge_fields"]["LNAME"] == "Lovelace"
    assert world.klaviyo.profile_by_email(EMAIL)["last_name"] == "Lovelace"


def test_a_refused_exit_is_a_rejection_and_retry_permanent_makes_it(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    pushed_then_deleted(world, sales)
    refusal = {"title": "Invalid Resource", "status": 400, "detail": "This member is locked."}
    path = f"/3.0/lists/{world.list_id}/members/"
    world.mailchimp.faults.add(Fault(method="DELETE", path=path, status=400, body=refusal))
    result = world.cli("run")
    assert result.exit_code == 1  # rejected: named by the vendor for this one member
    [row] = json.loads(world.cli("rejections", "--json").stdout)["rejections"]
    assert row["kind"] == "permanent" and "locked" in row["reason"]
    assert member(world)["status"] == "subscribed"
    world.clock.advance(600)
    assert world.run().counts["mailchimp.exit_archive"] == 0  # not retried on its own
    retried = world.cli("retry", "--permanent")
    assert "1 re-queued" in retried.output
    world.clock.advance(600)
    again = world.run()
    assert again.counts["mailchimp.exit_archive"] == 1 and again.exit_code == 0
    assert member(world)["status"] == "archived"
    assert json.loads(world.cli("rejections", "--json").stdout)["rejections"] == []
    with State.open(world.config().state, dry_run=True) as state:
        assert state.dirty_count() == 0 and state.exits_to_make() == []
