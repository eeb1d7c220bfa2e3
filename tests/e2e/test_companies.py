"""Companies are mirrored whole and read by their own updated_at window, before leads and
contacts: a company edited in Kommo re-plans its contacts in the same run."""

from __future__ import annotations

from kommo_sync.state import State
from tests.conftest import World


def company_merge_field(world: World, email: str) -> str:
    member = world.mailchimp.member(world.list_id, email)
    assert member is not None
    return str(member["merge_fields"]["COMPANY"])


def test_a_renamed_company_updates_its_contacts_in_the_same_run(world: World, sales: int) -> None:
    world.with_mailchimp()
    firm = world.kommo.add_company("Analytical Engines")
    other = world.kommo.add_company("Difference Ltd")
    world.kommo.add_contact("Ada", email="ada@firm.io", consent=True, company_id=firm)
    world.kommo.add_contact("Bob", email="bob@firm.io", consent=True, company_id=firm)
    world.kommo.add_contact("Cy", email="cy@diff.io", consent=True, company_id=other)
    assert world.cli("run").exit_code == 0
    assert company_merge_field(world, "ada@firm.io") == "Analytical Engines"
    world.clock.advance(600)
    world.kommo.update_company(firm, name="Analytical Engines plc")
    world.clock.advance(600)
    result = world.run()
    assert result.counts["changed_companies"] == 1
    assert result.counts.get("changed_contacts", 0) == 0  # no contact changed in Kommo
    assert result.counts["mailchimp.update"] == 2
    assert company_merge_field(world, "ada@firm.io") == "Analytical Engines plc"
    assert company_merge_field(world, "bob@firm.io") == "Analytical Engines plc"
    assert company_merge_field(world, "cy@diff.io") == "Difference Ltd"


def test_companies_are_mirrored_whole_and_unchanged_ones_cost_nothing(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    firm = world.kommo.add_company("Analytical Engines")
    world.kommo.tag("companies", firm, "enterprise")
    world.kommo.add_contact("Ada", email="ada@firm.io", consent=True, company_id=firm)
    world.run()
    with State.open(world.config().state, dry_run=True) as state:
        company = state.companies([firm])[firm]
    assert company.name == "Analytical Engines" and company.tags == ("enterprise",)
    world.clock.advance(600)
    again = world.run()
    assert again.counts.get("changed_companies", 0) == 0
    assert again.counts.get("mailchimp.update", 0) == 0
