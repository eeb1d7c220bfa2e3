"""The Mailchimp sandbox behaves like Marketing API v3: shapes, errors, paging, limits, quirks."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.mailchimp import MailchimpSandbox, subscriber_hash
from kommo_sync.sandbox.network import uniform
from kommo_sync.sandbox.server import App, Request, Response, SandboxServer

KEY = "sandboxkey0000000000000000000000-us1"
START = 1_767_225_600.0  # FakeClock's default start, 2026-01-01T00:00:00Z


class Api:
    """A tiny client: Basic auth with any username, paths relative to /3.0."""

    def __init__(self, base: str, key: str = KEY):
        self.base = base
        self.session = requests.Session()
        self.session.auth = ("anystring", key)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.session.request(
            method, self.base + "/3.0" + path, json=body, params=params or None, timeout=5
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.call("GET", path, **params)

    def post(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.call("POST", path, body, **params)

    def put(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.call("PUT", path, body, **params)

    def patch(self, path: str, body: Any = None) -> requests.Response:
        return self.call("PATCH", path, body)


class Switchboard(App):
    """Forwards to the current test's sandbox, so one server serves the whole module."""

    target: App

    def dispatch(self, request: Request) -> Response:
        return self.target.dispatch(request)


@pytest.fixture(scope="module")
def switchboard() -> Iterator[tuple[Switchboard, SandboxServer]]:
    board = Switchboard()
    with SandboxServer(board) as srv:
        yield board, srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock, switchboard: tuple[Switchboard, SandboxServer]) -> MailchimpSandbox:
    sandbox = MailchimpSandbox(clock)
    switchboard[0].target = sandbox
    return sandbox


@pytest.fixture
def server(app: MailchimpSandbox, switchboard: tuple[Switchboard, SandboxServer]) -> SandboxServer:
    return switchboard[1]


@pytest.fixture
def api(server: SandboxServer) -> Api:
    return Api(server.url)


@pytest.fixture
def list_id(app: MailchimpSandbox) -> str:
    return app.add_list("Customers")


def member_path(list_id: str, email: str) -> str:
    return f"/lists/{list_id}/members/{subscriber_hash(email)}"


def assert_problem(response: requests.Response, status: int, title: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail", "instance"} <= body.keys()
    assert (body["status"], body["title"]) == (status, title)
    assert response.headers["X-Request-Id"] == body["instance"]
    return body


# ----- auth, routing, injected failures -----


def test_auth_missing_wrong_basic_and_bearer(server: SandboxServer, list_id: str) -> None:
    url = server.url + "/3.0/lists"
    assert_problem(requests.get(url, timeout=5), 401, "API Key Missing")
    assert_problem(requests.get(url, auth=("x", "nope-us1"), timeout=5), 401, "API Key Invalid")
    assert requests.get(url, auth=("whatever", KEY), timeout=5).status_code == 200
    bearer = requests.get(url, headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
    assert bearer.json()["lists"][0]["id"] == list_id


def test_unknown_path_is_404_and_wrong_verb_405(api: Api, list_id: str) -> None:
    detail = assert_problem(api.get("/nothing/here"), 404, "Resource Not Found")["detail"]
    assert detail == "The requested resource could not be found."
    assert_problem(api.call("DELETE", f"/lists/{list_id}/merge-fields"), 405, "Method Not Allowed")
    assert_problem(api.get("/lists/nolist/members"), 404, "Resource Not Found")


def test_fail_next_injects_problem_then_bodiless_then_recovers(
    app: MailchimpSandbox, api: Api
) -> None:
    app.fail_next(1, 500)
    app.fail_next(1, 429, body="")
    assert_problem(api.get("/lists"), 500, "Internal Server Error")
    bodiless = api.get("/lists")
    assert (bodiless.status_code, bodiless.content) == (429, b"")
    assert api.get("/lists").status_code == 200


class GateClock(FakeClock):
    """Every simulated latency sleep blocks until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.sleeping = 0
        self._count = threading.Lock()

    def sleep(self, seconds: float) -> None:
        with self._count:
            self.sleeping += 1
        self.gate.wait(5)


def test_more_than_ten_simultaneous_requests_get_429() -> None:
    clock = GateClock()
    app = MailchimpSandbox(clock)
    app.latency = uniform(0.1, 0.1)
    statuses: list[requests.Response] = []
    with SandboxServer(app) as srv:
        threads = [
            threading.Thread(
                target=lambda: statuses.append(
                    requests.get(srv.url + "/3.0/lists", auth=("u", KEY), timeout=10)
                )
            )
            for _ in range(12)
        ]
        for thread in threads:
            thread.start()
        while clock.sleeping < 12:
            threading.Event().wait(0.01)
        assert app.in_flight == 10
        clock.gate.set()
        for thread in threads:
            thread.join()
    codes = sorted(response.status_code for response in statuses)
    assert codes == [200] * 10 + [429] * 2
    throttled = next(r for r in statuses if r.status_code == 429)
    body = assert_problem(throttled, 429, "Too Many Requests")
    assert body["detail"] == "You have exceeded the limit of 10 simultaneous connections."
    assert app.in_flight == 0 and app.peak_in_flight == 10


# ----- single member upsert -----


def test_put_creates_member_with_the_spec_shape(api: Api, list_id: str, clock: FakeClock) -> None:
    email = "Ada.Lovelace@Gmail.com "
    response = api.put(
        member_path(list_id, email),
        {
            "email_address": email,
            "status_if_new": "subscribed",
            "merge_fields": {"FNAME": "Ada", "PHONE": "+44 20 7946 0000"},
            "tags": ["Customer"],
        },
    )
    assert response.status_code == 200
    member = response.json()
    assert member["id"] == hashlib.md5(b"ada.lovelace@gmail.com").hexdigest()
    assert member["email_address"] == "Ada.Lovelace@Gmail.com"
    assert member["status"] == "subscribed" and member["list_id"] == list_id
    assert member["merge_fields"] == {
        "FNAME": "Ada",
        "LNAME": "",
        "ADDRESS": "",
        "PHONE": "+44 20 7946 0000",
    }
    assert [tag["name"] for tag in member["tags"]] == ["Customer"] and member["tags_count"] == 1
    assert member["last_changed"] == "2026-01-01T00:00:00+00:00"
    assert {"unique_email_id", "contact_id", "web_id", "timestamp_opt"} <= member.keys()
    assert api.get(member_path(list_id, email)).json()["id"] == member["id"]
    assert api.get(f"/lists/{list_id}/members/ada.lovelace%40gmail.com").status_code == 200


def test_get_unknown_member_is_404(api: Api, list_id: str) -> None:
    assert_problem(api.get(member_path(list_id, "ghost@gmail.com")), 404, "Resource Not Found")


def test_put_requires_email_address_and_status_if_new(api: Api, list_id: str) -> None:
    path = member_path(list_id, "ann@gmail.com")
    body = assert_problem(
        api.put(path, {"email_address": "ann@gmail.com"}), 400, "Invalid Resource"
    )
    assert body["errors"] == [
        {"field": "status_if_new", "message": "Required fields were not provided: status_if_new"}
    ]
    assert_problem(
        api.put(path, {"email_address": "ann@gmail.com", "status_if_new": "maybe"}),
        400,
        "Invalid Resource",
    )


@pytest.mark.parametrize(
    "email", ["test@example.com", "bob@test.com", "no-at-sign", "a@@gmail.com", "x@localhost"]
)
def test_put_refuses_fake_looking_addresses(api: Api, list_id: str, email: str) -> None:
    response = api.put(
        member_path(list_id, email), {"email_address": email, "status_if_new": "subscribed"}
    )
    detail = assert_problem(response, 400, "Invalid Resource")["detail"]
    assert detail == f"{email} looks fake or invalid, please enter a real email address."


def test_delete_archives_a_member_and_a_put_brings_it_back_as_it_was(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    for email in ("kept@gmail.com", "gone@gmail.com"):
        app.add_member(list_id, email)
    app.unsubscribe(list_id, "gone@gmail.com")
    for email in ("kept@gmail.com", "gone@gmail.com"):
        assert api.call("DELETE", member_path(list_id, email)).status_code == 204
        assert app.member(list_id, email)["status"] == "archived"  # type: ignore[index]
    assert api.get(f"/lists/{list_id}/members").json()["total_items"] == 0
    archived = api.get(f"/lists/{list_id}/members", status="archived").json()
    assert archived["total_items"] == 2
    assert_problem(
        api.call("DELETE", member_path(list_id, "kept@gmail.com")), 405, "Method Not Allowed"
    )
    path = member_path(list_id, "kept@gmail.com")
    assert_problem(api.patch(path, {"merge_fields": {"FNAME": "K"}}), 404, "Resource Not Found")
    body = {"status_if_new": "subscribed"}
    back = api.put(path, {"email_address": "kept@gmail.com", **body}).json()
    assert back["status"] == "subscribed"
    gone = member_path(list_id, "gone@gmail.com")
    refused = api.put(gone, {"email_address": "gone@gmail.com", **body, "status": "subscribed"})
    assert_problem(refused, 400, "Member In Compliance State")
    assert app.member(list_id, "gone@gmail.com")["status"] == "archived"  # type: ignore[index]
    kept = api.put(gone, {"email_address": "gone@gmail.com", **body}).json()
    assert kept["status"] == "unsubscribed"


def test_status_if_new_never_resubscribes_and_status_is_a_compliance_error(
    app: MailchimpSandbox, api: Api, list_id: str, clock: FakeClock
) -> None:
    email = "gone@gmail.com"
    app.add_member(list_id, email)
    app.unsubscribe(list_id, email, reason="I never signed up for this mailing list")
    clock.advance(60)
    path = member_path(list_id, email)
    kept = api.put(
        path,
        {"email_address": email, "status_if_new": "subscribed", "merge_fields": {"FNAME": "Gone"}},
    ).json()
    assert kept["status"] == "unsubscribed" and kept["merge_fields"]["FNAME"] == "Gone"
    assert kept["unsubscribe_reason"] == "I never signed up for this mailing list"
    refused = api.put(
        path, {"email_address": email, "status_if_new": "subscribed", "status": "subscribed"}
    )
    detail = assert_problem(refused, 400, "Member In Compliance State")["detail"]
    assert detail.startswith(email + " is in a compliance state")
    assert_problem(api.patch(path, {"status": "subscribed"}), 400, "Member In Compliance State")
    assert api.patch(path, {"status": "pending"}).json()["status"] == "pending"


def test_cleaned_member_cannot_go_pending_either(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "bounce@gmail.com")
    app.clean(list_id, "bounce@gmail.com")
    response = api.patch(member_path(list_id, "bounce@gmail.com"), {"status": "pending"})
    assert_problem(response, 400, "Member In Compliance State")


def test_merge_fields_must_exist_and_required_ones_be_given(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    path = member_path(list_id, "kim@gmail.com")
    unknown = api.put(
        path,
        {
            "email_address": "kim@gmail.com",
            "status_if_new": "subscribed",
            "merge_fields": {"COMPANY": "Acme"},
        },
    )
    body = assert_problem(unknown, 400, "Invalid Resource")
    assert body["detail"] == "Your merge fields were invalid."
    assert body["errors"][0]["field"] == "COMPANY"
    app.add_merge_field(list_id, "SOURCE", "Lead source", required=True)
    missing = api.put(path, {"email_address": "kim@gmail.com", "status_if_new": "subscribed"})
    assert assert_problem(missing, 400, "Invalid Resource")["errors"] == [
        {"field": "SOURCE", "message": "Please enter a value"}
    ]
    skipped = api.put(
        path,
        {"email_address": "kim@gmail.com", "status_if_new": "subscribed"},
        skip_merge_validation="true",
    )
    assert skipped.status_code == 200


def test_put_at_old_hash_with_new_email_renames_the_member(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    old = app.add_member(list_id, "old@gmail.com", tags=["Customer"])
    app.add_member(list_id, "taken@gmail.com")
    renamed = api.put(
        member_path(list_id, "old@gmail.com"),
        {"email_address": "new@gmail.com", "status_if_new": "subscribed"},
    ).json()
    assert renamed["id"] == subscriber_hash("new@gmail.com")
    assert renamed["contact_id"] == old["contact_id"]
    assert renamed["unique_email_id"] == old["unique_email_id"]
    assert api.get(member_path(list_id, "old@gmail.com")).status_code == 404
    assert app.member_tags(list_id, "new@gmail.com") == {"Customer"}
    collision = api.put(
        member_path(list_id, "new@gmail.com"),
        {"email_address": "taken@gmail.com", "status_if_new": "subscribed"},
    )
    assert_problem(collision, 400, "Member Exists")


def test_put_tags_apply_only_when_the_member_is_created(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "old@gmail.com")
    api.put(
        member_path(list_id, "old@gmail.com"),
        {"email_address": "old@gmail.com", "status_if_new": "subscribed", "tags": ["Lead"]},
    )
    assert app.member_tags(list_id, "old@gmail.com") == set()


def test_forgotten_address_cannot_be_re_added(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "gdpr@gmail.com")
    app.forget(list_id, "gdpr@gmail.com")
    response = api.put(
        member_path(list_id, "gdpr@gmail.com"),
        {"email_address": "gdpr@gmail.com", "status_if_new": "subscribed"},
    )
    detail = assert_problem(response, 400, "Forgotten Email Not Subscribed")["detail"]
    assert detail.startswith("gdpr@gmail.com was permanently deleted")


def test_post_members_is_create_only(app: MailchimpSandbox, api: Api, list_id: str) -> None:
    app.add_member(list_id, "here@gmail.com")
    response = api.post(
        f"/lists/{list_id}/members", {"email_address": "here@gmail.com", "status": "subscribed"}
    )
    assert_problem(response, 400, "Member Exists")


# ----- member tags -----


def test_member_tags_post_returns_204_and_only_touches_named_tags(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "t@gmail.com", tags=["Mine", "Lead"])
    path = member_path(list_id, "t@gmail.com") + "/tags"
    response = api.post(
        path,
        {
            "tags": [
                {"name": "Customer", "status": "active"},
                {"name": "Lead", "status": "inactive"},
            ]
        },
    )
    assert (response.status_code, response.content) == (204, b"")
    assert app.member_tags(list_id, "t@gmail.com") == {"Mine", "Customer"}
    listed = api.get(path, count=1000).json()
    assert listed["total_items"] == 2 and {"id", "name", "date_added"} <= listed["tags"][0].keys()


def test_wrongly_shaped_tags_body_is_a_silent_204(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "t@gmail.com")
    response = api.post(member_path(list_id, "t@gmail.com") + "/tags", {"tags": ["Customer"]})
    assert response.status_code == 204
    assert app.member_tags(list_id, "t@gmail.com") == set()


def test_member_tags_on_unknown_member_is_404(api: Api, list_id: str) -> None:
    response = api.post(
        member_path(list_id, "nobody@gmail.com") + "/tags",
        {"tags": [{"name": "X", "status": "active"}]},
    )
    assert_problem(response, 404, "Resource Not Found")


# ----- batch subscribe POST /lists/{list_id} -----


def test_batch_subscribe_reports_per_address_results(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "exists@gmail.com")
    response = api.post(
        f"/lists/{list_id}",
        {
            "members": [
                {"email_address": "new@gmail.com", "status_if_new": "subscribed", "tags": ["Lead"]},
                {"email_address": "exists@gmail.com", "status_if_new": "subscribed"},
                {"email_address": "fake@example.com", "status_if_new": "subscribed"},
            ]
        },
    )
    body = response.json()
    assert (body["total_created"], body["total_updated"], body["error_count"]) == (1, 0, 2)
    exists, fake = body["errors"]
    assert exists["error_code"] == "ERROR_CONTACT_EXISTS"
    assert exists["error"].startswith("exists@gmail.com is already a list member")
    assert fake["error_code"] == "ERROR_GENERIC" and fake["field"] == "email_address"
    assert "looks fake or invalid" in fake["error"]
    assert app.member_tags(list_id, "new@gmail.com") == {"Lead"}


def test_batch_subscribe_update_existing_keeps_consent_and_tags(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "out@gmail.com", tags=["Mine"])
    app.unsubscribe(list_id, "out@gmail.com")
    body = api.post(
        f"/lists/{list_id}",
        {
            "update_existing": True,
            "members": [
                {
                    "email_address": "out@gmail.com",
                    "status_if_new": "subscribed",
                    "tags": ["Lead"],
                    "merge_fields": {"FNAME": "Out"},
                },
                {"email_address": "out@gmail.com", "status": "subscribed"},
            ],
        },
    ).json()
    assert body["updated_members"][0]["status"] == "unsubscribed"
    assert app.member_tags(list_id, "out@gmail.com") == {"Mine"}
    assert body["errors"][0]["error"].startswith("out@gmail.com appears more than once")
    again = api.post(
        f"/lists/{list_id}",
        {
            "update_existing": True,
            "members": [{"email_address": "out@gmail.com", "status": "subscribed"}],
        },
    ).json()
    assert "compliance state" in again["errors"][0]["error"]


def test_batch_subscribe_sync_tags_wipes_other_tags(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "sync@gmail.com", tags=["Users Own", "Lead"])
    api.post(
        f"/lists/{list_id}",
        {
            "update_existing": True,
            "sync_tags": True,
            "members": [
                {
                    "email_address": "sync@gmail.com",
                    "status_if_new": "subscribed",
                    "tags": ["Customer"],
                }
            ],
        },
    )
    assert app.member_tags(list_id, "sync@gmail.com") == {"Customer"}


def test_batch_subscribe_rejects_more_than_500(api: Api, list_id: str) -> None:
    members = [{"email_address": f"p{i}@gmail.com", "status": "subscribed"} for i in range(501)]
    assert_problem(api.post(f"/lists/{list_id}", {"members": members}), 400, "Invalid Resource")


# ----- merge fields -----


def test_merge_fields_defaults_paging_and_validation(api: Api, list_id: str) -> None:
    path = f"/lists/{list_id}/merge-fields"
    defaults = api.get(path).json()
    assert [f["tag"] for f in defaults["merge_fields"]] == ["FNAME", "LNAME", "ADDRESS", "PHONE"]
    for number in range(8):
        created = api.post(
            path, {"tag": f"EXTRA{number}", "name": f"Extra {number}", "type": "text"}
        )
        assert created.json()["merge_id"] == 5 + number
    page = api.get(path).json()
    assert (len(page["merge_fields"]), page["total_items"]) == (10, 12)
    assert len(api.get(path, count=1000).json()["merge_fields"]) == 12
    for bad_tag in ("company", "TOOLONGTAG11"):
        response = api.post(path, {"tag": bad_tag, "name": "X", "type": "text"})
        assert_problem(response, 400, "Invalid Resource")
    assert_problem(
        api.post(path, {"tag": "FNAME", "name": "Again", "type": "text"}), 400, "Invalid Resource"
    )
    assert api.post(path, {"name": "No tag", "type": "text"}).json()["tag"] == "MMERGE13"


# ----- tags as static segments -----


def test_segments_create_list_and_bulk_add_remove(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    app.add_member(list_id, "a@gmail.com")
    app.add_member(list_id, "b@gmail.com", tags=["Lead"])
    created = api.post(f"/lists/{list_id}/segments", {"name": "Customer", "static_segment": []})
    segment = created.json()
    assert (segment["type"], segment["member_count"]) == ("static", 0)
    assert_problem(
        api.post(f"/lists/{list_id}/segments", {"name": "customer"}), 400, "Invalid Resource"
    )
    result = api.post(
        f"/lists/{list_id}/segments/{segment['id']}",
        {
            "members_to_add": ["a@gmail.com", "b@gmail.com", "stranger@gmail.com"],
            "members_to_remove": [],
        },
    ).json()
    assert (result["total_added"], result["total_removed"], result["error_count"]) == (2, 0, 1)
    assert result["errors"][0]["email_addresses"] == ["stranger@gmail.com"]
    api.post(f"/lists/{list_id}/segments/{segment['id']}", {"members_to_remove": ["b@gmail.com"]})
    assert app.member_tags(list_id, "b@gmail.com") == {"Lead"}
    listed = api.get(f"/lists/{list_id}/segments", type="static", count=1000).json()
    assert {(s["name"], s["member_count"]) for s in listed["segments"]} == {
        ("Lead", 1),
        ("Customer", 1),
    }
    too_many = {"members_to_add": [f"x{i}@gmail.com" for i in range(501)]}
    assert_problem(
        api.post(f"/lists/{list_id}/segments/{segment['id']}", too_many), 400, "Invalid Resource"
    )


def test_tag_search_matches_prefixes(app: MailchimpSandbox, api: Api, list_id: str) -> None:
    for name in ("Lost Lead", "Lost Leads", "Customer"):
        app.add_tag(list_id, name)
    found = api.get(f"/lists/{list_id}/tag-search", name="Lost Lead").json()
    assert sorted(tag["name"] for tag in found["tags"]) == ["Lost Lead", "Lost Leads"]
    assert api.get(f"/lists/{list_id}/tag-search").json()["total_items"] == 3


# ----- members listing (pulling unsubscribes back) -----


def test_members_listing_filters_pages_and_selects_fields(
    app: MailchimpSandbox, api: Api, list_id: str
) -> None:
    for number in range(15):
        app.add_member(list_id, f"m{number}@gmail.com", last_changed=START + number)
    app.unsubscribe(list_id, "m3@gmail.com", at=START + 100)
    app.unsubscribe(list_id, "m4@gmail.com", at=START + 200)
    path = f"/lists/{list_id}/members"
    first = api.get(path).json()
    assert (len(first["members"]), first["total_items"]) == (10, 15)
    assert len(api.get(path, offset=10, count=10).json()["members"]) == 5
    changed = api.get(
        path,
        status="unsubscribed",
        since_last_changed="2026-01-01T00:01:40+00:00",
        sort_field="last_changed",
        sort_dir="ASC",
    ).json()
    assert [m["email_address"] for m in changed["members"]] == ["m4@gmail.com"]
    slim = api.get(
        path,
        status="unsubscribed",
        sort_field="last_changed",
        sort_dir="ASC",
        fields="members.email_address,members.unsubscribe_reason,total_items",
    ).json()
    assert slim == {
        "members": [
            {
                "email_address": "m3@gmail.com",
                "unsubscribe_reason": "I no longer want to receive these emails",
            },
            {
                "email_address": "m4@gmail.com",
                "unsubscribe_reason": "I no longer want to receive these emails",
            },
        ],
        "total_items": 2,
    }
    assert_problem(
        api.get(path, since_last_changed="2026-01-01T00:00:00 00:00"), 400, "Invalid Resource"
    )


def test_members_count_is_capped_at_1000(app: MailchimpSandbox, api: Api, list_id: str) -> None:
    for number in range(1005):
        app.add_member(list_id, f"bulk{number}@gmail.com")
    body = api.get(f"/lists/{list_id}/members", count=5000, fields="members.id").json()
    assert len(body["members"]) == 1000


# ----- campaigns and email activity -----


def test_campaigns_and_email_activity_since(
    app: MailchimpSandbox, api: Api, list_id: str, clock: FakeClock
) -> None:
    campaign_id = app.add_campaign("January news", list_id, send_time=START + 10)
    app.add_campaign("Later", list_id, send_time=START + 10_000)
    clock.advance(3600)
    app.add_activity(campaign_id, "ann@gmail.com", "open", at=START + 100)
    app.add_activity(campaign_id, "ann@gmail.com", "click", at=START + 300, url="https://x.io")
    app.add_activity(campaign_id, "bob@gmail.com", "open", at=START + 50)
    sent = api.get("/campaigns", status="sent", since_send_time="2026-01-01T00:00:00+00:00").json()
    assert [c["id"] for c in sent["campaigns"]] == [campaign_id]
    activity = api.get(
        f"/reports/{campaign_id}/email-activity", since="2026-01-01T00:03:00+00:00"
    ).json()
    by_email = {e["email_address"]: e["activity"] for e in activity["emails"]}
    assert by_email["bob@gmail.com"] == []
    assert [(a["action"], a["url"]) for a in by_email["ann@gmail.com"]] == [
        ("click", "https://x.io")
    ]
    assert_problem(api.get("/reports/nope/email-activity"), 404, "Resource Not Found")


# ----- /batches -----


def read_archive(url: str) -> list[dict[str, Any]]:
    """No auth: the archive lives on a signed storage URL."""
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    results = []
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
        for entry in archive.getmembers():
            if entry.isfile():
                results.extend(json.load(archive.extractfile(entry)))
    return results


def test_batch_runs_on_the_clock_and_serves_a_tar_gz_of_results(
    app: MailchimpSandbox, api: Api, list_id: str, clock: FakeClock
) -> None:
    operations = [
        {
            "method": "PUT",
            "path": member_path(list_id, f"b{n}@gmail.com"),
            "operation_id": f"op{n}",
            "body": json.dumps({"email_address": f"b{n}@gmail.com", "status_if_new": "subscribed"}),
        }
        for n in range(60)
    ]
    operations.append(
        {
            "method": "PUT",
            "path": member_path(list_id, "obj@gmail.com"),
            "operation_id": "object-body",
            "body": {"email_address": "obj@gmail.com"},
        }
    )
    created = api.post("/batches", {"operations": operations}).json()
    assert (created["status"], created["total_operations"]) == ("pending", 61)
    assert created["response_body_url"] == ""
    clock.advance(1.5)
    assert api.get(f"/batches/{created['id']}").json()["status"] == "started"
    assert app.member(list_id, "b0@gmail.com") is None
    clock.advance(1.0)
    done = api.get(f"/batches/{created['id']}").json()
    assert (done["status"], done["finished_operations"], done["errored_operations"]) == (
        "finished",
        61,
        1,
    )
    results = {r["operation_id"]: r for r in read_archive(done["response_body_url"])}
    assert len(results) == 61
    assert json.loads(results["op7"]["response"])["email_address"] == "b7@gmail.com"
    assert results["object-body"]["status_code"] == 400
    assert app.member(list_id, "b59@gmail.com")["status"] == "subscribed"
    clock.advance(601)
    assert requests.get(done["response_body_url"], timeout=5).status_code == 403


def test_batches_run_one_at_a_time(api: Api, list_id: str, clock: FakeClock) -> None:
    operation = {"method": "GET", "path": f"/lists/{list_id}", "operation_id": "x"}
    first = api.post("/batches", {"operations": [operation] * 1000}).json()
    second = api.post("/batches", {"operations": [operation]}).json()
    clock.advance(3.0)
    assert api.get(f"/batches/{first['id']}").json()["status"] == "finished"
    assert api.get(f"/batches/{second['id']}").json()["status"] == "started"
    clock.advance(1.1)
    assert api.get(f"/batches/{second['id']}").json()["status"] == "finished"


def test_batch_operation_errors_come_back_in_the_archive(
    app: MailchimpSandbox, api: Api, list_id: str, clock: FakeClock
) -> None:
    app.add_member(list_id, "quit@gmail.com")
    app.unsubscribe(list_id, "quit@gmail.com")
    created = api.post(
        "/batches",
        {
            "operations": [
                {
                    "method": "PATCH",
                    "path": member_path(list_id, "quit@gmail.com"),
                    "operation_id": "resub",
                    "body": json.dumps({"status": "subscribed"}),
                },
                {
                    "method": "POST",
                    "path": member_path(list_id, "quit@gmail.com") + "/tags",
                    "operation_id": "tag",
                    "body": json.dumps({"tags": [{"name": "A", "status": "active"}]}),
                },
            ]
        },
    ).json()
    clock.advance(5)
    done = api.get(f"/batches/{created['id']}").json()
    results = {r["operation_id"]: r for r in read_archive(done["response_body_url"])}
    assert json.loads(results["resub"]["response"])["title"] == "Member In Compliance State"
    assert (results["tag"]["status_code"], results["tag"]["response"]) == (204, "")
    assert done["errored_operations"] == 2
