"""Stage rules: precedence over all of a contact's leads, first-stage detection, duplicate
emails."""

import pytest

from kommo_sync.model import Stage
from kommo_sync.people import group_by_email, person_from_contacts
from kommo_sync.stages import contact_stage, lead_stage
from tests.factories import (
    CONTRACT,
    INCOMING,
    INTRO,
    LOST,
    PARTNERS,
    PROPOSAL,
    QUALIFIED,
    SALES,
    WON,
    catalog,
    contact,
    lead,
)


@pytest.mark.parametrize(
    "pipeline, status, expected",
    [
        (SALES, INCOMING, Stage.NEW),  # unsorted status (type 1) is the first stage
        (SALES, QUALIFIED, Stage.IN_PROGRESS),
        (SALES, PROPOSAL, Stage.IN_PROGRESS),
        (SALES, WON, Stage.WON),
        (SALES, LOST, Stage.LOST),
        (PARTNERS, INTRO, Stage.NEW),  # unsorted off: lowest sort is the first stage
        (PARTNERS, CONTRACT, Stage.IN_PROGRESS),
        (PARTNERS, WON, Stage.WON),  # 142 means won in every pipeline
        (PARTNERS, LOST, Stage.LOST),
    ],
)
def test_one_lead_gives_its_stage(pipeline, status, expected):
    assert lead_stage(lead(pipeline_id=pipeline, status_id=status), catalog()) == expected


@pytest.mark.parametrize(
    "statuses, expected_stage, expected_lead",
    [
        ([], Stage.NEW, None),  # no lead at all: new
        ([LOST, LOST], Stage.LOST, 11),  # every lead lost: lost
        ([LOST, INCOMING], Stage.NEW, 11),  # a fresh lead beats an old loss
        (
            [INCOMING, QUALIFIED, LOST],
            Stage.IN_PROGRESS,
            11,
        ),  # open past first stage beats new and lost
        ([WON, QUALIFIED, LOST], Stage.WON, 10),  # any won lead makes a customer
        ([QUALIFIED, WON], Stage.WON, 11),
    ],
)
def test_precedence_over_all_leads(statuses, expected_stage, expected_lead):
    leads = [lead(id=10 + i, status_id=s) for i, s in enumerate(statuses)]
    stage, deciding = contact_stage(leads, catalog())
    assert stage == expected_stage
    assert (deciding.id if deciding else None) == expected_lead


def test_editing_an_old_lost_deal_does_not_flip_a_customer_back():
    won = lead(id=10, status_id=WON, updated_at=100)
    old = lead(id=11, status_id=LOST, updated_at=999)  # touched most recently
    assert contact_stage([won, old], catalog())[0] == Stage.WON


def test_most_recently_updated_lead_of_the_winning_stage_decides():
    older = lead(id=10, status_id=QUALIFIED, updated_at=100, name="Old")
    newer = lead(id=11, status_id=PROPOSAL, updated_at=200, name="New")
    assert contact_stage([older, newer], catalog())[1].name == "New"


def test_duplicate_emails_are_one_person_and_the_more_advanced_stage_decides():
    a = contact(id=5, emails=(" Ana@Acme.io ",), first_name="Ana")
    b = contact(id=9, emails=("ana@acme.io",), first_name="Anna")
    groups = group_by_email([a, b, contact(id=7, emails=())])
    assert sorted(len(g) for g in groups) == [1, 2]
    pair = next(g for g in groups if len(g) == 2)
    leads = {5: [lead(id=50, status_id=INCOMING)], 9: [lead(id=90, status_id=WON, name="Big deal")]}
    person = person_from_contacts(pair, leads, {}, catalog())
    assert person.contact_id == 5  # identity: lowest id of the group
    assert person.stage == Stage.WON
    assert person.first_name == "Anna"  # fields of the contact that decided
    assert person.deal.name == "Big deal" and person.deal.status_name == "Closed - won"
    assert person.contact_ids == (5, 9)
    assert person.email == "ana@acme.io"


def test_a_new_duplicate_card_without_the_box_does_not_withdraw_consent():
    group = [contact(id=1, consent=True), contact(id=2, consent=False)]
    assert person_from_contacts(group, {}, {}, catalog()).consent is True
    withdrawn = [contact(id=1, consent=False), contact(id=2, consent=False)]
    assert person_from_contacts(withdrawn, {}, {}, catalog()).consent is False
    untracked = [contact(id=1, consent=None)]
    assert person_from_contacts(untracked, {}, {}, catalog()).consent is None


def test_deal_carries_status_name_keyed_by_pipeline():
    person = person_from_contacts(
        [contact()], {1: [lead(pipeline_id=PARTNERS, status_id=WON)]}, {}, catalog()
    )
    assert person.deal.status_name == "Partner signed"
    assert person.deal.pipeline_name == "Partners"
