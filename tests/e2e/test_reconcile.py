"""`kommo-sync reconcile`: what the destinations hold for the people this tool manages, read back,
shown as drift and repaired through the normal run; nobody is re-subscribed."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from kommo_sync import cli_reconcile
from kommo_sync.destinations.mailchimp.reconcile import MEMBER_FIELDS
from kommo_sync.report import run_report_schema
from kommo_sync.sandbox.faults import Fault
from tests.conftest import World
from tests.e2e import by_hand

WON = 142
ADA, BOB, CY = "ada@firm.io", "bob@firm.io", "cy@firm.io"
DAY = 86_400


def pushed_people(world: World, sales: int) -> dict[str, int]:
    """Ada (a customer), Bob and Cy (new leads), consenting, pushed by one run."""
    ids = {
        ADA: world.kommo.add_contact("Ada", "Lovelace", email=ADA, consent=True),
        BOB: world.kommo.add_contact("Bob", "Stone", email=BOB, consent=True),
        CY: world.kommo.add_contact("Cy", "Young", email=CY, consent=True),
    }
    world.kommo.add_lead("Engines", 5000, sales, WON, contact_ids=[ids[ADA]])
    assert world.cli("run").exit_code == 0
    world.clock.advance(3600)
    return ids


def reconcile(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    """`reconcile --json`, its output checked against the run report's schema."""
    code, body = world.cli_json("reconcile", *args)
    validator = Draft202012Validator(run_report_schema(), format_checker=FormatChecker())
    assert [e.message for e in validator.iter_errors(body)] == []
    assert body["mode"] == "reconcile"
    return code, body


def drift_of(body: dict[str, Any]) -> set[tuple[str, str, str | None]]:
    return {(row["destination"], row["kind"], row["email"]) for row in body["drift"]}


def member(world: World, email: str) -> dict[str, Any]:
    found = world.mailchimp.member(world.list_id, email)
    assert found is not None
    return found


def klaviyo_view(world: World) -> tuple[Any, ...]:
    """The profiles and list members (the snapshot also holds rate windows, which reads move)."""
    profiles = [world.klaviyo.profile_by_email(email) for email in (ADA, BOB, CY)]
    return profiles, world.klaviyo.list_members(world.klaviyo_list)


def state_rows(world: World) -> list[str]:
    with sqlite3.connect(world.tmp / "state.db") as db:
        return list(db.iterdump())


def test_mailchimp_drift_by_hand_is_shown_and_repaired(world: World, sales: int) -> None:
    world.with_mailchimp()
    pushed_people(world, sales)
    by_hand.archive_member(world, ADA)
    by_hand.remove_tag(world, BOB, "New Lead")
    by_hand.edit_merge_fields(world, CY, LNAME="Edited")
    code, body = reconcile(world)
    assert code == 0, body
    assert drift_of(body) == {
        ("mailchimp", "archived", ADA),
        ("mailchimp", "wrong_tag", BOB),
        ("mailchimp", "wrong_field", CY),
    }
    assert member(world, ADA)["status"] == "subscribed"
    assert world.mailchimp.member_tags(world.list_id, ADA) == {"Customer"}
    assert world.mailchimp.member_tags(world.list_id, BOB) == {"New Lead"}
    assert member(world, CY)["merge_fields"]["LNAME"] == "Young"
    assert body["counts"]["mailchimp.done"] == 3
    assert reconcile(world)[1]["drift"] == []  # nothing left to repair


def test_a_klaviyo_profile_dropped_from_a_list_or_edited_is_repaired(
    world: World, sales: int
) -> None:
    won_list = world.klaviyo.add_list("Customers")
    world.with_klaviyo(lists_by_stage={"won": won_list})
    pushed_people(world, sales)
    by_hand.drop_from_list(world, won_list, ADA)
    by_hand.drop_from_list(world, world.klaviyo_list, BOB)
    by_hand.edit_properties(world, CY, kommo_contact_id=1)
    code, body = reconcile(world)
    assert code == 0, body
    assert {(r["kind"], r["email"], r["detail"]) for r in body["drift"]} == {
        ("not_in_list", ADA, won_list),
        ("not_in_list", BOB, world.klaviyo_list),
        ("wrong_field", CY, "kommo_contact_id"),
    }
    assert by_hand.profile_id(world, ADA) in world.klaviyo.list_members(won_list)
    assert by_hand.profile_id(world, BOB) in world.klaviyo.list_members(world.klaviyo_list)
    cy = world.klaviyo.profile_by_email(CY)
    assert cy is not None and cy["properties"]["kommo_contact_id"] != 1
    assert reconcile(world)[1]["drift"] == []


def test_an_unsubscribe_found_becomes_a_suppression_and_is_never_undone(
    world: World, sales: int
) -> None:
    """Unsubscribed outside any feedback window: before feedback began (no note), and after it
    began but below the cursor (a note); a field edited as well is repaired, unsubscribed."""
    world.with_mailchimp()
    started = int(world.clock.now())
    ids = pushed_people(world, sales)
    world.clock.advance(10 * DAY)
    assert world.cli("run").exit_code == 0
    by_hand.edit_merge_fields(world, ADA, LNAME="Edited")  # first: an edit moves last_changed
    world.mailchimp.unsubscribe(world.list_id, ADA, at=started - DAY)
    world.mailchimp.unsubscribe(world.list_id, BOB, at=started + DAY)
    notes = len(world.kommo.notes)
    code, body = reconcile(world)
    assert code == 0, body
    assert drift_of(body) == {
        ("mailchimp", "unsubscribed", ADA),
        ("mailchimp", "unsubscribed", BOB),
        ("mailchimp", "wrong_field", ADA),
    }
    assert member(world, ADA)["status"] == member(world, BOB)["status"] == "unsubscribed"
    assert member(world, ADA)["merge_fields"]["LNAME"] == "Lovelace"
    assert [n["entity_id"] for n in world.kommo.notes[notes:]] == [ids[BOB]]
    with sqlite3.connect(world.tmp / "state.db") as db:
        suppressed = {row[0] for row in db.execute("SELECT email FROM suppressed")}
    assert {ADA, BOB} <= suppressed
    by_hand.archive_member(world, ADA)
    code, body = reconcile(world)
    assert drift_of(body) == {("mailchimp", "archived", ADA)}
    assert body["counts"]["mailchimp.update_if_exists"] == 1  # suppressed: never added back
    assert member(world, ADA)["status"] == "archived"
    assert reconcile(world)[1]["drift"] == []  # known to be out of the audience now


def test_a_dry_run_shows_the_drift_and_its_repairs_and_changes_nothing(
    world: World, sales: int
) -> None:
    world.with_mailchimp().with_klaviyo()
    pushed_people(world, sales)
    by_hand.archive_member(world, ADA)
    by_hand.edit_merge_fields(world, CY, LNAME="Edited")
    by_hand.drop_from_list(world, world.klaviyo_list, BOB)
    rows, vendors = state_rows(world), (world.mailchimp.snapshot(), klaviyo_view(world))
    writes = len(world.mailchimp.writes()) + len(world.klaviyo.writes())
    code, body = reconcile(world, "--dry-run")
    assert code == 0, body
    assert drift_of(body) == {
        ("mailchimp", "archived", ADA),
        ("mailchimp", "wrong_field", CY),
        ("klaviyo", "not_in_list", BOB),
    }
    planned = {(op["destination"], op["email"], op["action"]) for op in body["operations"]}
    assert {("mailchimp", ADA, "create"), ("mailchimp", CY, "update")} <= planned
    assert ("klaviyo", BOB, "update") in planned
    assert state_rows(world) == rows
    assert (world.mailchimp.snapshot(), klaviyo_view(world)) == vendors
    assert len(world.mailchimp.writes()) + len(world.klaviyo.writes()) == writes
    assert member(world, ADA)["status"] == "archived"


def test_destination_limits_the_reconcile_to_one_vendor(world: World, sales: int) -> None:
    world.with_mailchimp().with_klaviyo()
    pushed_people(world, sales)
    by_hand.archive_member(world, ADA)
    by_hand.drop_from_list(world, world.klaviyo_list, BOB)
    code, body = reconcile(world, "--destination", "klaviyo")
    assert code == 0, body
    assert drift_of(body) == {("klaviyo", "not_in_list", BOB)}
    assert body["reconcile"]["by_destination"].keys() == {"klaviyo"}
    assert member(world, ADA)["status"] == "archived"  # Mailchimp was not reconciled
    result = world.cli("reconcile", "--destination", "brevo")
    assert result.exit_code == 2 and "--destination" in result.output


def test_the_cost_is_estimated_first_and_counted_after(world: World, sales: int) -> None:
    world.with_mailchimp().with_klaviyo()
    pushed_people(world, sales)
    result = world.cli("reconcile", "--json")
    assert result.exit_code == 0, result.output
    assert "estimated cost: 3 requests (mailchimp 2, klaviyo 1)" in result.stderr
    cost = json.loads(result.stdout)["reconcile"]
    # one members page (nobody is missing, so no archived listing); one page of the one list
    assert (cost["estimated_requests"], cost["requests"]) == (3, 2)
    assert cost["by_destination"]["mailchimp"] == {"estimated": 2, "requests": 1}


def test_above_the_threshold_it_needs_yes_without_a_terminal(
    world: World, sales: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.with_mailchimp()
    pushed_people(world, sales)
    by_hand.archive_member(world, ADA)
    monkeypatch.setattr(cli_reconcile, "CONFIRM_ABOVE", 1)
    writes = len(world.mailchimp.writes())
    result = world.cli("reconcile")
    assert result.exit_code == 2
    assert "--yes" in result.stderr and "2 requests" in result.stderr
    assert len(world.mailchimp.writes()) == writes
    assert member(world, ADA)["status"] == "archived"
    assert world.cli("reconcile", "--yes").exit_code == 0
    assert member(world, ADA)["status"] == "subscribed"


def test_the_text_report_shows_the_drift_table_and_the_actual_cost(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    pushed_people(world, sales)
    by_hand.remove_tag(world, BOB, "New Lead")
    result = world.cli("reconcile", "--details")
    assert result.exit_code == 0, result.output
    assert "Drift" in result.stdout and "wrong_tag" in result.stdout
    assert "missing New Lead" in result.stdout
    assert "actual cost: 1 requests" in result.stdout


def test_one_vendor_failing_is_set_aside_and_the_other_is_reconciled(
    world: World, sales: int
) -> None:
    world.with_mailchimp().with_klaviyo()
    pushed_people(world, sales)
    by_hand.drop_from_list(world, world.klaviyo_list, BOB)
    path = f"/3.0/lists/{world.list_id}/members$"
    world.mailchimp.faults.add(
        Fault(method="GET", path=path, query={"fields": MEMBER_FIELDS}, status=503, times=0)
    )
    code, body = reconcile(world)
    assert code == 4
    assert body["destinations"]["mailchimp"]["status"] == "set_aside"
    assert drift_of(body) == {("klaviyo", "not_in_list", BOB)}
    assert by_hand.profile_id(world, BOB) in world.klaviyo.list_members(world.klaviyo_list)


def test_a_member_with_more_tags_than_a_listing_shows_has_its_tags_read(
    world: World, sales: int
) -> None:
    """The listing shows 50 tags, oldest first: the stage tag added back by hand after 55 of the
    marketer's own is read from the member's tags."""
    world.with_mailchimp()
    pushed_people(world, sales)
    by_hand.remove_tag(world, ADA, "Customer")
    for n in range(55):
        world.clock.advance(1)
        by_hand.add_tag(world, ADA, f"own {n}")
    world.clock.advance(1)
    by_hand.add_tag(world, ADA, "Customer")
    code, body = reconcile(world)
    assert (code, body["drift"]) == (0, [])
    assert body["reconcile"]["requests"] == 2  # the members page, then Ada's tags


def test_kommo_check_finds_contacts_deleted_while_no_event_showed_it(
    world: World, sales: int
) -> None:
    world.with_mailchimp()
    ids = pushed_people(world, sales)
    first_run_start = int(world.clock.now()) - 3600 - 1
    world.kommo.delete_contact(ids[ADA], at=first_run_start - 3600)  # before the events' window
    world.clock.advance(600)
    assert world.run().counts["lifecycle.contact_deleted"] == 0
    assert member(world, ADA)["status"] == "subscribed"
    world.clock.advance(600)
    code, body = reconcile(world, "--kommo")
    assert code == 0
    counts = body["counts"]
    assert counts["mirror_checked"] == 3 and counts["gone_from_kommo"] == 1
    assert counts["mailchimp.exit_archive"] == 1
    assert member(world, ADA)["status"] == "archived"
    assert member(world, BOB)["status"] == "subscribed"
