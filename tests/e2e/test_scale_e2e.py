"""Correctness at scale: a few thousand seeded contacts through the rate-limited sandboxes."""

from collections import defaultdict

import pytest

from kommo_sync.model import Catalog, Lead, Pipeline, Status
from kommo_sync.sandbox.seed import mutate_fraction, seed_account
from kommo_sync.stages import contact_stage

CONTACTS = 3000
TAGS = {"new": "New Lead", "in_progress": "In Progress", "won": "Customer", "lost": "Lost Lead"}


def catalog_of(world, info):
    pipelines = {}
    for pid in (info.sales_pipeline_id, info.partners_pipeline_id):
        statuses = tuple(
            Status(s["id"], pid, s["name"], s["sort"], s["type"]) for s in world.kommo.statuses(pid)
        )
        pipelines[pid] = Pipeline(pid, world.kommo.pipelines[pid]["name"], statuses)
    return Catalog(pipelines)


def expected_people(world, info):
    """email → (stage, any consent, deciding status name), straight from the sandbox's records."""
    catalog = catalog_of(world, info)
    groups = defaultdict(list)
    for cid in info.contact_ids:
        emails = world.kommo.field_texts(cid, world.kommo.email_field_id)
        if emails and "@" in str(emails[0]):
            groups[str(emails[0]).strip().lower()].append(cid)
    people = {}
    for email, ids in groups.items():
        best = None
        for cid in ids:
            leads = [
                Lead(
                    id=raw["id"],
                    updated_at=raw["updated_at"],
                    pipeline_id=raw["pipeline_id"],
                    status_id=raw["status_id"],
                )
                for raw in (world.kommo.lead(lid) for lid in world.kommo.contact(cid)["lead_ids"])
            ]
            stage, lead = contact_stage(leads, catalog)
            key = (stage.rank, lead.updated_at if lead else 0, -cid)
            if best is None or key > best[0]:
                best = (key, stage, lead)
        _, stage, lead = best
        name = catalog.status_name(lead.pipeline_id, lead.status_id) if lead else None
        people[email] = (stage.value, any(world.kommo.consent(c) for c in ids), name)
    return people


@pytest.fixture
def seeded(world):
    world.with_mailchimp().with_klaviyo()
    info = seed_account(world.kommo, CONTACTS, seed=11)
    world.clock.advance(60)
    return info


def test_thousands_of_contacts_land_with_the_right_tags_and_properties(world, seeded):
    result = world.run()
    people = expected_people(world, seeded)
    members = {m["email_address"]: m for m in world.mailchimp.members(world.list_id)}
    wrong = []
    for email, (stage, consent, status_name) in people.items():
        member = members.get(email)
        profile = world.klaviyo.profile_by_email(email)
        if profile is None:
            if not any(r["email"] == email for r in result.rejections):
                wrong.append((email, "no Klaviyo profile"))
            continue
        if profile["properties"].get("crm_stage") != (
            status_name or profile["properties"].get("crm_stage")
        ):
            wrong.append((email, "crm_stage", profile["properties"].get("crm_stage"), status_name))
        if consent and member is None and not any(r["email"] == email for r in result.rejections):
            wrong.append((email, "not in Mailchimp"))
        if member and world.mailchimp.member_tags(world.list_id, email) != {TAGS[stage]}:
            wrong.append(
                (email, "tags", world.mailchimp.member_tags(world.list_id, email), TAGS[stage])
            )
        if not consent and member is not None:
            wrong.append((email, "in Mailchimp without consent"))
    assert wrong == []
    assert len(members) > CONTACTS * 0.4
    assert (
        result.counts["klaviyo.rejected.transient"] == 0
        and result.counts["mailchimp.rejected.transient"] == 0
    )
    assert all(r["kind"] == "permanent" for r in result.rejections)
    assert not [r for r in world.kommo.log if r.status == 403]  # never blocked
    _assert_limits_respected(world)  # (simulated time lets two paced requests land together)


def test_an_incremental_run_after_one_percent_changes_keeps_everything_right(world, seeded):
    world.run()
    world.clock.advance(3600)
    changed = mutate_fraction(world.kommo, 0.01, seed=5)
    world.clock.advance(60)
    before = {
        name: len(app.writes()) for name, app in (("mc", world.mailchimp), ("kl", world.klaviyo))
    }
    result = world.run()
    people = expected_people(world, seeded)
    for email, (stage, _consent, _) in people.items():
        if world.mailchimp.member(world.list_id, email):
            assert world.mailchimp.member_tags(world.list_id, email) == {TAGS[stage]}, email
    writes = (
        len(world.mailchimp.writes()) - before["mc"] + len(world.klaviyo.writes()) - before["kl"]
    )
    assert result.counts["people"] >= len(changed) * 0.5
    assert writes <= 30  # bulk calls, not one request per changed contact
    _assert_limits_respected(world)


def _assert_limits_respected(world):
    """A 429 is answered by the retry policy: never more than a few in a row for one request."""
    for app in (world.kommo, world.mailchimp, world.klaviyo):
        streak = longest = 0
        for request in app.log:
            streak = streak + 1 if request.status == 429 else 0
            longest = max(longest, streak)
        assert longest < 5
