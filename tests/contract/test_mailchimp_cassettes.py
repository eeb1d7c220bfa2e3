"""Mailchimp parsers replay cassettes of Mailchimp's documented responses (shared/api/mailchimp.md).

The destination runs its real push and prepare code against https://us1.api.mailchimp.com/3.0;
vcrpy answers from tests/cassettes/mailchimp_*.yaml and refuses any request it has no answer for.
"""

import re
from pathlib import Path
from typing import Any

import pytest
import vcr
import yaml

from kommo_sync.config import DEFAULT_TAGS
from kommo_sync.destinations.mailchimp import MailchimpDestination, mailchimp_http
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.errors import FatalError, VendorDown
from kommo_sync.http import HttpClient
from kommo_sync.model import Person, Stage

CASSETTES = Path(__file__).parent / "cassettes"
BASE_URL = "https://us1.api.mailchimp.com/3.0"
LIST_ID = "b1c2d3e4f5"
API_KEY = "cassettekey00000000000000000000ab-us1"
replay = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    match_on=["method", "scheme", "host", "path", "query"],
    filter_headers=["authorization"],
)


class Memory:
    """The destination's key/value memory without a state file."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


@pytest.fixture
def destination(clock):
    config = MailchimpConfig(api_key=API_KEY, list_id=LIST_ID, base_url=BASE_URL)
    archive = HttpClient(
        base_url="", vendor="Mailchimp batch archive", clock=clock, expect_json=False
    )
    return MailchimpDestination(
        config, dict(DEFAULT_TAGS), mailchimp_http(config, clock), archive, clock
    )


def person(contact_id: int, email: str, first: str = "", consent: bool | None = True) -> Person:
    return Person(contact_id, email, first, "Firm", None, None, None, consent, Stage.NEW)


def push(
    destination, people: list[Person], pushed: dict[int, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Plan and push; the outcomes by email."""
    changes = destination.plan(people, pushed or {}, set()).changes
    return {outcome.change.email: outcome for outcome in destination.push(changes)}


# members, one by one -----------------------------------------------------------------------------
@pytest.fixture
def member_outcomes(destination):
    people = [
        person(1, "ada@analytical.io", "Ada"),
        person(2, "gone@firm.io"),
        person(3, "test@example.com"),
        person(4, "erased@firm.io"),
        person(5, "busy@firm.io"),
        person(6, "bob@stone.io", consent=False),
    ]
    with replay.use_cassette("mailchimp_members.yaml") as cassette:
        outcomes = push(destination, people)
        assert cassette.all_played
    return outcomes


def test_put_records_the_status_mailchimp_kept(member_outcomes):
    ada = member_outcomes["ada@analytical.io"]
    assert ada.kind == "done" and ada.record_updates == {"status": "unsubscribed"}


@pytest.mark.parametrize(
    "email, reason",
    [
        ("gone@firm.io", "Member In Compliance State: gone@firm.io is in a compliance state"),
        ("test@example.com", "Invalid Resource: test@example.com looks fake or invalid"),
        (
            "erased@firm.io",
            "Forgotten Email Not Subscribed: erased@firm.io was permanently deleted",
        ),
    ],
)
def test_documented_refusals_are_permanent_with_the_vendor_reason(member_outcomes, email, reason):
    outcome = member_outcomes[email]
    assert outcome.kind == "permanent" and outcome.reason.startswith(reason)


def test_the_signup_throttle_is_transient(member_outcomes):
    outcome = member_outcomes["busy@firm.io"]
    assert (
        outcome.kind == "transient"
        and "signed up to a lot of lists very recently" in outcome.reason
    )


def test_a_patch_on_someone_not_in_the_audience_records_absent(member_outcomes):
    bob = member_outcomes["bob@stone.io"]
    assert bob.kind == "done" and bob.record_updates == {"status": "absent"}


# errors ------------------------------------------------------------------------------------------
@replay.use_cassette("mailchimp_errors.yaml")
def test_api_key_invalid_stops_the_run_without_showing_the_key(destination):
    with pytest.raises(FatalError) as info:
        destination.prepare(Memory(), dry_run=False)
    message = str(info.value)
    assert "API Key Invalid" in message and "mailchimp.api_key" in message
    assert API_KEY not in message and API_KEY.split("-")[0] not in message


@replay.use_cassette("mailchimp_errors.yaml")
def test_a_5xx_that_outlives_the_retries_is_vendor_down_so_mailchimp_is_set_aside(
    destination, clock
):
    with pytest.raises(VendorDown) as info:
        push(destination, [person(1, "ada@analytical.io", "Ada")])
    assert "Mailchimp" in str(info.value) and "HTTP 500" in str(info.value)
    assert clock.slept == [0.5, 1.0, 2.0, 4.0]  # backoff on the injected clock


# merge fields -------------------------------------------------------------------------------------
def test_missing_merge_fields_are_detected_created_and_remembered(destination):
    memory = Memory()
    with replay.use_cassette("mailchimp_merge_fields.yaml") as cassette:
        destination.prepare(memory, dry_run=False)
        assert cassette.all_played  # GET, then COMPANY and LEADSOURCE only
        destination.prepare(memory, dry_run=False)  # remembered: no request at all
        assert cassette.play_count == 3
    assert memory.get("merge_fields") == ["COMPANY", "FNAME", "LEADSOURCE", "LNAME", "PHONE"]


def test_a_dry_run_reads_merge_fields_and_creates_none(destination):
    memory = Memory()
    with replay.use_cassette("mailchimp_merge_fields.yaml") as cassette:
        destination.prepare(memory, dry_run=True)
        assert cassette.play_count == 1
    assert memory.get("merge_fields") is None


# batch subscribe, /batches fallback, static segments ----------------------------------------------
def test_batch_subscribe_errors_fall_back_classify_and_tags_go_by_exact_segment_name(
    destination, clock
):
    people = [person(100 + i, f"new{i}@firm.io", f"New{i}") for i in range(1, 10)]
    people += [
        person(110, "known@firm.io", "Kim"),
        person(111, "test@example.com"),
        person(112, "busy@firm.io"),
    ]
    with replay.use_cassette("mailchimp_batch_subscribe.yaml") as cassette:
        outcomes = push(destination, people)
        assert cassette.all_played
    assert all(
        outcomes[f"new{i}@firm.io"].record_updates == {"status": "subscribed"} for i in range(1, 10)
    )
    assert outcomes["known@firm.io"].kind == "done"
    assert outcomes["known@firm.io"].record_updates == {
        "status": "unsubscribed"
    }  # read from the archive
    assert outcomes["test@example.com"].kind == "permanent"
    assert "looks fake or invalid" in outcomes["test@example.com"].reason
    assert outcomes["busy@firm.io"].kind == "transient"
    assert destination.segments.snapshot() == {
        "Customer": 49381,
        "Lost Lead": 49385,
        "New Lead Archive": 49377,
        "VIP": 49390,
        "New Lead": 49401,
    }
    assert clock.slept == [5.0, 7.5]  # batch polling on the injected clock


def test_batch_results_are_read_per_operation_from_every_archive_file(destination, clock):
    before = [person(201 + i, f"p{201 + i}@firm.io", "Old") for i in range(11)]
    pushed = {
        change.person_id: change.record for change in destination.plan(before, {}, set()).changes
    }
    after = [person(201 + i, f"p{201 + i}@firm.io", f"Renamed{201 + i}") for i in range(11)]
    with replay.use_cassette("mailchimp_batches.yaml") as cassette:
        outcomes = push(destination, after, pushed)
        assert cassette.all_played
    kinds = {email: outcome.kind for email, outcome in outcomes.items()}
    assert [kinds[f"p{i}@firm.io"] for i in range(201, 212)] == ["done"] * 8 + [
        "permanent",
        "done",
        "transient",
    ]
    assert outcomes["p201@firm.io"].record_updates == {"status": "subscribed"}
    assert outcomes["p209@firm.io"].reason.startswith("Member In Compliance State: p209@firm.io")
    assert outcomes["p210@firm.io"].record_updates == {
        "status": "absent"
    }  # 404: not in the audience
    assert "Internal Server Error" in outcomes["p211@firm.io"].reason
    assert clock.slept == [5.0, 7.5, 11.25]


# the cassettes themselves -------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(CASSETTES.glob("mailchimp_*.yaml")), ids=lambda p: p.name)
def test_cassettes_hold_no_authorization_header_or_key(path):
    text = path.read_text()
    assert "authorization" not in text.lower() and "basic " not in text.lower()
    assert not re.search(r"[0-9a-f]{32}-us\d+", text)
    for interaction in yaml.safe_load(text)["interactions"]:
        headers = {name.lower() for name in interaction["request"]["headers"]}
        assert "authorization" not in headers
