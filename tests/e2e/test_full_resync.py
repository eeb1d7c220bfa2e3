"""Issue 13, `run --full-resync`: every mirrored person's desired state is sent again, fingerprints
ignored, without re-reading Kommo's contacts and leads; nobody who unsubscribed is re-subscribed."""

import json

from kommo_sync.sandbox.mailchimp.rules import subscriber_hash


def edit_by_hand(world, email, **merge_fields):
    """A marketer edits a member's merge fields directly in Mailchimp."""
    with world.mailchimp.lock:
        member = world.mailchimp.audiences[world.list_id].members[subscriber_hash(email)]
        member.merge_fields.update(merge_fields)


def lname(world, email):
    return world.mailchimp.member(world.list_id, email)["merge_fields"]["LNAME"]


def cursor(world):
    return json.loads(world.cli("status", "--json").output)["cursors"]["kommo.updated_at"]


def contact_and_lead_reads(world, after):
    """Kommo's contact and lead listings read since the log held `after` requests."""
    paths = ("/api/v4/contacts", "/api/v4/leads")
    return [r for r in world.kommo.log[after:] if r.method == "GET" and r.path in paths]


def test_a_full_resync_repairs_a_hand_edited_member_without_rereading_kommo(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io", consent=True)
    world.kommo.add_contact("Bob", "Stone", email="bob@stone.io", consent=True)
    world.run()
    edit_by_hand(world, "ada@analytical.io", LNAME="Edited")
    world.clock.advance(3600)
    world.run()
    assert lname(world, "ada@analytical.io") == "Edited"  # a plain run trusts the fingerprint
    world.clock.advance(3600)
    since = cursor(world) - 600  # the cursor less the overlap re-read every run
    before = len(world.kommo.log)
    result = world.cli("run", "--full-resync")
    assert result.exit_code == 0, result.output
    assert lname(world, "ada@analytical.io") == "Lovelace"
    assert lname(world, "bob@stone.io") == "Stone"
    reads = contact_and_lead_reads(world, before)
    assert reads, "the incremental read still runs, so the cursor may move"
    assert all(float(r.query["filter[updated_at][from]"][0]) >= since for r in reads)


def test_a_full_resync_never_resubscribes_someone_who_unsubscribed(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io", consent=True)
    world.run()
    world.clock.advance(60)
    world.mailchimp.unsubscribe(world.list_id, "ada@analytical.io")
    world.clock.advance(3600)
    world.run()  # the unsubscribe is read back
    edit_by_hand(world, "ada@analytical.io", LNAME="Edited")
    world.clock.advance(3600)
    assert world.cli("run", "--full-resync").exit_code == 0
    member = world.mailchimp.member(world.list_id, "ada@analytical.io")
    assert member["status"] == "unsubscribed" and member["merge_fields"]["LNAME"] == "Lovelace"


def test_a_full_resync_moves_the_cursor_as_a_run_does(world, sales):
    world.with_mailchimp()
    world.kommo.add_contact("Ada", "Lovelace", email="ada@analytical.io", consent=True)
    world.run()
    world.clock.advance(3600)
    world.kommo.add_contact("Cy", email="cy@stone.io", consent=True)
    before = cursor(world)
    started = int(world.clock.now())
    assert world.cli("run", "--full-resync").exit_code == 0
    assert cursor(world) == started >= before + 3600
    assert world.mailchimp.member(world.list_id, "cy@stone.io")["status"] == "subscribed"
