"""Kommo deletions and restores end to end: one lifecycle read per run, before the pull."""

from __future__ import annotations

from kommo_sync.state import State
from kommo_sync.window import LIFECYCLE
from tests.conftest import World

WON = 142


def customer(world: World, sales: int, email: str = "ada@firm.io") -> tuple[int, int]:
    """A consenting contact with one won deal; returns (contact id, lead id)."""
    contact = world.kommo.add_contact("Ada", "Lovelace", email=email, consent=True)
    lead = world.kommo.add_lead("Engines", 5000, sales, WON, contact_ids=[contact])
    return contact, lead


def tags(world: World, email: str = "ada@firm.io") -> set[str]:
    return world.mailchimp.member_tags(world.list_id, email)


def test_a_customer_whose_only_won_deal_is_deleted_is_no_longer_customer(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    contact, won = customer(world, sales)
    world.kommo.add_lead(
        "Follow-up", 100, sales, world.status_id(sales, "Qualified"), contact_ids=[contact]
    )
    assert world.cli("run").exit_code == 0
    assert tags(world) == {"Customer"}
    world.clock.advance(600)
    world.kommo.delete_lead(won)
    world.clock.advance(600)
    result = world.cli("run")
    assert result.exit_code == 0, result.output
    assert tags(world) == {"In Progress"}


def test_a_deleted_contact_is_never_replanned_as_a_new_lead(world: World, sales: int) -> None:
    world.with_mailchimp(on_delete="keep")  # its exit is test_on_delete's
    contact, lead = customer(world, sales)
    assert world.cli("run").exit_code == 0
    world.clock.advance(600)
    world.kommo.delete_contact(contact)
    world.kommo.update_lead(lead, name="Engines II")  # the lead changes, without its contact
    world.clock.advance(600)
    writes = len(world.mailchimp.writes())
    result = world.run()
    assert result.counts["lifecycle.contact_deleted"] == 1
    assert result.counts["mailchimp.done"] == 0
    assert len(world.mailchimp.writes()) == writes
    assert tags(world) == {"Customer"}


def test_a_restored_contact_is_synced_again_as_it_stands(world: World, sales: int) -> None:
    world.with_mailchimp()
    contact, _ = customer(world, sales)
    world.run()
    world.clock.advance(600)
    world.kommo.delete_contact(contact)
    world.clock.advance(600)
    world.run()
    world.clock.advance(600)
    world.kommo.restore_contact(contact)
    world.clock.advance(600)
    result = world.run()
    assert result.counts["lifecycle.contact_restored"] == 1
    assert result.counts["contacts_by_id"] == 1
    member = world.mailchimp.member(world.list_id, "ada@firm.io")
    assert member is not None and member["status"] == "subscribed"
    assert tags(world) == {"Customer"}


def test_a_restored_lead_makes_its_contact_customer_again(world: World, sales: int) -> None:
    world.with_mailchimp()
    _, won = customer(world, sales)
    world.run()
    world.clock.advance(600)
    world.kommo.delete_lead(won)
    world.clock.advance(600)
    world.run()
    assert tags(world) == {"New Lead"}
    world.clock.advance(600)
    world.kommo.restore_lead(won)
    world.clock.advance(600)
    result = world.run()
    assert result.counts["lifecycle.lead_restored"] == 1
    assert tags(world) == {"Customer"}


def test_the_lifecycle_cursor_moves_to_the_run_start_and_the_next_window_starts_there(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    first = world.run()
    world.clock.advance(3600)
    second = world.run()
    with State.open(world.config().state) as state:
        assert state.cursor(LIFECYCLE) == second.started_at
        assert state.cursor(LIFECYCLE + ".start") == first.started_at
    assert second.counts.get("pulled_lifecycle_events", 0) == 0
