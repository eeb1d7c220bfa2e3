"""Klaviyo unsubscribes (and activity) come back to Kommo as notes, exactly once."""

import pytest


@pytest.fixture
def ada(world):
    world.with_klaviyo()
    world.raw["feedback"] = {"note_on_open_deals": False}
    contact = world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io", consent=True)
    world.run()
    world.clock.advance(600)
    return contact


def test_a_klaviyo_unsubscribe_becomes_exactly_one_note(world, ada):
    world.klaviyo.unsubscribe("ada@analytical.io")
    world.clock.advance(60)
    result = world.run()
    [note] = world.kommo.notes
    assert note["entity_id"] == ada
    assert note["params"]["text"].startswith(
        "Unsubscribed from Klaviyo email marketing on 2026-01-01"
    )
    assert result.counts["klaviyo.feedback.unsubscribed"] == 1
    world.clock.advance(60)
    world.run()
    assert len(world.kommo.notes) == 1


def test_a_hard_bounce_is_noted_as_cleaned(world, ada):
    world.klaviyo.unsubscribe("ada@analytical.io", reason="HARD_BOUNCE")
    world.clock.advance(60)
    world.run()
    assert (
        "Removed (cleaned) from Klaviyo email marketing" in world.kommo.notes[0]["params"]["text"]
    )
    assert "(reason: hard bounce)" in world.kommo.notes[0]["params"]["text"]


def test_an_unsubscribe_in_klaviyo_is_never_resubscribed_even_with_consent_in_kommo(world, ada):
    world.klaviyo.unsubscribe("ada@analytical.io")
    world.clock.advance(60)
    world.kommo.update_contact(ada, first_name="Augusta")
    world.run()
    profile = world.klaviyo.profile_by_email("ada@analytical.io")
    assert profile["first_name"] == "Augusta"
    assert profile["subscriptions"]["email"]["marketing"]["consent"] == "UNSUBSCRIBED"
    assert not world.klaviyo.requests("POST", "/api/profile-subscription-bulk-create-jobs")[1:]


def test_klaviyo_activity_notes_only_when_enabled(world, ada):
    world.klaviyo.add_activity(
        "ada@analytical.io", "Opened Email", properties={"Campaign Name": "Winter sale"}
    )
    world.clock.advance(600)
    world.run()
    assert world.kommo.notes == []
    world.raw["feedback"] = {"activity": True, "note_on_open_deals": False}
    world.klaviyo.add_activity(
        "ada@analytical.io", "Opened Email", properties={"Campaign Name": "Winter sale"}
    )
    world.klaviyo.add_activity(
        "ada@analytical.io",
        "Clicked Email",
        properties={"Campaign Name": "Winter sale", "URL": "https://acme.io/pricing"},
    )
    world.clock.advance(60)
    world.run()
    [note] = world.kommo.notes
    assert note["params"]["text"] == (
        "Email activity in Klaviyo: Opened 'Winter sale' once, "
        "clicked https://acme.io/pricing once."
    )


@pytest.mark.parametrize(
    "refused, pushes",
    [
        pytest.param(False, True, id="sort allowed"),
        pytest.param(True, True, id="sort refused"),
        pytest.param(True, False, id="sort refused in a run that pushes nothing"),
    ],
)
def test_unsubscribes_are_read_whether_klaviyo_sorts_them_or_not_and_a_refusal_is_not_repeated(
    world, ada, refused, pushes
):
    world.klaviyo.refuse_sort_with_subscription_filter = refused
    start = len(world.klaviyo.requests("GET", "/api/profiles"))
    world.klaviyo.unsubscribe("ada@analytical.io")
    if pushes:
        world.kommo.update_contact(ada, first_name="Augusta")
    world.clock.advance(60)
    assert world.run().counts["klaviyo.feedback.unsubscribed"] == 1 and len(world.kommo.notes) == 1
    world.clock.advance(60)
    world.run()
    sorted_reads = [
        r.status
        for r in world.klaviyo.requests("GET", "/api/profiles")[start:]
        if "sort" in r.query
    ]
    assert sorted_reads == ([400] if refused else [200, 200])  # the fallback is remembered
