"""The Klaviyo sandbox behaves like Klaviyo's REST API (revision 2026-07-15) over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.klaviyo import KlaviyoSandbox
from kommo_sync.sandbox.server import App, Request, Response, SandboxServer

KEY = "pk_sandbox_0000000000000000"
HEADERS = {
    "Authorization": f"Klaviyo-API-Key {KEY}",
    "revision": "2026-07-15",
    "Accept": "application/vnd.api+json",
    "Content-Type": "application/vnd.api+json",
}


class Client:
    """A bare HTTP client with Klaviyo's headers, for asserting the wire behaviour."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers.update(HEADERS)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> requests.Response:
        url = path if path.startswith("http") else self.url + path
        return self.session.request(
            method, url, json=body, params=params or None, headers=headers, timeout=5
        )


class Switchboard(App):
    """Serves whichever sandbox the current test made, so one server lives for the whole module."""

    def __init__(self) -> None:
        super().__init__()
        self.target: App | None = None

    def dispatch(self, request: Request) -> Response:
        assert self.target is not None
        return self.target.dispatch(request)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    server = SandboxServer(Switchboard())
    server.httpd.RequestHandlerClass.disable_nagle_algorithm = (
        True  # no 40 ms Nagle/delayed-ACK stall per reply
    )
    with server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> KlaviyoSandbox:
    return KlaviyoSandbox(clock)


@pytest.fixture
def api(server: SandboxServer, app: KlaviyoSandbox) -> Iterator[Client]:
    server.app.target = app
    client = Client(server.url)
    yield client
    client.session.close()


def profile_body(profile_id: str | None = None, **attributes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "profile", "attributes": attributes}
    if profile_id:
        data["id"] = profile_id
    return {"data": data}


def event_body(
    email: str,
    metric: str = "Deal Won",
    unique_id: str | None = None,
    time: str | None = "2025-12-01T10:00:00+00:00",
    **extra: Any,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "properties": {"deal": "987"},
        "time": time,
        "unique_id": unique_id,
        "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
    }
    attributes.update(extra)
    return {"data": {"type": "event", "attributes": attributes}}


def bulk_import_body(profiles: list[dict[str, Any]], list_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-bulk-import-job",
        "attributes": {
            "profiles": {
                "data": [{"type": "profile", "attributes": attributes} for attributes in profiles]
            }
        },
    }
    if list_id:
        data["relationships"] = {"lists": {"data": [{"type": "list", "id": list_id}]}}
    return {"data": data}


def subscribe_body(
    emails: list[str],
    list_id: str | None = None,
    consented_at: str | None = None,
    historical: bool | None = None,
) -> dict[str, Any]:
    marketing: dict[str, Any] = {"consent": "SUBSCRIBED"}
    if consented_at:
        marketing["consented_at"] = consented_at
    attributes: dict[str, Any] = {
        "profiles": {
            "data": [
                {
                    "type": "profile",
                    "attributes": {
                        "email": email,
                        "subscriptions": {"email": {"marketing": marketing}},
                    },
                }
                for email in emails
            ]
        }
    }
    if historical is not None:
        attributes["historical_import"] = historical
    data: dict[str, Any] = {
        "type": "profile-subscription-bulk-create-job",
        "attributes": attributes,
    }
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": data}


def first_error(response: requests.Response) -> dict[str, Any]:
    return response.json()["errors"][0]


# ---------------------------------------------------------------- headers and errors


def test_missing_or_wrong_key_is_401(api: Client) -> None:
    missing = api.call("GET", "/api/profiles", headers={"Authorization": ""})
    wrong = api.call("GET", "/api/profiles", headers={"Authorization": "Klaviyo-API-Key pk_wrong"})
    assert missing.status_code == 401 and first_error(missing)["code"] == "not_authenticated"
    assert wrong.status_code == 401 and first_error(wrong)["code"] == "authentication_failed"


def test_revision_header_is_required_and_must_be_known(api: Client) -> None:
    missing = api.call("GET", "/api/profiles", headers={"revision": ""})
    unknown = api.call("GET", "/api/profiles", headers={"revision": "2023-02-22"})
    assert missing.status_code == 400 and first_error(missing)["source"] == {
        "parameter": "revision"
    }
    assert (
        unknown.status_code == 404
        and first_error(unknown)["detail"] == "No valid revisions found for method"
    )


def test_media_types_vnd_api_and_plain_json_only(api: Client) -> None:
    plain = api.call(
        "POST",
        "/api/profile-import",
        profile_body(email="a@example.com"),
        headers={"Content-Type": "application/json"},
    )
    form = api.call(
        "POST",
        "/api/profile-import",
        profile_body(email="b@example.com"),
        headers={"Content-Type": "text/plain"},
    )
    assert plain.status_code == 201
    assert plain.headers["Content-Type"] == "application/vnd.api+json"
    assert form.status_code == 415


def test_unknown_path_and_wrong_method_are_json_api_errors(api: Client) -> None:
    missing = api.call("GET", "/api/nothing-here")
    wrong_method = api.call("PUT", "/api/profiles")
    assert missing.status_code == 404 and first_error(missing)["code"] == "not_found"
    assert wrong_method.status_code == 405


def test_fail_next_gives_json_errors_then_recovers(api: Client, app: KlaviyoSandbox) -> None:
    app.fail_next(1, 503)
    app.fail_next(1, 403, "<html>Just a moment...</html>")
    app.fail_next(1, 429)
    server_error = api.call("GET", "/api/profiles")
    cloudflare = api.call("GET", "/api/profiles")
    throttled = api.call("GET", "/api/profiles")
    assert server_error.status_code == 503 and server_error.json()["errors"][0]["status"] == 503
    assert cloudflare.status_code == 403 and cloudflare.text.startswith("<html>")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert api.call("GET", "/api/profiles").status_code == 200


# ---------------------------------------------------------------- rate limits


def test_burst_limit_gives_429_with_retry_after_and_throttled_body(
    api: Client, app: KlaviyoSandbox, clock: FakeClock
) -> None:
    list_id = app.add_list("Won")
    profile_id = app.add_profile("a@example.com")
    body = {"data": [{"type": "profile", "id": profile_id}]}
    statuses = [
        api.call("POST", f"/api/lists/{list_id}/relationships/profiles", body).status_code
        for _ in range(11)
    ]
    assert statuses == [204] * 10 + [429]
    throttled = api.call("POST", f"/api/lists/{list_id}/relationships/profiles", body)
    assert throttled.headers["Retry-After"] == "1"
    error = first_error(throttled)
    assert (error["status"], error["code"]) == (429, "throttled")
    assert "Expected available in 1 second" in error["detail"]
    clock.advance(1.0)
    assert api.call("POST", f"/api/lists/{list_id}/relationships/profiles", body).status_code == 204


def test_steady_limit_per_minute_reports_seconds_until_the_window_frees(
    api: Client, clock: FakeClock
) -> None:
    for _second in range(15):
        for _ in range(10):
            assert api.call("GET", "/api/metrics").status_code == 200
        clock.advance(1.0)
    throttled = api.call("GET", "/api/metrics")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) == 45
    clock.advance(45.0)
    assert api.call("GET", "/api/metrics").status_code == 200


def test_limits_are_per_endpoint(api: Client, app: KlaviyoSandbox) -> None:
    for _ in range(10):
        api.call("GET", "/api/metrics")
    assert api.call("GET", "/api/metrics").status_code == 429
    assert api.call("GET", "/api/profiles").status_code == 200


def test_profile_count_moves_get_list_to_the_slow_tier(api: Client, app: KlaviyoSandbox) -> None:
    list_id = app.add_list("Won")
    counted = [
        api.call("GET", f"/api/lists/{list_id}", **{"additional-fields[list]": "profile_count"})
        for _ in range(2)
    ]
    assert counted[0].json()["data"]["attributes"]["profile_count"] == 0
    assert counted[1].status_code == 429
    assert api.call("GET", f"/api/lists/{list_id}").status_code == 200


# ---------------------------------------------------------------- profile-import


def test_profile_import_creates_201_then_updates_200_without_touching_consent(api: Client) -> None:
    created = api.call(
        "POST",
        "/api/profile-import",
        profile_body(
            email="jane@example.com", first_name="Jane", properties={"stage": "New", "a": 1}
        ),
    )
    updated = api.call(
        "POST",
        "/api/profile-import",
        profile_body(email="jane@example.com", properties={"stage": "Won"}),
        **{"additional-fields[profile]": "subscriptions"},
    )
    assert created.status_code == 201 and updated.status_code == 200
    profile = updated.json()["data"]
    assert profile["id"] == created.json()["data"]["id"] and profile["id"].startswith("01")
    assert profile["attributes"]["properties"] == {"stage": "Won", "a": 1}
    assert profile["attributes"]["first_name"] == "Jane"
    marketing = profile["attributes"]["subscriptions"]["email"]["marketing"]
    assert marketing["consent"] == "NEVER_SUBSCRIBED"


def test_profile_import_refuses_subscriptions_and_unknown_fields(api: Client) -> None:
    response = api.call(
        "POST",
        "/api/profile-import",
        profile_body(
            email="jane@example.com",
            subscriptions={"email": {"marketing": {"consent": "SUBSCRIBED"}}},
        ),
    )
    assert response.status_code == 400
    assert first_error(response)["source"]["pointer"] == "/data/attributes/subscriptions"


def test_profile_import_by_id_changes_the_email(api: Client, app: KlaviyoSandbox) -> None:
    profile_id = app.add_profile("old@example.com")
    response = api.call(
        "POST", "/api/profile-import", profile_body(profile_id, email="new@example.com")
    )
    assert response.status_code == 200
    assert app.profile_by_email("new@example.com")["id"] == profile_id
    assert app.profile_by_email("old@example.com") is None


def test_profile_import_invalid_email_and_phone_point_at_the_field(api: Client) -> None:
    email = api.call("POST", "/api/profile-import", profile_body(email="not-an-email"))
    phone = api.call(
        "POST",
        "/api/profile-import",
        profile_body(email="a@example.com", phone_number="0301234567"),
    )
    assert (
        email.status_code == 400
        and first_error(email)["source"]["pointer"] == "/data/attributes/email"
    )
    assert (
        phone.status_code == 400
        and first_error(phone)["source"]["pointer"] == "/data/attributes/phone_number"
    )
    assert first_error(phone)["code"] == "invalid"


def test_identifiers_of_two_profiles_give_409_duplicate_profile(
    api: Client, app: KlaviyoSandbox
) -> None:
    owner_of_email = app.add_profile("a@example.com")
    app.add_profile("b@example.com", phone_number="+14155550123")
    response = api.call(
        "POST",
        "/api/profile-import",
        profile_body(email="a@example.com", phone_number="+14155550123"),
    )
    assert response.status_code == 409
    error = first_error(response)
    assert error["code"] == "duplicate_profile"
    assert error["meta"]["duplicate_profile_id"] == owner_of_email


def test_new_phone_on_existing_email_updates_that_profile(api: Client, app: KlaviyoSandbox) -> None:
    profile_id = app.add_profile("a@example.com")
    response = api.call(
        "POST",
        "/api/profile-import",
        profile_body(email="a@example.com", phone_number="+14155550123"),
    )
    assert response.status_code == 200 and response.json()["data"]["id"] == profile_id


def test_id_with_another_profiles_email_gives_the_observed_404(
    api: Client, app: KlaviyoSandbox
) -> None:
    profile_id = app.add_profile("a@example.com")
    app.add_profile("b@example.com")
    response = api.call(
        "POST", "/api/profile-import", profile_body(profile_id, email="b@example.com")
    )
    assert response.status_code == 404 and first_error(response)["code"] == "not_found"


def test_patch_properties_unset_removes_a_key(api: Client, app: KlaviyoSandbox) -> None:
    app.add_profile("a@example.com", properties={"lost_reason": "price", "stage": "Lost"})
    body = profile_body(email="a@example.com")
    body["data"]["meta"] = {"patch_properties": {"unset": "lost_reason"}}
    api.call("POST", "/api/profile-import", body)
    assert app.profile_by_email("a@example.com")["properties"] == {"stage": "Lost"}


# ---------------------------------------------------------------- reading profiles


def test_get_profiles_pages_with_absolute_next_links(api: Client, app: KlaviyoSandbox) -> None:
    ids = [app.add_profile(f"p{number}@example.com") for number in range(25)]
    seen, url, pages = [], "/api/profiles?page[size]=10", 0
    while url:
        response = api.call("GET", url)
        body = response.json()
        seen += [profile["id"] for profile in body["data"]]
        url, pages = body["links"]["next"], pages + 1
        assert url is None or url.startswith("http://")
    assert seen == ids and pages == 3


def test_get_profiles_filters_by_email_and_updated(
    api: Client, app: KlaviyoSandbox, clock: FakeClock
) -> None:
    app.add_profile("old@example.com")
    clock.advance(3600)
    recent = app.add_profile("Recent@Example.com")
    by_email = api.call("GET", "/api/profiles", filter='equals(email,"recent@example.com")').json()[
        "data"
    ]
    since = api.call(
        "GET", "/api/profiles", filter="greater-than(updated,2026-01-01T00:30:00Z)"
    ).json()["data"]
    assert [p["id"] for p in by_email] == [recent]
    assert [p["id"] for p in since] == [recent]


def test_get_profiles_refuses_bad_filters_and_page_sizes(api: Client) -> None:
    unknown_field = api.call("GET", "/api/profiles", filter='equals(first_name,"x")')
    quoted_datetime = api.call(
        "GET", "/api/profiles", filter='greater-than(updated,"2026-01-01T00:00:00Z")'
    )
    too_big = api.call("GET", "/api/profiles", **{"page[size]": "101"})
    assert unknown_field.status_code == 400 and first_error(unknown_field)["source"] == {
        "parameter": "filter"
    }
    assert quoted_datetime.status_code == 400
    assert too_big.status_code == 400 and first_error(too_big)["source"] == {
        "parameter": "page[size]"
    }


def test_get_profile_by_id_and_404(api: Client, app: KlaviyoSandbox) -> None:
    profile_id = app.add_profile("a@example.com", first_name="Ann")
    found = api.call("GET", f"/api/profiles/{profile_id}")
    missing = api.call("GET", "/api/profiles/01NOPE")
    assert found.json()["data"]["attributes"]["first_name"] == "Ann"
    assert "subscriptions" not in found.json()["data"]["attributes"]
    assert missing.status_code == 404


# ---------------------------------------------------------------- unsubscribes read back


def test_unsubscribe_is_visible_as_suppression_filter(
    api: Client, app: KlaviyoSandbox, clock: FakeClock
) -> None:
    app.add_profile("stays@example.com", subscribed=True)
    gone = app.add_profile("gone@example.com", subscribed=True)
    clock.advance(60)
    app.unsubscribe("gone@example.com")
    response = api.call(
        "GET",
        "/api/profiles",
        **{
            "additional-fields[profile]": "subscriptions",
            "filter": 'equals(subscriptions.email.marketing.suppression.reason,"UNSUBSCRIBE"),'
            "greater-than(subscriptions.email.marketing.suppression.timestamp,2026-01-01T00:00:00Z)",
            "sort": "subscriptions.email.marketing.suppression.timestamp",
        },
    )
    data = response.json()["data"]
    assert [p["id"] for p in data] == [gone]
    marketing = data[0]["attributes"]["subscriptions"]["email"]["marketing"]
    assert marketing["consent"] == "UNSUBSCRIBED"
    assert marketing["can_receive_email_marketing"] is False
    assert marketing["suppression"][0]["reason"] == "UNSUBSCRIBE"


def test_unsubscribe_is_visible_as_event_with_profile(api: Client, app: KlaviyoSandbox) -> None:
    assert (
        api.call("GET", "/api/metrics").json()["data"] == []
    )  # metrics exist only after first use
    app.add_profile("gone@example.com", external_id="kommo-1")
    app.unsubscribe("gone@example.com", at="2026-01-01T12:00:00Z")
    metrics = api.call("GET", "/api/metrics").json()["data"]
    metric_id = next(
        m["id"] for m in metrics if m["attributes"]["name"] == "Unsubscribed from Email Marketing"
    )
    response = api.call(
        "GET",
        "/api/events",
        **{
            "filter": f'equals(metric_id,"{metric_id}"),'
            "greater-or-equal(datetime,2026-01-01T00:00:00Z)",
            "include": "profile",
            "fields[profile]": "email,external_id",
            "sort": "datetime",
        },
    )
    body = response.json()
    assert len(body["data"]) == 1
    assert body["data"][0]["attributes"]["datetime"] == "2026-01-01T12:00:00+00:00"
    assert body["included"][0]["attributes"] == {
        "email": "gone@example.com",
        "external_id": "kommo-1",
    }


def test_events_filter_refuses_any_on_metric_id(api: Client) -> None:
    response = api.call("GET", "/api/events", filter='any(metric_id,["a","b"])')
    assert response.status_code == 400


def test_campaign_activity_hook(app: KlaviyoSandbox) -> None:
    app.add_profile("a@example.com")
    app.add_activity("a@example.com", "Opened Email", properties={"Campaign Name": "July"})
    app.add_activity("a@example.com", "Clicked Email")
    assert [e["metric"] for e in app.events()] == ["Opened Email", "Clicked Email"]
    assert app.events("Opened Email")[0]["properties"] == {"Campaign Name": "July"}


# ---------------------------------------------------------------- bulk import jobs


def test_bulk_import_job_advances_with_the_clock(
    api: Client, app: KlaviyoSandbox, clock: FakeClock
) -> None:
    list_id = app.add_list("Kommo")
    created = api.call(
        "POST",
        "/api/profile-bulk-import-jobs",
        bulk_import_body(
            [
                {"email": "a@example.com", "properties": {"stage": "Won"}},
                {"email": "b@example.com"},
            ],
            list_id,
        ),
    )
    assert created.status_code == 202
    job = created.json()["data"]
    assert job["attributes"]["status"] == "queued" and job["attributes"]["total_count"] == 2
    assert app.profile_by_email("a@example.com") is None
    clock.advance(1.0)
    assert (
        api.call("GET", f"/api/profile-bulk-import-jobs/{job['id']}").json()["data"]["attributes"][
            "status"
        ]
        == "processing"
    )
    clock.advance(1.01)
    done = api.call("GET", f"/api/profile-bulk-import-jobs/{job['id']}").json()["data"][
        "attributes"
    ]
    assert (done["status"], done["completed_count"], done["failed_count"]) == ("complete", 2, 0)
    ids = api.call(
        "GET", f"/api/profile-bulk-import-jobs/{job['id']}/relationships/profiles"
    ).json()["data"]
    assert {i["id"] for i in ids} == app.list_members(list_id)
    assert (
        app.profile_by_email("a@example.com")["subscriptions"]["email"]["marketing"]["consent"]
        == "NEVER_SUBSCRIBED"
    )


def test_bulk_import_one_bad_email_refuses_the_whole_job(api: Client, app: KlaviyoSandbox) -> None:
    response = api.call(
        "POST",
        "/api/profile-bulk-import-jobs",
        bulk_import_body(
            [
                {"email": "good@example.com"},
                {"email": "bad@"},
                {"email": "x@example.com", "phone_number": "+1234"},
            ]
        ),
    )
    assert response.status_code == 400
    pointers = [error["source"]["pointer"] for error in response.json()["errors"]]
    assert pointers == [
        "/data/attributes/profiles/data/1/attributes/email",
        "/data/attributes/profiles/data/2/attributes/phone_number",
    ]
    assert app.profile_by_email("good@example.com") is None


def test_bulk_import_conflicts_are_listed_as_import_errors(
    api: Client, app: KlaviyoSandbox, clock: FakeClock
) -> None:
    app.add_profile("a@example.com")
    app.add_profile("b@example.com", phone_number="+14155550123")
    rows = [{"email": "a@example.com", "phone_number": "+14155550123"}, {"email": "c@example.com"}]
    job_id = api.call("POST", "/api/profile-bulk-import-jobs", bulk_import_body(rows)).json()[
        "data"
    ]["id"]
    clock.advance(5)
    attributes = api.call("GET", f"/api/profile-bulk-import-jobs/{job_id}").json()["data"][
        "attributes"
    ]
    errors = api.call("GET", f"/api/profile-bulk-import-jobs/{job_id}/import-errors").json()["data"]
    assert (attributes["completed_count"], attributes["failed_count"]) == (1, 1)
    assert errors[0]["type"] == "import-error"
    assert errors[0]["attributes"]["source"]["pointer"] == "/data/attributes/profiles/data/0"
    assert errors[0]["attributes"]["original_payload"] == rows[0]


def test_import_jobs_can_be_listed_by_status(api: Client, clock: FakeClock) -> None:
    api.call(
        "POST", "/api/profile-bulk-import-jobs", bulk_import_body([{"email": "a@example.com"}])
    )
    clock.advance(5)
    newer = api.call(
        "POST", "/api/profile-bulk-import-jobs", bulk_import_body([{"email": "b@example.com"}])
    )
    queued = api.call(
        "GET", "/api/profile-bulk-import-jobs", filter='equals(status,"queued")'
    ).json()["data"]
    assert [job["id"] for job in queued] == [newer.json()["data"]["id"]]


def test_bulk_import_limits_and_unknown_list(api: Client) -> None:
    too_many = api.call(
        "POST",
        "/api/profile-bulk-import-jobs",
        bulk_import_body([{"email": f"p{n}@example.com"} for n in range(10_001)]),
    )
    unknown_list = api.call(
        "POST",
        "/api/profile-bulk-import-jobs",
        bulk_import_body([{"email": "a@example.com"}], "NoSuch"),
    )
    assert too_many.status_code == 400
    assert (
        unknown_list.status_code == 400
        and first_error(unknown_list)["source"]["pointer"] == "/data"
    )


# ---------------------------------------------------------------- lists


def test_add_and_remove_list_members(api: Client, app: KlaviyoSandbox) -> None:
    list_id = app.add_list("Won", list_id="Y6nRLr")
    first, second = app.add_profile("a@example.com"), app.add_profile("b@example.com")
    path = f"/api/lists/{list_id}/relationships/profiles"
    added = api.call(
        "POST",
        path,
        {"data": [{"type": "profile", "id": first}, {"type": "profile", "id": second}]},
    )
    removed = api.call("DELETE", path, {"data": [{"type": "profile", "id": first}]})
    assert (added.status_code, removed.status_code) == (204, 204) and added.content == b""
    assert app.list_members(list_id) == {second}
    listed = api.call("GET", path).json()["data"]
    assert listed == [{"type": "profile", "id": second}]


def test_unknown_profile_id_refuses_the_whole_list_change(api: Client, app: KlaviyoSandbox) -> None:
    list_id = app.add_list("Won")
    known = app.add_profile("a@example.com")
    response = api.call(
        "POST",
        f"/api/lists/{list_id}/relationships/profiles",
        {"data": [{"type": "profile", "id": known}, {"type": "profile", "id": "01UNKNOWN"}]},
    )
    too_many = api.call(
        "POST",
        f"/api/lists/{list_id}/relationships/profiles",
        {"data": [{"type": "profile", "id": known}] * 1001},
    )
    assert (
        response.status_code == 400 and first_error(response)["source"]["pointer"] == "/data/1/id"
    )
    assert too_many.status_code == 400
    assert app.list_members(list_id) == set()


def test_get_lists_by_name_pages_by_ten(api: Client, app: KlaviyoSandbox) -> None:
    for number in range(12):
        app.add_list(f"List {number}")
    wanted = app.add_list("Kommo – Won")
    found = api.call("GET", "/api/lists", filter='equals(name,"Kommo – Won")').json()["data"]
    first_page = api.call("GET", "/api/lists").json()
    assert [item["id"] for item in found] == [wanted]
    assert len(first_page["data"]) == 10 and first_page["links"]["next"]
    assert api.call("GET", "/api/lists", **{"page[size]": "11"}).status_code == 400


# ---------------------------------------------------------------- events


def test_event_is_accepted_202_and_deduplicated_on_unique_id(
    api: Client, app: KlaviyoSandbox
) -> None:
    first = api.call(
        "POST",
        "/api/events",
        event_body("a@example.com", unique_id="kommo:987:won", value=1200.5, value_currency="EUR"),
    )
    again = api.call("POST", "/api/events", event_body("a@example.com", unique_id="kommo:987:won"))
    assert (first.status_code, again.status_code) == (202, 202) and first.content == b""
    events = app.events("Deal Won")
    assert len(events) == 1 and events[0]["value"] == 1200.5
    assert app.profile_by_email("a@example.com") is not None


def test_events_without_unique_id_collapse_within_one_second(
    api: Client, app: KlaviyoSandbox
) -> None:
    api.call(
        "POST", "/api/events", event_body("a@example.com", time="2025-12-01T10:00:00.100+00:00")
    )
    api.call(
        "POST", "/api/events", event_body("a@example.com", time="2025-12-01T10:00:00.900+00:00")
    )
    api.call("POST", "/api/events", event_body("a@example.com", time="2025-12-01T10:00:01+00:00"))
    assert len(app.events("Deal Won")) == 2


def test_event_validation(api: Client) -> None:
    future = api.call(
        "POST", "/api/events", event_body("a@example.com", time="2028-01-01T00:00:00Z")
    )
    no_properties = event_body("a@example.com")
    del no_properties["data"]["attributes"]["properties"]
    missing = api.call("POST", "/api/events", no_properties)
    sibling_meta = event_body("a@example.com")
    sibling_meta["data"]["attributes"]["profile"]["data"]["meta"] = {
        "patch_properties": {"unset": "x"}
    }
    misplaced = api.call("POST", "/api/events", sibling_meta)
    assert (
        future.status_code == 400
        and first_error(future)["source"]["pointer"] == "/data/attributes/time"
    )
    assert missing.status_code == 400
    assert misplaced.status_code == 400


def bulk_events_body(events: list[tuple[str, str | None]]) -> dict[str, Any]:
    """One entry per (email, unique_id) pair."""
    entries = [
        {
            "type": "event-bulk-create",
            "attributes": {
                "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
                "events": {
                    "data": [
                        {
                            "type": "event",
                            "attributes": {
                                "properties": {},
                                "time": "2025-12-01T10:00:00Z",
                                "unique_id": unique_id,
                                "metric": {
                                    "data": {
                                        "type": "metric",
                                        "attributes": {"name": "Stage Changed"},
                                    }
                                },
                            },
                        }
                    ]
                },
            },
        }
        for email, unique_id in events
    ]
    return {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {"events-bulk-create": {"data": entries}},
        }
    }


def test_bulk_events_store_and_refuse_repeated_unique_id(api: Client, app: KlaviyoSandbox) -> None:
    ok = api.call(
        "POST",
        "/api/event-bulk-create-jobs",
        bulk_events_body([("a@example.com", "1"), ("b@example.com", "1")]),
    )
    repeated = api.call(
        "POST",
        "/api/event-bulk-create-jobs",
        bulk_events_body([("c@example.com", "2"), ("C@example.com", "2")]),
    )
    too_many = api.call(
        "POST",
        "/api/event-bulk-create-jobs",
        bulk_events_body([("a@example.com", str(n)) for n in range(1001)]),
    )
    assert ok.status_code == 202 and len(app.events("Stage Changed")) == 2
    assert repeated.status_code == 400 and app.profile_by_email("c@example.com") is None
    assert too_many.status_code == 400


def test_get_events_returns_at_most_200_per_page(api: Client, app: KlaviyoSandbox) -> None:
    app.add_profile("a@example.com")
    for second in range(250):
        app.add_activity("a@example.com", "Opened Email", at=1_767_225_600 + second)
    page = api.call("GET", "/api/events", **{"page[size]": "1000"}).json()
    assert len(page["data"]) == 200 and page["links"]["next"]
    rest = api.call("GET", page["links"]["next"]).json()
    assert len(rest["data"]) == 50 and rest["links"]["next"] is None


# ---------------------------------------------------------------- consent


def test_bulk_subscribe_resubscribes_an_unsubscribed_profile(
    api: Client, app: KlaviyoSandbox
) -> None:
    app.add_profile("gone@example.com", subscribed=True)
    app.unsubscribe("gone@example.com")
    response = api.call(
        "POST", "/api/profile-subscription-bulk-create-jobs", subscribe_body(["gone@example.com"])
    )
    assert response.status_code == 202 and response.content == b""
    marketing = app.profile_by_email("gone@example.com")["subscriptions"]["email"]["marketing"]
    assert marketing["consent"] == "SUBSCRIBED" and marketing["suppression"] == []


def test_bulk_subscribe_consented_at_rules(api: Client) -> None:
    path = "/api/profile-subscription-bulk-create-jobs"
    without_flag = api.call(
        "POST", path, subscribe_body(["a@example.com"], consented_at="2025-01-01T00:00:00Z")
    )
    without_date = api.call("POST", path, subscribe_body(["a@example.com"], historical=True))
    historical = api.call(
        "POST",
        path,
        subscribe_body(["a@example.com"], consented_at="2025-01-01T00:00:00Z", historical=True),
    )
    too_many = api.call("POST", path, subscribe_body([f"p{n}@example.com" for n in range(1001)]))
    pointer = (
        "/data/attributes/profiles/data/0/attributes/subscriptions/email/marketing/consented_at"
    )
    assert (
        without_flag.status_code == 400
        and first_error(without_flag)["source"]["pointer"] == pointer
    )
    assert without_date.status_code == 400
    assert historical.status_code == 202
    assert too_many.status_code == 400


def test_bulk_subscribe_to_a_list_adds_the_member(api: Client, app: KlaviyoSandbox) -> None:
    single = app.add_list("Single")
    double = app.add_list("Double", opt_in_process="double_opt_in")
    path = "/api/profile-subscription-bulk-create-jobs"
    api.call("POST", path, subscribe_body(["a@example.com"], single))
    api.call("POST", path, subscribe_body(["b@example.com"], double))
    unknown = api.call("POST", path, subscribe_body(["c@example.com"], "NoSuch"))
    assert app.list_members(single) == {app.profile_by_email("a@example.com")["id"]}
    assert app.list_members(double) == set()
    assert unknown.status_code == 400


def test_bulk_unsubscribe_is_global_and_limited_to_100(api: Client, app: KlaviyoSandbox) -> None:
    app.add_profile("a@example.com", subscribed=True)
    row = {
        "type": "profile",
        "attributes": {
            "email": "a@example.com",
            "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}},
        },
    }
    body = {
        "data": {
            "type": "profile-subscription-bulk-delete-job",
            "attributes": {"profiles": {"data": [row]}},
        }
    }
    response = api.call("POST", "/api/profile-subscription-bulk-delete-jobs", body)
    body["data"]["attributes"]["profiles"]["data"] = [row] * 101
    too_many = api.call("POST", "/api/profile-subscription-bulk-delete-jobs", body)
    assert response.status_code == 202 and too_many.status_code == 400
    assert (
        app.profile_by_email("a@example.com")["subscriptions"]["email"]["marketing"]["consent"]
        == "UNSUBSCRIBED"
    )
    assert len(app.events("Unsubscribed from Email Marketing")) == 1
