"""The Kommo sandbox serves the account, its users, tags on contacts, leads and companies (and
each entity type's tag list) and lost leads' reasons as Kommo API v4 does, over real HTTP."""

from __future__ import annotations

import pytest

from kommo_sync.clock import FakeClock
from kommo_sync.sandbox.kommo import LOST, KommoSandbox
from tests.sandbox import test_sandbox_kommo as base
from tests.sandbox.test_sandbox_kommo import Api
from tests.sandbox.test_sandbox_kommo_fields import add_record, fetched, in_window, listed

# The Kommo sandbox tests' fixtures, shared rather than copied.
clock, sandbox, api, sales = base.clock, base.sandbox, base.api, base.sales

NEW_PATHS = [
    "/account",
    "/users",
    "/leads/custom_fields",
    "/companies/custom_fields",
    "/contacts/tags",
    "/leads/tags",
    "/companies/tags",
    "/leads/loss_reasons",
    "/companies/1",
]


# ---- account -------------------------------------------------------------------------------


def test_account_settings_and_timezone_only_with_datetime_settings(api: Api) -> None:
    plain = api.get("/account").json()
    assert {k: plain[k] for k in ("id", "name", "subdomain", "country", "currency")} == {
        "id": 31361463,
        "name": "Sandbox",
        "subdomain": "sandbox",
        "country": "ES",
        "currency": "EUR",
    }
    assert plain["current_user_id"] == 8375357 and "_embedded" not in plain
    assert "timezone" not in plain
    settings = api.get("/account", {"with": "datetime_settings"}).json()["_embedded"]
    assert settings["datetime_settings"] == {
        "date_pattern": "d.m.Y H:i",
        "short_date_pattern": "d.m.Y",
        "short_time_pattern": "H:i",
        "date_format": "d.m.Y",
        "time_format": "H:i:s",
        "timezone": "Europe/Madrid",
        "timezone_offset": "+01:00",
    }


def test_account_timezone_is_settable_and_its_offset_follows_the_clock(
    api: Api, sandbox: KommoSandbox, clock: FakeClock
) -> None:
    def zone() -> tuple[str, str]:
        body = api.get("/account", {"with": "amojo_id,datetime_settings"}).json()
        settings = body["_embedded"]["datetime_settings"]
        return settings["timezone"], settings["timezone_offset"]

    clock.advance(182 * 86400)  # July: summer time in Madrid
    assert zone() == ("Europe/Madrid", "+02:00")
    sandbox.set_account(timezone="America/Sao_Paulo", currency="BRL", name="Filial")
    assert zone() == ("America/Sao_Paulo", "-03:00")
    assert api.get("/account").json()["currency"] == "BRL"
    with pytest.raises(TypeError):
        sandbox.set_account(language="es")
    with pytest.raises(KeyError):
        sandbox.set_account(timezone="Mars/Olympus")


# ---- users ---------------------------------------------------------------------------------


def test_users_are_paged_and_counted(api: Api, sandbox: KommoSandbox) -> None:
    added = [sandbox.add_user(f"User {n}", f"u{n}@example.org", lang="es") for n in range(4)]
    first = api.get("/users", {"limit": 2}).json()
    second = api.get("/users", {"limit": 2, "page": 2}).json()
    third = api.get("/users", {"limit": 2, "page": 3}).json()
    users = [u for body in (first, second, third) for u in body["_embedded"]["users"]]
    assert [u["id"] for u in users] == [8375357, *added]
    assert (first["_total_items"], first["_page_count"], second["_page"]) == (5, 3, 2)
    assert api.get("/users", {"limit": 2, "page": 4}).status_code == 204
    user = users[1]
    assert {k: user[k] for k in ("name", "email", "lang")} == {
        "name": "User 0",
        "email": "u0@example.org",
        "lang": "es",
    }
    assert user["rights"]["leads"]["view"] == "A" and user["rights"]["is_active"] is True
    assert users[0]["rights"]["is_admin"] and not user["rights"]["is_admin"]


@pytest.mark.parametrize("entity", ["contacts", "leads", "companies"])
def test_records_point_at_a_listed_responsible_user(
    api: Api, sandbox: KommoSandbox, clock: FakeClock, entity: str
) -> None:
    record_id = add_record(sandbox, entity)
    user_ids = {u["id"] for u in listed(api, "/users")}
    assert fetched(api, entity, record_id)["responsible_user_id"] in user_ids
    manager = sandbox.add_user("Manager", "m@example.org")
    clock.advance(30)
    sandbox.assign(entity, record_id, manager)
    record = fetched(api, entity, record_id)
    assert (record["responsible_user_id"], record["updated_at"]) == (manager, int(clock.now()))
    with pytest.raises(KeyError):
        sandbox.assign(entity, record_id, 1)


# ---- tags ----------------------------------------------------------------------------------


@pytest.mark.parametrize("entity", ["contacts", "leads", "companies"])
def test_tags_set_and_removed_show_in_the_record_and_move_updated_at(
    api: Api, sandbox: KommoSandbox, clock: FakeClock, entity: str
) -> None:
    record_id, start = add_record(sandbox, entity), int(clock.now())
    sandbox.tag(entity, record_id, "vip", "newsletter", at=start + 10)
    tags = fetched(api, entity, record_id)["_embedded"]["tags"]
    assert [(t["name"], t["color"]) for t in tags] == [("vip", None), ("newsletter", None)]
    assert in_window(api, entity, start + 10, start + 10) == [record_id]
    sandbox.tag(entity, record_id, "vip", at=start + 20)  # already there: no change
    sandbox.untag(entity, record_id, "vip", at=start + 30)
    record = fetched(api, entity, record_id)
    assert [t["name"] for t in record["_embedded"]["tags"]] == ["newsletter"]
    assert record["updated_at"] == start + 30
    assert in_window(api, entity, start + 15, start + 25) == []
    assert [t["name"] for t in listed(api, f"/{entity}/tags")] == ["vip", "newsletter"]


def test_each_entity_type_has_its_own_tag_ids_and_only_lead_tags_have_colours(
    api: Api, sandbox: KommoSandbox
) -> None:
    lead_vip = sandbox.add_tag("leads", "vip", color="FFCC66")
    contact_vip = sandbox.add_tag("contacts", "vip")
    assert lead_vip != contact_vip and sandbox.add_tag("contacts", "vip") == contact_vip
    assert listed(api, "/leads/tags") == [{"id": lead_vip, "name": "vip", "color": "FFCC66"}]
    assert api.get("/companies/tags").status_code == 204
    with pytest.raises(ValueError):
        sandbox.add_tag("contacts", "red", color="FF0000")


def test_tag_list_filters_and_pages(api: Api, sandbox: KommoSandbox) -> None:
    ids = [sandbox.add_tag("contacts", name) for name in ("Spring fair", "spring sale", "Autumn")]
    assert [t["id"] for t in listed(api, "/contacts/tags", query="SPRING")] == ids[:2]
    assert [t["id"] for t in listed(api, "/contacts/tags", **{"filter[name]": "Autumn"})] == [
        ids[2]
    ]
    assert listed(api, "/contacts/tags", **{"filter[name]": "autumn"}) == []
    by_id = listed(api, "/contacts/tags", **{"filter[id][]": [ids[0], ids[2]]})
    assert [t["id"] for t in by_id] == [ids[0], ids[2]]
    second = api.get("/contacts/tags", {"limit": 2, "page": 2}).json()
    assert [t["id"] for t in second["_embedded"]["tags"]] == [ids[2]]


# ---- loss reasons --------------------------------------------------------------------------


def test_a_lost_lead_carries_its_loss_reason(
    api: Api, sandbox: KommoSandbox, clock: FakeClock, sales: int
) -> None:
    assert api.get("/leads/loss_reasons").status_code == 204
    budget = sandbox.add_loss_reason("Insufficient budget")
    sandbox.add_loss_reason("Went silent")
    lead, other = sandbox.add_lead("Deal", 10, sales), sandbox.add_lead("Other", 5, sales)
    clock.advance(60)
    sandbox.move_lead(lead, LOST)
    sandbox.set_loss_reason(lead, budget)
    plain = fetched(api, "leads", lead)
    assert (plain["status_id"], plain["loss_reason_id"]) == (LOST, budget)
    assert "loss_reason" not in plain["_embedded"]
    rows = listed(api, "/leads", **{"with": "loss_reason,contacts"})
    embedded = {r["id"]: r["_embedded"] for r in rows}
    reason = embedded[lead]["loss_reason"]
    assert [(r["id"], r["name"], r["sort"]) for r in reason] == [(budget, "Insufficient budget", 0)]
    assert reason[0]["_links"]["self"]["href"].endswith(f"/api/v4/leads/loss_reasons/{budget}")
    assert "loss_reason" not in embedded[other] and "contacts" in embedded[other]
    reasons = api.get("/leads/loss_reasons").json()
    assert reasons["_total_items"] == 2
    assert [r["name"] for r in reasons["_embedded"]["loss_reasons"]] == [
        "Insufficient budget",
        "Went silent",
    ]
    with pytest.raises(KeyError):
        sandbox.set_loss_reason(lead, 1)


# ---- the same HTTP rules as every other endpoint -----------------------------------------


@pytest.mark.parametrize("path", NEW_PATHS)
def test_new_endpoints_need_the_token(api: Api, path: str) -> None:
    response = api.get(path, token=None)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("path", NEW_PATHS)
def test_new_endpoints_obey_injected_failures_and_the_rate_limit(
    api: Api, sandbox: KommoSandbox, path: str
) -> None:
    sandbox.fail_next(1, 500)
    assert api.get(path).json()["title"] == "ErrInternalServer"
    statuses = [api.get(path, pace=0.01).status_code for _ in range(8)]
    assert statuses[-1] == 429 and 429 not in statuses[:7]
