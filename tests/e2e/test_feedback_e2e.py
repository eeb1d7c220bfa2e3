"""Back to Kommo: unsubscribes (and optionally activity) become notes, each exactly once."""

import json

import pytest

from kommo_sync.feedback import FeedbackStage
from tests.conftest import BOTH_BACKENDS

pytestmark = BOTH_BACKENDS


@pytest.fixture
def ada(world, sales):
    """Ada is synced to Mailchimp with consent and has one open and one lost deal."""
    world.with_mailchimp()
    contact = world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io", consent=True)
    world.open_deal = world.kommo.add_lead("Engines", 500, sales, contact_ids=[contact])
    world.kommo.add_lead("Old", 10, sales, 143, contact_ids=[contact])
    world.run()
    world.clock.advance(600)
    return contact


def notes_on(world, entity, entity_id):
    return [
        n for n in world.kommo.notes if n["entity_type"] == entity and n["entity_id"] == entity_id
    ]


def test_a_mailchimp_unsubscribe_becomes_one_note_on_the_contact_and_its_open_deal(world, ada):
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io", reason="Too many emails")
    world.clock.advance(60)
    result = world.run()
    [note] = notes_on(world, "contacts", ada)
    text = note["params"]["text"]
    assert text.startswith("Unsubscribed from Mailchimp list 'CRM contacts' on 2026-01-01")
    assert "(reason: Too many emails)" in text and "Do not include in email campaigns" in text
    assert [n["params"]["text"] for n in notes_on(world, "leads", world.open_deal)] == [text]
    assert len(world.kommo.notes) == 2  # the lost deal gets none
    assert result.counts["notes_written"] == 2
    world.clock.advance(60)
    world.run()
    assert len(world.kommo.notes) == 2  # a re-run (overlapping window) adds none


def test_notes_on_open_deals_can_be_turned_off(world, ada):
    world.raw["feedback"] = {"note_on_open_deals": False}
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io")
    world.clock.advance(60)
    world.run()
    assert [n["entity_type"] for n in world.kommo.notes] == ["contacts"]


def test_connecting_an_account_writes_no_old_unsubscribes(world, sales):
    world.with_mailchimp()
    world.mailchimp.add_member(world.list_id, "old@firm.io", status="unsubscribed")
    world.kommo.add_contact("Old", email="old@firm.io", consent=True)
    world.run()
    world.clock.advance(60)
    world.run()
    assert world.kommo.notes == []


def test_backfill_reaches_back_on_purpose(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Old", email="old@firm.io", consent=True)
    world.mailchimp.add_member(world.list_id, "old@firm.io")
    world.mailchimp.unsubscribe(world.list_id, "old@firm.io", reason="Moved on")
    world.clock.advance(60)
    world.run()
    assert world.kommo.notes == []
    result = world.cli("backfill", "--since", "2025-12-01")
    assert result.exit_code == 0, result.output
    assert len(world.kommo.notes) == 1 and "Moved on" in world.kommo.notes[0]["params"]["text"]


def test_two_contacts_with_the_same_email_each_get_the_note(world, ada):
    twin = world.kommo.add_contact("Ada", "Twin", email="ADA@analytical.io")
    world.run()
    world.clock.advance(60)
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io")
    world.clock.advance(60)
    world.raw["feedback"] = {"note_on_open_deals": False}
    world.run()
    assert sorted(n["entity_id"] for n in world.kommo.notes) == sorted([ada, twin])


def test_a_person_unknown_to_kommo_is_counted_and_listed_not_fatal(world, ada):
    world.mailchimp.add_member(world.list_id, "stranger@elsewhere.io")
    world.clock.advance(10)
    world.mailchimp.unsubscribe(world.list_id, "stranger@elsewhere.io")
    world.clock.advance(60)
    code, body = world.cli_json("run")
    assert code == 0
    assert body["not_in_kommo"] == ["stranger@elsewhere.io"]
    assert body["counts"]["feedback_not_in_kommo"] == 1
    assert any(
        r.query.get("query") == ["stranger@elsewhere.io"]
        for r in world.kommo.requests("GET", "/api/v4/contacts")
    )
    assert world.kommo.notes == []


def test_a_contact_we_never_pushed_is_found_by_kommo_search(world, ada):
    other = world.kommo.add_contact("Zed", email="zed@zed.io")  # created after the last run
    world.mailchimp.add_member(world.list_id, "zed@zed.io")
    world.clock.advance(10)
    world.mailchimp.unsubscribe(world.list_id, "zed@zed.io")
    world.clock.advance(60)
    world.run()
    assert [n["entity_id"] for n in world.kommo.notes] == [other]


def test_activity_notes_appear_only_when_enabled(world, ada):
    campaign = world.mailchimp.add_campaign("November newsletter", world.list_id)
    world.clock.advance(10)
    world.mailchimp.add_activity(campaign, "ada@analytical.io", "open")
    world.mailchimp.add_activity(campaign, "ada@analytical.io", "open")
    world.mailchimp.add_activity(
        campaign, "ada@analytical.io", "click", url="https://acme.io/pricing"
    )
    world.clock.advance(600)  # older than the overlap re-read by the next run
    world.run()
    assert world.kommo.notes == []
    world.raw["feedback"] = {"activity": True, "note_on_open_deals": False}
    world.clock.advance(600)
    world.mailchimp.add_activity(campaign, "ada@analytical.io", "open")
    world.mailchimp.add_activity(campaign, "ada@analytical.io", "open")
    world.mailchimp.add_activity(
        campaign, "ada@analytical.io", "click", url="https://acme.io/pricing"
    )
    world.clock.advance(60)
    world.run()
    [note] = world.kommo.notes
    assert note["params"]["text"] == (
        "Email activity in Mailchimp list 'CRM contacts': Opened 'November newsletter' "
        "twice, clicked https://acme.io/pricing once."
    )


def test_dry_run_lists_the_notes_it_would_write_and_writes_none(world, ada):
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io", reason="Bye")
    world.clock.advance(60)
    code, body = world.cli_json("run", "--dry-run")
    assert code == 0
    assert {n["entity"] for n in body["notes"]} == {"contacts", "leads"}
    assert all("Bye" in n["text"] for n in body["notes"])
    assert world.kommo.notes == [] and not world.kommo.writes()


def test_unsubscribed_in_mailchimp_while_kommo_still_says_consent_is_never_resubscribed(world, ada):
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io")
    world.clock.advance(60)
    world.kommo.update_contact(ada, first_name="Augusta")  # consent still checked in Kommo
    world.run()
    member = world.mailchimp.member(world.list_id, "ada@analytical.io")
    assert member["status"] == "unsubscribed" and member["merge_fields"]["FNAME"] == "Augusta"
    assert not any(
        isinstance(w.json(), dict) and w.json().get("status") == "subscribed"
        for w in world.mailchimp.writes()
    )


def test_consent_field_write_clears_the_checkbox(world, ada):
    world.raw["feedback"] = {"consent_field_write": True}
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io")
    world.clock.advance(60)
    world.run()
    assert world.kommo.consent(ada) is False


def test_a_crash_after_writing_notes_never_duplicates_them(world, ada, monkeypatch):
    world.raw["feedback"] = {"note_on_open_deals": False}
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io")
    world.clock.advance(60)
    original = FeedbackStage._settle

    def crash_once(self, keys, status, reason=None):
        if status == "written":
            raise KeyboardInterrupt("killed after Kommo stored the note")
        return original(self, keys, status, reason)

    monkeypatch.setattr(FeedbackStage, "_settle", crash_once)
    with pytest.raises(KeyboardInterrupt):
        world.run()
    assert len(world.kommo.notes) == 1
    monkeypatch.setattr(FeedbackStage, "_settle", original)
    world.clock.advance(60)
    result = world.run()
    assert len(world.kommo.notes) == 1
    assert result.counts["notes_found_after_crash"] == 1


def test_status_shows_feedback_cursors_and_the_last_runs_note_counts(world, ada):
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io")
    world.clock.advance(60)
    world.run()
    status = json.loads(world.cli("status", "--json").output)
    assert "feedback.mailchimp" in status["cursors"]
    assert status["last_run_notes"] == {"written": 2}


def test_an_unsubscribe_we_made_for_a_withdrawal_in_kommo_is_not_noted_back(world, ada):
    world.with_klaviyo()
    world.run()
    world.clock.advance(600)
    world.kommo.update_contact(ada, consent=False)
    world.run()
    assert world.mailchimp.member(world.list_id, "ada@analytical.io")["status"] == "unsubscribed"
    world.clock.advance(60)
    world.run()
    assert world.kommo.notes == []
