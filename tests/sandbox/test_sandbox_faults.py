"""The sandboxes' fault switch and test switches, seen over real HTTP: what a client observes."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.faults import Fault
from kommo_sync.sandbox.klaviyo import KlaviyoSandbox
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.mailchimp import MailchimpSandbox, subscriber_hash
from kommo_sync.sandbox.server import App, SandboxServer

KOMMO_HEADERS = {"Authorization": "Bearer sandbox-kommo-token"}
MAILCHIMP_HEADERS = {"Authorization": "Bearer sandboxkey0000000000000000000000-us1"}
KLAVIYO_HEADERS = {
    "Authorization": "Klaviyo-API-Key pk_sandbox_0000000000000000",
    "revision": "2026-07-15",
    "Content-Type": "application/vnd.api+json",
}
NOTES = "/api/v4/contacts/notes"
SUPPRESSED = 'equals(subscriptions.email.marketing.suppression.reason,"UNSUBSCRIBE")'
# The syncer's feedback query: suppressions in (start, start + 4 minutes].
WINDOW = (
    "greater-than(subscriptions.email.marketing.suppression.timestamp,2026-01-01T00:00:00Z),"
    "less-or-equal(subscriptions.email.marketing.suppression.timestamp,2026-01-01T00:04:00Z)"
)


class Client:
    """Bare HTTP with one vendor's auth headers."""

    def __init__(self, url: str, headers: dict[str, str]):
        self.url = url
        self.session = requests.Session()
        self.session.headers.update(headers)

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 5, **params: Any
    ) -> requests.Response:
        url = path if path.startswith("http") else self.url + path
        return self.session.request(method, url, json=body, params=params or None, timeout=timeout)

    def raw_get(self, path: str) -> http.client.HTTPResponse:
        """A GET through http.client, which shows exactly how many body bytes arrived."""
        host, port = self.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", path, headers=dict(self.session.headers))
        return connection.getresponse()


Serve = Callable[[App, dict[str, str]], Client]


@pytest.fixture
def serve() -> Iterator[Serve]:
    servers: list[SandboxServer] = []

    def start(app: App, headers: dict[str, str]) -> Client:
        servers.append(SandboxServer(app).start())
        return Client(servers[-1].url, headers)

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kommo(clock: FakeClock) -> KommoSandbox:
    return KommoSandbox(clock, rate_limit=None)


@pytest.fixture
def kommo_api(kommo: KommoSandbox, serve: Serve) -> Client:
    return serve(kommo, KOMMO_HEADERS)


@pytest.fixture
def mailchimp(clock: FakeClock) -> MailchimpSandbox:
    return MailchimpSandbox(clock)


@pytest.fixture
def mailchimp_api(mailchimp: MailchimpSandbox, serve: Serve) -> Client:
    return serve(mailchimp, MAILCHIMP_HEADERS)


@pytest.fixture
def klaviyo(clock: FakeClock) -> KlaviyoSandbox:
    return KlaviyoSandbox(clock)


@pytest.fixture
def klaviyo_api(klaviyo: KlaviyoSandbox, serve: Serve) -> Client:
    return serve(klaviyo, KLAVIYO_HEADERS)


@pytest.fixture
def contact(kommo: KommoSandbox) -> int:
    return kommo.add_contact("Ann", "Lee", email="ann@example.org")


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "30"])
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def note(contact_id: int, text: str = "Called") -> list[dict[str, Any]]:
    return [{"entity_id": contact_id, "note_type": "common", "params": {"text": text}}]


def note_texts(kommo: KommoSandbox) -> list[str]:
    return [n["params"]["text"] for n in kommo.notes]


def logged(app: App) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in app.log]


# ---- kinds ---------------------------------------------------------------------------------


def test_status_fault_sends_each_vendors_own_error_body_before_auth(
    kommo: KommoSandbox, mailchimp: MailchimpSandbox, klaviyo: KlaviyoSandbox, serve: Serve
) -> None:
    for app, status in ((kommo, 429), (mailchimp, 502), (klaviyo, 429)):
        app.faults.add(Fault(path=r".", status=status))
    kommo_answer = serve(kommo, {}).call("GET", "/api/v4/contacts")
    mailchimp_answer = serve(mailchimp, {}).call("GET", "/3.0/lists")
    klaviyo_answer = serve(klaviyo, {}).call("GET", "/api/profiles")
    assert (kommo_answer.status_code, kommo_answer.headers["Content-Type"]) == (
        429,
        "application/problem+json",
    )
    assert kommo_answer.json()["retry_after"] == 1
    assert (mailchimp_answer.status_code, mailchimp_answer.headers["Content-Type"]) == (
        502,
        "text/html",
    )
    assert b"502 Bad Gateway" in mailchimp_answer.content
    assert (klaviyo_answer.status_code, klaviyo_answer.headers["Retry-After"]) == (429, "1")
    assert klaviyo_answer.json()["errors"][0]["code"] == "throttled"


def test_status_fault_with_a_body_uses_the_vendors_error_type_and_adds_headers(
    mailchimp: MailchimpSandbox, mailchimp_api: Client, kommo: KommoSandbox, kommo_api: Client
) -> None:
    mailchimp.faults.add(
        Fault(
            path=r"^/3\.0/lists$", status=503, body={"title": "Busy"}, headers={"Retry-After": "3"}
        )
    )
    kommo.faults.add(Fault(path=r"^/api/v4/contacts$", status=403, body="<h1>Blocked</h1>"))
    busy = mailchimp_api.call("GET", "/3.0/lists")
    blocked = kommo_api.call("GET", "/api/v4/contacts")
    assert (
        busy.status_code,
        busy.headers["Content-Type"],
        busy.headers["Retry-After"],
        busy.json(),
    ) == (503, "application/problem+json; charset=utf-8", "3", {"title": "Busy"})
    assert (blocked.status_code, blocked.headers["Content-Type"], blocked.text) == (
        403,
        "text/html",
        "<h1>Blocked</h1>",
    )


def test_reset_before_closes_the_connection_without_running_the_handler(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    fault = kommo.faults.add(Fault(method="POST", path=r"/notes$", kind="reset_before"))
    with pytest.raises(requests.ConnectionError):
        kommo_api.call("POST", NOTES, note(contact))
    assert (note_texts(kommo), fault.hits, logged(kommo)) == ([], 1, [("POST", NOTES, 0)])
    assert kommo.faults.log == [("POST", NOTES, "reset_before")]


def test_reset_after_loses_the_response_but_the_vendor_stored_the_note(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    fault = kommo.faults.add(Fault(method="POST", path=NOTES, kind="reset_after"))
    with pytest.raises(requests.ConnectionError):
        kommo_api.call("POST", NOTES, note(contact))
    after = kommo_api.call("POST", NOTES, note(contact, "Again"))
    assert (note_texts(kommo), fault.hits, after.status_code) == (["Called", "Again"], 1, 200)
    assert logged(kommo) == [("POST", NOTES, 0), ("POST", NOTES, 200)]


def test_delay_times_the_client_out_while_the_vendor_still_processes(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    fault = kommo.faults.add(Fault(method="POST", path=NOTES, kind="delay", delay=0.4))
    with pytest.raises(requests.Timeout):
        kommo_api.call("POST", NOTES, note(contact), timeout=0.1)
    # The client gave up while the delayed request was still on its way to the handler.
    assert (note_texts(kommo), kommo.log, fault.hits) == ([], [], 1)
    deadline = time.monotonic() + 3
    while not kommo.log and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (note_texts(kommo), logged(kommo)) == (["Called"], [("POST", NOTES, 200)])


def test_truncate_promises_the_whole_body_but_sends_half(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    full = kommo_api.raw_get("/api/v4/contacts").read()
    kommo.faults.add(Fault(path=r"^/api/v4/contacts$", kind="truncate"))
    cut = kommo_api.raw_get("/api/v4/contacts")
    assert (cut.status, cut.getheader("Content-Length")) == (200, str(len(full)))
    with pytest.raises(http.client.IncompleteRead) as caught:
        cut.read()
    assert caught.value.partial == full[: len(full) // 2]


def test_truncate_is_a_broken_body_for_requests(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    kommo.faults.add(Fault(path=r"^/api/v4/contacts$", kind="truncate"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        kommo_api.call("GET", "/api/v4/contacts")


def test_html_answers_200_with_a_page_after_the_handler_ran(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    kommo.faults.add(Fault(method="POST", path=NOTES, kind="html"))
    response = kommo_api.call("POST", NOTES, note(contact))
    assert (response.status_code, response.headers["Content-Type"]) == (200, "text/html")
    assert response.text.startswith("<!DOCTYPE html>")
    assert note_texts(kommo) == ["Called"]


def test_cut_json_sends_half_the_json_with_a_matching_length(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    full = kommo_api.call("GET", "/api/v4/contacts").content
    kommo.faults.add(Fault(path=r"^/api/v4/contacts$", kind="cut_json"))
    cut = kommo_api.call("GET", "/api/v4/contacts")
    assert (cut.status_code, cut.headers["Content-Type"], cut.content) == (
        200,
        "application/hal+json",
        full[: len(full) // 2],
    )
    with pytest.raises(ValueError):
        cut.json()


def test_no_content_answers_204_after_the_handler_ran(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    kommo.faults.add(Fault(method="POST", path=NOTES, kind="no_content"))
    response = kommo_api.call("POST", NOTES, note(contact))
    assert (response.status_code, response.content, note_texts(kommo)) == (204, b"", ["Called"])


def test_kill_before_sigkills_the_victim_and_never_runs_the_handler(
    kommo: KommoSandbox, kommo_api: Client, contact: int, victim: subprocess.Popen[bytes]
) -> None:
    kommo.faults.victim_pid = victim.pid
    kommo.faults.add(Fault(method="POST", path=NOTES, kind="kill_before"))
    with pytest.raises(requests.ConnectionError):
        kommo_api.call("POST", NOTES, note(contact))
    assert (victim.wait(timeout=5), note_texts(kommo)) == (-signal.SIGKILL, [])


def test_kill_after_sigkills_the_victim_once_the_vendor_acted(
    kommo: KommoSandbox, kommo_api: Client, contact: int, victim: subprocess.Popen[bytes]
) -> None:
    kommo.faults.victim_pid = victim.pid
    kommo.faults.add(Fault(method="POST", path=NOTES, kind="kill_after"))
    with pytest.raises(requests.ConnectionError):
        kommo_api.call("POST", NOTES, note(contact))
    assert (victim.wait(timeout=5), note_texts(kommo)) == (-signal.SIGKILL, ["Called"])
    assert logged(kommo) == [("POST", NOTES, 0)]


# ---- picking requests ----------------------------------------------------------------------


def test_attempt_2_hits_only_the_retry_of_the_same_request(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    fault = kommo.faults.add(Fault(method="POST", path=NOTES, status=503, attempt=2, times=0))
    statuses = [
        kommo_api.call("POST", NOTES, note(contact, text)).status_code
        for text in ("A", "B", "A", "B", "A")
    ]
    assert (statuses, fault.hits, note_texts(kommo)) == (
        [200, 200, 503, 503, 200],
        2,
        ["A", "B", "A"],
    )


def test_times_caps_the_hits_and_zero_means_unlimited(
    kommo: KommoSandbox, kommo_api: Client
) -> None:
    twice = kommo.faults.add(Fault(path=r"^/api/v4/leads$", status=503, times=2))
    always = kommo.faults.add(Fault(method="*", path=r"^/api/v4/companies", status=502, times=0))
    leads = [kommo_api.call("GET", "/api/v4/leads").status_code for _ in range(3)]
    companies = [
        kommo_api.call(method, "/api/v4/companies").status_code for method in ("GET", "POST") * 2
    ]
    assert (leads, twice.hits) == ([503, 503, 204], 2)
    assert (companies, always.hits) == ([502] * 4, 4)


def test_method_path_and_body_contains_narrow_the_requests_hit(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    fault = kommo.faults.add(
        Fault(method="post", path=r"/notes$", body_contains="urgent", status=503, times=0)
    )
    answers = [
        kommo_api.call("POST", NOTES, note(contact, "urgent call")).status_code,
        kommo_api.call("POST", NOTES, note(contact, "routine")).status_code,
        kommo_api.call("GET", NOTES).status_code,
        kommo_api.call("POST", "/api/v4/contacts/notes/x", note(contact, "urgent")).status_code,
    ]
    assert (answers, fault.hits) == ([503, 200, 200, 404], 1)


def test_clear_disarms_faults_and_chaos_but_keeps_the_log(
    kommo: KommoSandbox, kommo_api: Client
) -> None:
    kommo.faults.add(Fault(path=r".", status=503, times=0))
    first = kommo_api.call("GET", "/api/v4/leads").status_code
    kommo.faults.chaos(rate=1.0, seed=1, kinds=("status",), statuses=(500,))
    kommo.faults.clear()
    second = kommo_api.call("GET", "/api/v4/leads").status_code
    assert (first, second, kommo.faults.log) == (503, 204, [("GET", "/api/v4/leads", "status")])


def test_chaos_only_faults_the_chosen_methods_outside_the_excluded_paths(
    kommo: KommoSandbox, kommo_api: Client, contact: int
) -> None:
    kommo.faults.chaos(
        rate=1.0,
        seed=3,
        kinds=("status",),
        statuses=(502,),
        methods=("POST",),
        exclude=r"^/api/v4/leads/",
    )
    listing = kommo_api.call("GET", "/api/v4/contacts")
    excluded = kommo_api.call("POST", "/api/v4/leads/notes", [{"entity_id": 1}])
    hit = kommo_api.call("POST", NOTES, note(contact))
    assert [listing.status_code, excluded.status_code, hit.status_code] == [200, 400, 502]
    assert (hit.headers["Content-Type"], kommo.faults.log) == (
        "text/html",
        [("POST", NOTES, "status")],
    )


def chaos_run(paths: list[str], breadth_first: bool, seed: int = 7) -> dict[str, int]:
    """Retry each GET until it succeeds on a fresh chaotic sandbox; the attempts each needed."""
    app = KommoSandbox(FakeClock(), rate_limit=None)
    for number in range(20):
        app.add_contact(f"P{number}")
    app.faults.chaos(rate=0.4, seed=seed, kinds=("status", "reset_before"), statuses=(503, 429))
    attempts = {path: 0 for path in paths}
    with SandboxServer(app) as server:
        client = Client(server.url, KOMMO_HEADERS)
        pending = list(paths)
        while pending:
            batch = pending if breadth_first else pending[:1]
            with ThreadPoolExecutor(4) as pool:
                done = list(pool.map(lambda path: (path, answered(client, path)), batch))
            for path, ok in done:
                attempts[path] += 1
                if ok:
                    pending.remove(path)
    return attempts


def answered(client: Client, path: str) -> bool:
    """One GET on its own connection (sessions are not shared across threads)."""
    try:
        return requests.get(client.url + path, headers=KOMMO_HEADERS, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_chaos_with_one_seed_hits_the_same_requests_in_any_order_and_timing() -> None:
    paths = [f"/api/v4/contacts/{contact_id}" for contact_id in range(406320, 406340)]
    one_by_one = chaos_run(paths, breadth_first=False)
    concurrent_reversed = chaos_run(paths[::-1], breadth_first=True)
    other_seed = chaos_run(paths, breadth_first=False, seed=8)
    assert one_by_one == concurrent_reversed
    assert 0 < sum(n > 1 for n in one_by_one.values()) < len(paths)
    assert max(one_by_one.values()) > 2  # retries roll again: some were hit twice in a row
    assert other_seed != one_by_one


# ---- Kommo switches ------------------------------------------------------------------------


def test_kommo_ignore_page_serves_page_one_for_every_page(
    kommo: KommoSandbox, kommo_api: Client
) -> None:
    for number in range(5):
        kommo.add_contact(f"P{number}")
    kommo.ignore_page = True
    pages = [
        kommo_api.call("GET", "/api/v4/contacts", limit=2, page=page).json() for page in (1, 2, 7)
    ]
    ids = [[c["id"] for c in body["_embedded"]["contacts"]] for body in pages]
    assert ids == [[406320, 406321]] * 3
    assert [body["_page"] for body in pages] == [1, 2, 7]
    assert pages[2]["_links"]["next"]["href"].endswith("limit=2&page=8")


@pytest.mark.parametrize(
    "answer, status, body",
    [("empty", 200, {"_embedded": {"pipelines": []}}), ("no_content", 204, None)],
)
def test_kommo_pipelines_answer_can_be_empty_or_no_content(
    kommo: KommoSandbox, kommo_api: Client, answer: str, status: int, body: Any
) -> None:
    kommo.add_pipeline("Sales", ["Qualified"], is_main=True)
    kommo.pipelines_answer = answer
    response = kommo_api.call("GET", "/api/v4/leads/pipelines")
    assert (response.status_code, response.json() if response.content else None) == (status, body)


# ---- Mailchimp switches --------------------------------------------------------------------


def test_mailchimp_ignore_offset_serves_the_first_members_at_any_offset(
    mailchimp: MailchimpSandbox, mailchimp_api: Client
) -> None:
    list_id = mailchimp.add_list("CRM")
    for number in range(5):
        mailchimp.add_member(list_id, f"m{number}@gmail.com")
    mailchimp.ignore_offset = True
    pages = [
        mailchimp_api.call("GET", f"/3.0/lists/{list_id}/members", count=2, offset=offset).json()
        for offset in (0, 2, 4)
    ]
    emails = [[m["email_address"] for m in page["members"]] for page in pages]
    assert emails == [["m0@gmail.com", "m1@gmail.com"]] * 3
    assert [page["total_items"] for page in pages] == [5] * 3


def put_member_batch(list_id: str, email: str) -> dict[str, Any]:
    return {
        "operations": [
            {
                "method": "PUT",
                "path": f"/lists/{list_id}/members/{subscriber_hash(email)}",
                "body": json.dumps({"email_address": email, "status_if_new": "subscribed"}),
            }
        ]
    }


def test_mailchimp_batches_never_finish_stay_started(
    mailchimp: MailchimpSandbox, mailchimp_api: Client, clock: FakeClock
) -> None:
    list_id = mailchimp.add_list("CRM")
    mailchimp.batches_never_finish = True
    batch = mailchimp_api.call(
        "POST", "/3.0/batches", put_member_batch(list_id, "b@gmail.com")
    ).json()
    clock.advance(3600)
    status = mailchimp_api.call("GET", f"/3.0/batches/{batch['id']}").json()
    assert (status["status"], status["response_body_url"]) == ("started", "")
    assert mailchimp.member(list_id, "b@gmail.com") is None


def test_mailchimp_jobs_finish_at_once_finish_at_the_first_get(
    mailchimp: MailchimpSandbox, mailchimp_api: Client
) -> None:
    list_id = mailchimp.add_list("CRM")
    mailchimp.jobs_finish_at_once = True
    batch = mailchimp_api.call(
        "POST", "/3.0/batches", put_member_batch(list_id, "b@gmail.com")
    ).json()
    status = mailchimp_api.call("GET", f"/3.0/batches/{batch['id']}").json()
    assert (batch["status"], status["status"], status["finished_operations"]) == (
        "pending",
        "finished",
        1,
    )
    assert mailchimp.member(list_id, "b@gmail.com")["status"] == "subscribed"


# ---- Klaviyo switches ----------------------------------------------------------------------


def test_klaviyo_next_link_loop_points_back_at_the_served_page(
    klaviyo: KlaviyoSandbox, klaviyo_api: Client
) -> None:
    for number in range(5):
        klaviyo.add_profile(f"p{number}@example.com")
    klaviyo.next_link_loop = True
    first = klaviyo_api.call("GET", "/api/profiles", **{"page[size]": 2}).json()
    again = klaviyo_api.call("GET", first["links"]["next"]).json()
    assert first["links"]["next"] == first["links"]["self"]
    assert [p["id"] for p in again["data"]] == [p["id"] for p in first["data"]]
    assert again["links"]["next"] == first["links"]["next"]


def import_body(email: str) -> dict[str, Any]:
    return {
        "data": {
            "type": "profile-bulk-import-job",
            "attributes": {
                "profiles": {"data": [{"type": "profile", "attributes": {"email": email}}]}
            },
        }
    }


def subscribe_body(email: str) -> dict[str, Any]:
    marketing = {"consent": "SUBSCRIBED"}
    return {
        "data": {
            "type": "profile-subscription-bulk-create-job",
            "attributes": {
                "profiles": {
                    "data": [
                        {
                            "type": "profile",
                            "attributes": {
                                "email": email,
                                "subscriptions": {"email": {"marketing": marketing}},
                            },
                        }
                    ]
                }
            },
        }
    }


def events_body(email: str) -> dict[str, Any]:
    event = {
        "type": "event",
        "attributes": {
            "properties": {},
            "time": "2025-12-01T10:00:00Z",
            "unique_id": "u1",
            "metric": {"data": {"type": "metric", "attributes": {"name": "Deal Won"}}},
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


def test_klaviyo_jobs_never_finish_keep_imports_processing_and_never_apply_bulk_jobs(
    klaviyo: KlaviyoSandbox, klaviyo_api: Client, clock: FakeClock
) -> None:
    klaviyo.jobs_never_finish = True
    job = klaviyo_api.call(
        "POST", "/api/profile-bulk-import-jobs", import_body("i@example.com")
    ).json()
    subscribe = klaviyo_api.call(
        "POST", "/api/profile-subscription-bulk-create-jobs", subscribe_body("s@example.com")
    )
    events = klaviyo_api.call("POST", "/api/event-bulk-create-jobs", events_body("e@example.com"))
    clock.advance(3600)
    status = klaviyo_api.call("GET", f"/api/profile-bulk-import-jobs/{job['data']['id']}").json()
    assert (status["data"]["attributes"]["status"], subscribe.status_code, events.status_code) == (
        "processing",
        202,
        202,
    )
    assert [
        klaviyo.profile_by_email(e) for e in ("i@example.com", "s@example.com", "e@example.com")
    ] == [None, None, None]
    assert klaviyo.events() == []


def test_klaviyo_jobs_finish_at_once_complete_at_the_first_get(
    klaviyo: KlaviyoSandbox, klaviyo_api: Client
) -> None:
    klaviyo.jobs_finish_at_once = True
    job = klaviyo_api.call(
        "POST", "/api/profile-bulk-import-jobs", import_body("i@example.com")
    ).json()
    status = klaviyo_api.call("GET", f"/api/profile-bulk-import-jobs/{job['data']['id']}").json()
    attributes = status["data"]["attributes"]
    assert (
        job["data"]["attributes"]["status"],
        attributes["status"],
        attributes["completed_count"],
    ) == ("queued", "complete", 1)
    assert klaviyo.profile_by_email("i@example.com")["email"] == "i@example.com"


def unsubscribe_in_time_order(klaviyo: KlaviyoSandbox, clock: FakeClock) -> list[str]:
    """Five unsubscribed profiles (ids in creation order, unsubscribed in another), two kept."""
    ids = [klaviyo.add_profile(f"u{number}@example.com", subscribed=True) for number in range(5)]
    klaviyo.add_profile("kept1@example.com", subscribed=True)
    klaviyo.add_profile("kept2@example.com")
    for number in (3, 0, 4, 1, 2):
        clock.advance(60)
        klaviyo.unsubscribe(f"u{number}@example.com")
    return ids


def all_pages(client: Client, **params: Any) -> tuple[list[str], int]:
    """Every profile id following links.next, and the number of pages."""
    body = client.call("GET", "/api/profiles", **params).json()
    ids, pages = [p["id"] for p in body["data"]], 1
    while body["links"]["next"]:
        body = client.call("GET", body["links"]["next"]).json()
        ids, pages = ids + [p["id"] for p in body["data"]], pages + 1
    return ids, pages


@pytest.mark.parametrize(
    "query, unsubscribed", [(SUPPRESSED, (3, 0, 4, 1, 2)), (WINDOW, (3, 0, 4, 1))]
)
def test_klaviyo_subscription_filter_pages_with_and_without_sort_when_the_switch_is_off(
    klaviyo: KlaviyoSandbox,
    klaviyo_api: Client,
    clock: FakeClock,
    query: str,
    unsubscribed: tuple[int, ...],
) -> None:
    ids = unsubscribe_in_time_order(klaviyo, clock)
    common = {
        "filter": query,
        "page[size]": 2,
        "additional-fields[profile]": "subscriptions",
        "fields[profile]": "email,subscriptions",
    }
    unsorted = all_pages(klaviyo_api, **common)
    by_time = all_pages(
        klaviyo_api, **common, sort="subscriptions.email.marketing.suppression.timestamp"
    )
    pages = (len(unsubscribed) + 1) // 2
    assert unsorted == ([ids[n] for n in sorted(unsubscribed)], pages)
    assert by_time == ([ids[n] for n in unsubscribed], pages)


def test_klaviyo_refuses_sort_with_a_subscription_filter_when_switched_on(
    klaviyo: KlaviyoSandbox, klaviyo_api: Client, clock: FakeClock
) -> None:
    ids = unsubscribe_in_time_order(klaviyo, clock)
    klaviyo.refuse_sort_with_subscription_filter = True
    refused = klaviyo_api.call(
        "GET",
        "/api/profiles",
        filter=SUPPRESSED,
        sort="subscriptions.email.marketing.suppression.timestamp",
    )
    error = refused.json()["errors"][0]
    assert (
        refused.status_code,
        {k: error[k] for k in ("status", "code", "title", "detail", "source")},
    ) == (
        400,
        {
            "status": 400,
            "code": "invalid",
            "title": "Invalid input.",
            "detail": "You may not filter on subscriptions and sort at the same time.",
            "source": {"parameter": "sort"},
        },
    )
    assert all_pages(klaviyo_api, filter=SUPPRESSED, **{"page[size]": 2}) == (ids, 3)
    assert klaviyo_api.call("GET", "/api/profiles", sort="created").status_code == 200
