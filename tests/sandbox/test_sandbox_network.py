"""The network models: answer delays per endpoint and vendor job durations, in simulated time."""

from __future__ import annotations

import base64
import json
import random
import statistics
from typing import Any

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.klaviyo import KlaviyoSandbox
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.mailchimp import MailchimpSandbox
from kommo_sync.sandbox.network import KB, NETWORKS, REALISTIC, Latency, network
from kommo_sync.sandbox.server import App, Request, Response

KOMMO_TOKEN = "sandbox-kommo-token"
MAILCHIMP_KEY = "sandboxkey0000000000000000000000-us1"
KLAVIYO_HEADERS = {
    "authorization": "Klaviyo-API-Key pk_sandbox_0000000000000000",
    "revision": "2026-07-15",
    "accept": "application/vnd.api+json",
    "content-type": "application/vnd.api+json",
}
MAILCHIMP_HEADERS = {
    "authorization": "Basic " + base64.b64encode(f"u:{MAILCHIMP_KEY}".encode()).decode()
}


def call(
    app: App, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Response:
    """One request straight into the app's dispatch (no sockets: only the model's time)."""
    raw = json.dumps(body).encode() if body is not None else b""
    return app.dispatch(Request(method, path, {}, dict(headers or {}), raw))


def slept(clock: FakeClock, action: Any) -> float:
    """Simulated seconds `action()` took."""
    before = clock.now()
    action()
    return clock.now() - before


# ---------------------------------------------------------------- answer delays


def test_a_280_kb_kommo_page_takes_about_220_ms_within_30_percent() -> None:
    page = REALISTIC.kommo.delay_for("GET", "/api/v4/contacts")
    rng = random.Random(1)
    draws = [page.seconds(b"", 280 * KB, rng) for _ in range(2000)]
    assert min(draws) >= 0.7 * 0.220 and max(draws) <= 1.3 * 0.220
    assert statistics.mean(draws) == pytest.approx(0.220, rel=0.03)


def test_other_kommo_requests_and_every_other_vendor_take_60_to_150_ms() -> None:
    rng = random.Random(2)
    for latency, method, path in (
        (REALISTIC.kommo, "GET", "/api/v4/leads/pipelines"),
        (REALISTIC.kommo, "POST", "/api/v4/contacts/notes"),
        (REALISTIC.mailchimp, "GET", "/3.0/lists/abc/members"),
        (REALISTIC.klaviyo, "POST", "/api/profile-bulk-import-jobs"),
    ):
        draws = [latency.seconds(method, path, b"", 500 * KB, rng) for _ in range(500)]
        assert min(draws) >= 0.060 and max(draws) <= 0.150, path


def test_the_same_seed_gives_the_same_delays() -> None:
    page = REALISTIC.kommo.delay_for("GET", "/api/v4/leads")
    first = [page.seconds(b"", 100 * KB, random.Random(7)) for _ in range(3)]
    again = [page.seconds(b"", 100 * KB, random.Random(7)) for _ in range(3)]
    assert first == again


def test_slow_doubles_every_figure_of_realistic() -> None:
    slow = network("slow")
    for method, path, size in (("GET", "/api/v4/contacts", 280 * KB), ("GET", "/x", 0)):
        fast_draw = REALISTIC.kommo.seconds(method, path, b"", size, random.Random(3))
        slow_draw = slow.kommo.seconds(method, path, b"", size, random.Random(3))
        assert slow_draw == pytest.approx(2 * fast_draw)
    assert slow.mailchimp_jobs.seconds(1000) == pytest.approx(2 * (8 + 2.0))
    assert slow.klaviyo_jobs.subscribe_after == 40.0 and slow.klaviyo_jobs.events_after == 6.0


def test_fast_adds_no_latency_and_an_unknown_name_lists_the_choices() -> None:
    fast = network("fast")
    assert fast.kommo.silent and fast.mailchimp.silent and fast.klaviyo.silent
    assert not REALISTIC.kommo.silent
    with pytest.raises(KeyError, match="fast, realistic, slow"):
        network("lunar")
    assert set(NETWORKS) == {"fast", "realistic", "slow"}


def test_a_sandbox_waits_after_its_handler_by_the_size_of_its_answer() -> None:
    clock = FakeClock()
    kommo = KommoSandbox(clock, token=KOMMO_TOKEN, rate_limit=None)
    for n in range(40):
        kommo.add_contact(f"First{n}", f"Last{n}", email=f"p{n}@example.com")
    kommo.latency = REALISTIC.kommo
    request = Request(
        "GET",
        "/api/v4/contacts",
        {"limit": ["250"]},
        {"authorization": f"Bearer {KOMMO_TOKEN}"},
        b"",
    )
    response = kommo.dispatch(request)
    waited = clock.slept[-1]
    assert response.status == 200 and response.raw is not None
    size_kb = len(response.raw) / KB
    assert 0.7 * (0.080 + 0.0005 * size_kb) <= waited <= 1.3 * (0.080 + 0.0005 * size_kb)


def test_a_sandbox_with_the_default_latency_never_sleeps() -> None:
    clock = FakeClock()
    kommo = KommoSandbox(clock, token=KOMMO_TOKEN, rate_limit=None)
    assert isinstance(kommo.latency, Latency) and kommo.latency.silent
    call(kommo, "GET", "/api/v4/contacts", headers={"authorization": f"Bearer {KOMMO_TOKEN}"})
    assert clock.slept == []


def test_mailchimp_batch_subscribe_takes_1_5_s_per_500_members() -> None:
    clock = FakeClock()
    mailchimp = MailchimpSandbox(clock, api_key=MAILCHIMP_KEY)
    list_id = mailchimp.add_list("CRM")
    mailchimp.latency = REALISTIC.mailchimp
    members = [
        {"email_address": f"person{n}@gmail.com", "status": "subscribed"} for n in range(500)
    ]
    seconds = slept(
        clock,
        lambda: call(
            mailchimp, "POST", f"/3.0/lists/{list_id}", {"members": members}, MAILCHIMP_HEADERS
        ),
    )
    assert 1.5 + 0.060 <= seconds <= 1.5 + 0.150
    assert len(mailchimp.members(list_id)) == 500


# ---------------------------------------------------------------- job durations


def test_a_mailchimp_batch_finishes_8_s_plus_2_ms_per_operation_after_submission() -> None:
    clock = FakeClock()
    mailchimp = MailchimpSandbox(clock, api_key=MAILCHIMP_KEY)
    list_id = mailchimp.add_list("CRM")
    mailchimp.timing = REALISTIC.mailchimp_jobs
    operations = [
        {"method": "GET", "path": f"/lists/{list_id}", "operation_id": str(n)} for n in range(1000)
    ]
    submitted = clock.now()
    batch = call(mailchimp, "POST", "/3.0/batches", {"operations": operations}, MAILCHIMP_HEADERS)
    path = f"/3.0/batches/{batch.body['id']}"
    statuses = []
    for moment in (0.5, 9.9, 10.0):
        clock.advance(submitted + moment - clock.now())
        statuses.append(call(mailchimp, "GET", path, headers=MAILCHIMP_HEADERS).body["status"])
    assert statuses == ["pending", "started", "finished"]


def import_body(rows: int) -> dict[str, Any]:
    profiles = [
        {"type": "profile", "attributes": {"email": f"p{n}@example.com"}} for n in range(rows)
    ]
    return {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {"profiles": {"data": profiles}},
        }
    }


def test_a_klaviyo_import_job_completes_5_s_plus_1_ms_per_row_after_creation() -> None:
    clock = FakeClock()
    klaviyo = KlaviyoSandbox(clock)
    klaviyo.timing = REALISTIC.klaviyo_jobs
    created = clock.now()
    job = call(klaviyo, "POST", "/api/profile-bulk-import-jobs", import_body(1000), KLAVIYO_HEADERS)
    path = f"/api/profile-bulk-import-jobs/{job.body['data']['id']}"
    statuses = []
    for moment in (0.5, 5.9, 6.0):
        clock.advance(created + moment - clock.now())
        answer = call(klaviyo, "GET", path, headers=KLAVIYO_HEADERS)
        statuses.append(answer.body["data"]["attributes"]["status"])
    assert statuses == ["queued", "processing", "complete"]


def subscribe_body(email: str) -> dict[str, Any]:
    row = {
        "type": "profile",
        "attributes": {
            "email": email,
            "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}},
        },
    }
    return {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {"profiles": {"data": [row]}},
        }
    }


def test_a_klaviyo_bulk_subscribe_is_accepted_at_once_and_applied_20_s_later() -> None:
    clock = FakeClock()
    klaviyo = KlaviyoSandbox(clock)
    klaviyo.timing = REALISTIC.klaviyo_jobs
    klaviyo.add_profile("a@example.com")
    accepted = call(
        klaviyo,
        "POST",
        "/api/profile-subscription-bulk-create-jobs",
        subscribe_body("a@example.com"),
        KLAVIYO_HEADERS,
    )
    consents = []
    for step in (19.9, 0.1):
        clock.advance(step)
        profile = klaviyo.profile_by_email("a@example.com") or {}
        consents.append(profile["subscriptions"]["email"]["marketing"]["consent"])
    assert accepted.status == 202
    assert consents == ["NEVER_SUBSCRIBED", "SUBSCRIBED"]


def events_body(email: str) -> dict[str, Any]:
    event = {
        "type": "event",
        "attributes": {
            "properties": {},
            "metric": {"data": {"type": "metric", "attributes": {"name": "Stage Changed"}}},
            "unique_id": "1",
        },
    }
    entry = {
        "type": "event-bulk-create",
        "attributes": {
            "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
            "events": {"data": [event]},
        },
    }
    return {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {"events-bulk-create": {"data": [entry]}},
        }
    }


def test_a_klaviyo_event_job_stores_its_events_3_s_after_acceptance() -> None:
    clock = FakeClock()
    klaviyo = KlaviyoSandbox(clock)
    klaviyo.timing = REALISTIC.klaviyo_jobs
    call(
        klaviyo,
        "POST",
        "/api/event-bulk-create-jobs",
        events_body("a@example.com"),
        KLAVIYO_HEADERS,
    )
    counts = []
    for step in (2.9, 0.1):
        clock.advance(step)
        counts.append(len(klaviyo.events("Stage Changed")))
    assert counts == [0, 1]


def test_a_snapshot_keeps_deferred_jobs_but_not_the_network() -> None:
    clock = FakeClock()
    klaviyo = KlaviyoSandbox(clock)
    klaviyo.timing = REALISTIC.klaviyo_jobs
    klaviyo.latency = REALISTIC.klaviyo
    call(
        klaviyo,
        "POST",
        "/api/event-bulk-create-jobs",
        events_body("a@example.com"),
        KLAVIYO_HEADERS,
    )
    copy = KlaviyoSandbox(clock)
    copy.restore(klaviyo.snapshot())
    clock.advance(3.0)
    assert len(copy.events("Stage Changed")) == 1
    assert copy.latency.silent and copy.timing == network("fast").klaviyo_jobs
