"""Merges in Kommo end to end: one person after it, whichever side the event names; a card
leaving a same-email group hands the person over instead of making an exit."""

from __future__ import annotations

import pytest

from kommo_sync.state import State
from tests.conftest import World

WON = 142


def member_status(world: World, email: str) -> str | None:
    member = world.mailchimp.member(world.list_id, email)
    return None if member is None else str(member["status"])


def tags(world: World, email: str) -> set[str]:
    return world.mailchimp.member_tags(world.list_id, email)


def in_list(world: World, email: str) -> bool:
    profile = world.klaviyo.profile_by_email(email)
    return profile is not None and profile["id"] in world.klaviyo.list_members(world.klaviyo_list)


def pushed_ids(world: World, destination: str) -> set[int]:
    with State.open(world.config().state, dry_run=True) as state:
        rows = state.db.execute(
            "SELECT person_id FROM pushed WHERE destination = ?", (destination,)
        )
        return {row[0] for row in rows}


def twins(world: World, sales: int) -> tuple[int, int]:
    """Two cards of one address, both pushed as one person (the first, lower id, is its
    identity); the second holds the won deal. Returns (first, second)."""
    world.with_mailchimp().with_klaviyo()
    first = world.kommo.add_contact("Ada", "Lovelace", email="ada@firm.io", consent=True)
    second = world.kommo.add_contact("Ada", "L.", email="ada@firm.io", consent=True)
    world.kommo.add_lead("Engines", 5000, sales, WON, contact_ids=[second])
    assert world.cli("run").exit_code == 0
    assert pushed_ids(world, "mailchimp") == {first}
    world.clock.advance(600)
    return first, second


@pytest.mark.parametrize("named", ["survivor", "loser"])
def test_a_merge_of_two_cards_of_one_email_keeps_the_one_member_and_profile(
    world: World, sales: int, named: str
) -> None:
    first, second = twins(world, sales)
    profile = world.klaviyo.profile_by_email("ada@firm.io")
    assert profile is not None
    world.kommo.merge_contacts(second, first, named=second if named == "survivor" else first)
    world.clock.advance(600)
    result = world.run()
    assert result.exit_code == 0
    assert result.counts["lifecycle.entity_merged"] == 1
    assert result.counts["handed_over"] == 2  # its Mailchimp and Klaviyo records
    assert result.counts["mailchimp.exit_archive"] == 0
    assert result.counts["klaviyo.exit_remove_from_lists"] == 0
    assert member_status(world, "ada@firm.io") == "subscribed"
    assert tags(world, "ada@firm.io") == {"Customer"}
    assert pushed_ids(world, "mailchimp") == {second}
    assert pushed_ids(world, "klaviyo") == {second}
    after = world.klaviyo.profile_by_email("ada@firm.io")
    assert after is not None and after["id"] == profile["id"]
    assert in_list(world, "ada@firm.io")
    assert world.run().counts["mailchimp.done"] == 0  # in step: nothing planned again


@pytest.mark.parametrize("named", ["survivor", "loser"])
def test_a_merge_of_cards_with_different_emails_makes_the_losers_exit(
    world: World, sales: int, named: str
) -> None:
    world.with_mailchimp()
    survivor = world.kommo.add_contact("Ada", "Lovelace", email="ada@firm.io", consent=True)
    loser = world.kommo.add_contact("Ada", "Work", email="ada@work.io", consent=True)
    world.kommo.add_lead("Engines", 5000, sales, WON, contact_ids=[loser])
    assert world.cli("run").exit_code == 0
    assert tags(world, "ada@work.io") == {"Customer"}
    assert tags(world, "ada@firm.io") == {"New Lead"}
    world.clock.advance(600)
    world.kommo.merge_contacts(survivor, loser, named=survivor if named == "survivor" else loser)
    world.clock.advance(600)
    result = world.run()
    assert result.exit_code == 0
    assert result.counts["mailchimp.exit_archive"] == 1
    assert member_status(world, "ada@work.io") == "archived"
    assert member_status(world, "ada@firm.io") == "subscribed"
    assert tags(world, "ada@firm.io") == {"Customer"}  # the won deal moved to the survivor
    assert pushed_ids(world, "mailchimp") == {survivor, loser}  # the loser's says archived
    assert world.run().counts["mailchimp.exit_archive"] == 0  # made once


def test_a_deleted_card_of_a_same_email_group_hands_the_person_over(
    world: World, sales: int
) -> None:
    first, second = twins(world, sales)
    world.kommo.delete_contact(first)
    world.clock.advance(600)
    result = world.run()
    assert result.counts["lifecycle.contact_deleted"] == 1
    assert result.counts["handed_over"] == 2  # its Mailchimp and Klaviyo records
    assert result.counts["mailchimp.exit_archive"] == 0
    assert member_status(world, "ada@firm.io") == "subscribed"
    assert tags(world, "ada@firm.io") == {"Customer"}
    assert pushed_ids(world, "mailchimp") == {second}
    assert in_list(world, "ada@firm.io")


def test_a_deleted_card_holding_the_won_deal_replans_the_group(world: World, sales: int) -> None:
    first, second = twins(world, sales)
    world.kommo.delete_contact(second)
    world.clock.advance(600)
    result = world.run()
    assert result.counts["handed_over"] == 0  # the identity stays
    assert result.counts["mailchimp.exit_archive"] == 0
    assert member_status(world, "ada@firm.io") == "subscribed"
    assert tags(world, "ada@firm.io") == {"New Lead"}  # its won deal left with it
    assert pushed_ids(world, "mailchimp") == {first}


def test_a_lower_id_card_restored_takes_over_what_was_pushed(world: World, sales: int) -> None:
    first, second = twins(world, sales)
    world.kommo.delete_contact(first)
    world.clock.advance(600)
    world.run()
    assert pushed_ids(world, "mailchimp") == {second}
    world.clock.advance(600)
    world.kommo.restore_contact(first)
    world.clock.advance(600)
    result = world.run()
    assert result.counts["mailchimp.create"] == 0  # the member it had, not a new one
    assert pushed_ids(world, "mailchimp") == {first}
    assert member_status(world, "ada@firm.io") == "subscribed"
    assert tags(world, "ada@firm.io") == {"Customer"}
