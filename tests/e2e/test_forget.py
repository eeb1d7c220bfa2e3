"""End to end: `forget` erases a person in Mailchimp, Klaviyo and the state, keeps an audit row
without personal data, and later runs skip the person until `forget --undo`."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from kommo_sync.sandbox.faults import Fault
from kommo_sync.state import FileLock, State
from tests.conftest import World

KEY = "forget-key-0123456789abcdef0123"
KEY_ENV = {"KOMMO_SYNC_FORGET_KEY": KEY}
ADA = "ada@analytical.io"
ADA_WORK = "countess@engines.io"


def marker(email: str) -> str:
    return hmac.new(KEY.encode(), email.encode(), hashlib.sha256).hexdigest()


def connected(world: World) -> World:
    world.with_mailchimp().with_klaviyo()
    world.raw["privacy"] = {"forget_key": "${KOMMO_SYNC_FORGET_KEY}"}
    return world


def people(world: World, sales: int) -> tuple[int, int]:
    """Ada (with a phone, sharing her lead with Bob) and Bob, both pushed everywhere."""
    ada = world.kommo.add_contact("Ada", "Lovelace", email=ADA, phone="+15005550006", consent=True)
    bob = world.kommo.add_contact("Bob", "Babbage", email="bob@engines.io", consent=True)
    world.kommo.add_lead("Analytical engine", 100, sales, contact_ids=[ada, bob])
    world.kommo.add_lead("Notes on the engine", 50, sales, contact_ids=[ada])
    assert run(world).exit_code == 0
    assert world.mailchimp.member(world.list_id, ADA) is not None
    assert world.klaviyo.profile_by_email(ADA) is not None
    return ada, bob


def run(world: World, *args: str):  # noqa: ANN201 (click's Result)
    world.clock.advance(60)
    return world.cli("run", *args, env=KEY_ENV)


def forget(world: World, *args: str):  # noqa: ANN201 (click's Result)
    return world.cli("forget", *args, env=KEY_ENV)


def state_bytes(world: World) -> bytes:
    path = world.tmp / "state.db"
    files = [path, Path(f"{path}-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists()).lower()


def audit(world: World) -> list[dict]:
    with State.open(world.tmp / "state.db", dry_run=True) as state:
        return state.forget_audit()


def test_forget_by_email_erases_the_member_the_profile_and_every_state_row(world, sales):
    connected(world)
    _, bob = people(world, sales)
    assert ADA.encode() in state_bytes(world)

    result = forget(world, ADA, "--yes")

    assert result.exit_code == 0, result.output
    assert world.mailchimp.member(world.list_id, ADA) is None
    assert world.klaviyo.profile_by_email(ADA) is None
    assert "Kommo is not changed" in result.output
    raw = state_bytes(world)
    assert ADA.encode() not in raw and b"lovelace" not in raw
    assert b"bob@engines.io" in raw  # Bob and the lead he shares stay
    rows = audit(world)
    assert [(r["hmac"], r["action"]) for r in rows] == [(marker(ADA), "forget")]
    assert set(rows[0]["done"]) == {"mailchimp", "klaviyo", "state"}
    assert ADA not in json.dumps(rows) and KEY not in raw.decode("latin-1")
    assert world.mailchimp.member(world.list_id, "bob@engines.io") is not None
    deletions = world.klaviyo.requests("POST", "/api/data-privacy-deletion-jobs")
    assert [json.loads(r.body)["data"]["attributes"]["profile"]["data"] for r in deletions] == [
        {"type": "profile", "attributes": {"email": ADA}}
    ]


def test_a_later_run_skips_the_forgotten_person_though_kommo_still_holds_them(world, sales):
    connected(world)
    ada, _ = people(world, sales)
    assert forget(world, ADA, "--yes").exit_code == 0

    world.kommo.update_contact(ada, first_name="Augusta")
    result = run(world, "--json")

    counts = json.loads(result.stdout)["counts"]
    assert counts["mailchimp.skipped.forgotten"] == 1
    assert counts["klaviyo.skipped.forgotten"] == 1
    assert world.mailchimp.member(world.list_id, ADA) is None
    assert world.klaviyo.profile_by_email(ADA) is None


def test_a_forgotten_persons_deal_events_are_not_sent_so_no_profile_comes_back(world, sales):
    connected(world)
    ada, _ = people(world, sales)
    own = world.kommo.add_lead("Her own engine", 70, sales, contact_ids=[ada])
    assert run(world).exit_code == 0
    assert forget(world, ADA, "--yes").exit_code == 0
    world.kommo.update_contact(ada, first_name="Augusta")  # Kommo still holds her: re-mirrored
    world.kommo.move_lead(own, 142)  # won: a Deal Won event for her alone

    result = run(world, "--json")

    counts = json.loads(result.stdout)["counts"]
    assert counts["events_skipped_forgotten"] >= 1  # her Deal Won (and any re-read in the overlap)
    assert [e for e in world.klaviyo.events() if e["email"] == ADA] == []
    assert world.klaviyo.profile_by_email(ADA) is None


def test_undo_lets_the_next_run_push_the_person_again(world, sales):
    connected(world)
    ada, _ = people(world, sales)
    assert forget(world, ADA, "--yes").exit_code == 0

    result = forget(world, ADA.upper(), "--undo")
    assert result.exit_code == 0 and "lifted" in result.output
    world.kommo.update_contact(ada, first_name="Augusta")
    run(world)

    assert world.klaviyo.profile_by_email(ADA) is not None
    # Mailchimp keeps refusing an address erased there, as it documents
    assert world.mailchimp.member(world.list_id, ADA) is None
    assert [r["action"] for r in audit(world)] == ["forget", "undo"]


def test_forget_by_contact_id_erases_every_email_and_the_phone_profile(world, sales):
    connected(world)
    ada = world.kommo.add_contact(
        "Ada", "Lovelace", email=ADA, phone="+15005550006", consent=True, extra_emails=[ADA_WORK]
    )
    world.kommo.add_lead("Engine", 100, sales, contact_ids=[ada])
    assert run(world).exit_code == 0
    work = world.klaviyo.add_profile(ADA_WORK)  # her other address, known to Klaviyo

    result = forget(world, str(ada), "--yes")

    assert result.exit_code == 0, result.output
    assert world.klaviyo.profile_by_id(work) is None
    assert world.klaviyo.profile_by_email(ADA) is None
    deletions = world.klaviyo.requests("POST", "/api/data-privacy-deletion-jobs")
    named = [json.loads(r.body)["data"]["attributes"]["profile"]["data"] for r in deletions]
    assert [d["attributes"] for d in named] == [
        {"email": ADA},
        {"email": ADA_WORK},
        {"phone_number": "+15005550006"},
    ]
    raw = state_bytes(world)
    assert ADA.encode() not in raw and ADA_WORK.encode() not in raw
    assert sorted(r["hmac"] for r in audit(world)) == sorted([marker(ADA), marker(ADA_WORK)])


def test_a_dry_run_changes_nothing_anywhere(world, sales):
    connected(world)
    people(world, sales)
    before = state_bytes(world)
    writes = len(world.mailchimp.writes()) + len(world.klaviyo.writes())

    result = forget(world, ADA, "--dry-run")

    assert result.exit_code == 0, result.output
    assert "would erase" in result.output and "nothing was changed" in result.output
    assert world.mailchimp.member(world.list_id, ADA) is not None
    assert world.klaviyo.profile_by_email(ADA) is not None
    assert len(world.mailchimp.writes()) + len(world.klaviyo.writes()) == writes
    assert state_bytes(world) == before and audit(world) == []


def test_without_yes_and_without_a_terminal_it_refuses(world, sales):
    connected(world)
    people(world, sales)

    result = forget(world, ADA)

    assert result.exit_code == 2
    assert "--yes" in result.output
    assert world.mailchimp.member(world.list_id, ADA) is not None


def test_forget_while_a_run_holds_the_lock_exits_3(world, sales):
    connected(world)
    people(world, sales)
    lock = FileLock.beside(world.tmp / "state.db")
    lock.acquire(world.clock.now())
    try:
        result = forget(world, ADA, "--yes")
    finally:
        lock.release()

    assert result.exit_code == 3
    assert world.mailchimp.member(world.list_id, ADA) is not None


def test_a_klaviyo_failure_keeps_the_state_and_a_second_forget_finishes(world, sales):
    connected(world)
    ada, _ = people(world, sales)
    world.klaviyo.faults.add(Fault("POST", "/api/data-privacy-deletion-jobs", status=503, times=10))

    first = forget(world, str(ada), "--yes")

    assert first.exit_code == 4
    assert "klaviyo: NOT erased" in first.output and "mailchimp: 1 member" in first.output
    assert world.mailchimp.member(world.list_id, ADA) is None
    assert world.klaviyo.profile_by_email(ADA) is not None
    assert ADA.encode() in state_bytes(world)
    world.klaviyo.faults.clear()

    second = forget(world, str(ada), "--yes")

    assert second.exit_code == 0, second.output
    assert world.klaviyo.profile_by_email(ADA) is None
    assert ADA.encode() not in state_bytes(world)
    assert [r["action"] for r in audit(world)] == ["forget_incomplete", "forget"]
