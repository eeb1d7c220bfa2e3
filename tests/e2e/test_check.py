"""`kommo-sync check`: every local config check, then every remote one (credentials, the Klaviyo
key's read scopes, the audience and lists, the Kommo pipelines and fields, room for the merge
fields), one line each, without writing anything anywhere; exit 0, 2 (a key is wrong) or 4 (a
vendor unreachable or refusing the credentials)."""

import json
import socket

import psycopg
import pytest

from kommo_sync.sandbox.faults import Fault
from kommo_sync.state import pg_location
from tests.conftest import assert_no_secret


@pytest.fixture
def ready(world, sales):
    """An account that passes: both destinations, a Sales pipeline, a won list in Klaviyo."""
    world.customers = world.klaviyo.add_list("Customers")
    world.with_mailchimp().with_klaviyo(lists_by_stage={"won": world.customers})
    world.raw["kommo"]["pipelines"] = ["Sales", sales]
    return world


def checked(world, *args):
    """Run `check`; nothing may be written to any sandbox nor to the state file."""
    result = world.cli("check", *args)
    assert "Traceback" not in result.output
    assert (world.kommo.writes(), world.mailchimp.writes(), world.klaviyo.writes()) == ([], [], [])
    assert not (world.tmp / "state.db").exists()
    assert_no_secret(result.output)
    return result


def failed_lines(result):
    return [line for line in result.stdout.splitlines() if line.startswith("failed")]


def test_a_ready_account_passes_every_check_in_one_line_each_and_nothing_is_written(ready, sales):
    kommo = ready.kommo
    result = checked(ready)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"ok     config: {ready.config_path}: every key is valid (URL shapes, https, "
        "the Mailchimp data center, region and currency codes)",
        f"ok     state: {ready.tmp / 'state.db'}: none yet, the first run creates it",
        "ok     kommo.token: Kommo accepted the token "
        f"(2 pipelines, {len(kommo.custom_fields)} contact fields)",
        f"ok     kommo.pipelines[0]: pipeline 'Sales' (id {sales})",
        f"ok     kommo.pipelines[1]: pipeline 'Sales' (id {sales})",
        "ok     kommo.consent_field: 'Email consent', a checkbox field "
        f"(id {kommo.consent_field_id})",
        f"ok     kommo.lead_source_field: 'Lead source' (id {kommo.lead_source_field_id})",
        "ok     mailchimp.api_key: Mailchimp accepted the key (1 audience)",
        f"ok     mailchimp.list_id: audience 'CRM contacts' (id {ready.list_id})",
        "ok     mailchimp.merge_fields: FNAME, LNAME, PHONE exist; the first run creates "
        "COMPANY, LEADSOURCE (6 of Mailchimp's 30 merge fields)",
        "ok     klaviyo.api_key: Klaviyo accepted the key; it can read lists and profiles "
        "(write scopes show only when a run writes)",
        f"ok     klaviyo.list_id: list 'CRM Leads' (id {ready.klaviyo_list})",
        f"ok     klaviyo.lists_by_stage.won: list 'Customers' (id {ready.customers})",
        "all 13 checks passed",
    ]


def test_a_misspelt_pipeline_exits_2_naming_the_key_and_the_close_name(ready, sales):
    ready.raw["kommo"]["pipelines"] = ["Salse", 999, "Leads"]
    result = checked(ready)
    assert result.exit_code == 2
    assert failed_lines(result) == [
        "failed kommo.pipelines[0]: no pipeline 'Salse' (did you mean 'Sales'?)",
        "failed kommo.pipelines[1]: no pipeline with id 999 (pipelines: "
        f"'Leads' (id {sales - 1}), 'Sales' (id {sales}))",
    ]
    assert result.stdout.splitlines()[-1] == "2 of 14 checks failed"


def test_without_pipelines_the_check_says_every_pipeline_is_synced(ready):
    del ready.raw["kommo"]["pipelines"]
    result = checked(ready)
    assert result.exit_code == 0
    assert (
        "ok     kommo.pipelines: not set: every pipeline is synced ('Leads', 'Sales')"
        in result.stdout
    )


def test_missing_kommo_fields_exit_2_naming_each_key(ready):
    ready.raw["kommo"].update(consent_field="Consent", lead_source_field="Do not call")
    ready.kommo.add_custom_field("Source", "text")
    result = checked(ready)
    assert result.exit_code == 2
    lines = failed_lines(result)
    assert [line.split(":")[0] for line in lines] == ["failed kommo.consent_field"]
    assert lines[0].startswith(
        "failed kommo.consent_field: no contact field 'Consent' in this Kommo account"
    )
    assert "ok     kommo.lead_source_field: 'Do not call' (id " in result.stdout


def test_a_consent_field_that_is_not_a_checkbox_fails(ready):
    ready.raw["kommo"]["consent_field"] = "Lead source"
    result = checked(ready)
    assert failed_lines(result) == [
        "failed kommo.consent_field: Kommo field 'Lead source' is a text field, not a checkbox"
    ]


def test_a_wrong_audience_and_list_exit_2_with_what_the_account_holds(ready):
    web_id = ready.mailchimp.audiences[ready.list_id].web_id
    ready.raw["mailchimp"]["list_id"] = str(web_id)
    ready.raw["klaviyo"]["list_id"] = "CRM Leads"
    ready.raw["klaviyo"]["lists_by_stage"] = {"won": ready.customers[:-1]}
    result = checked(ready)
    assert result.exit_code == 2
    assert failed_lines(result) == [
        f"failed mailchimp.list_id: no audience '{web_id}': "
        "that is the web id of audience 'CRM contacts'; "
        f"its API id is '{ready.list_id}'",
        "failed klaviyo.list_id: no list 'CRM Leads': that is the name of a list; its id is "
        f"'{ready.klaviyo_list}'",
        f"failed klaviyo.lists_by_stage.won: no list '{ready.customers[:-1]}' (did you mean "
        f"'{ready.customers}'? lists: 'CRM Leads' (id {ready.klaviyo_list}), "
        f"'Customers' (id {ready.customers}))",
    ]
    assert (
        "mailchimp.merge_fields" not in result.stdout
    )  # not checked against an audience not found


def test_merge_fields_past_mailchimps_limit_of_30_exit_2(ready):
    for n in range(25):
        ready.mailchimp.add_merge_field(ready.list_id, f"EXTRA{n}", f"Extra {n}")
    result = checked(ready)
    assert result.exit_code == 2
    assert failed_lines(result) == [
        "failed mailchimp.merge_fields: the audience has 29 merge fields and the config needs "
        "2 more (COMPANY, LEADSOURCE), past Mailchimp's limit of 30: delete some in Mailchimp or "
        "map fewer in mailchimp.merge_fields"
    ]


def test_a_refused_token_exits_4_and_the_other_vendors_are_still_checked(ready):
    ready.kommo.token = "another-token"
    result = checked(ready)
    assert result.exit_code == 4
    assert failed_lines(result) == [
        "failed kommo.token: Kommo refused GET /api/v4/leads/pipelines (HTTP 401: Unauthorized: "
        "Invalid user name or password); the long-lived token has expired or was revoked: "
        "generate a new one in the private integration's 'Keys and scopes' tab and update "
        "KOMMO_TOKEN; pipelines and fields not checked"
    ]
    assert "ok     mailchimp.list_id" in result.stdout and "ok     klaviyo.list_id" in result.stdout


def test_an_unreachable_vendor_exits_4_naming_its_base_url(ready):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    ready.raw["mailchimp"]["base_url"] = f"http://127.0.0.1:{port}/3.0"
    result = checked(ready)
    assert result.exit_code == 4
    assert failed_lines(result) == [
        "failed mailchimp.base_url: Mailchimp: ConnectionError on GET /lists (after 5 attempts); "
        "the next run continues; audience and merge fields not checked"
    ]


def test_a_klaviyo_key_that_cannot_read_profiles_exits_4_naming_the_scope(ready):
    denied = {
        "errors": [
            {
                "id": "x",
                "status": 403,
                "code": "permission_denied",
                "title": "Permission denied",
                "detail": "You do not have permission to perform this action.",
                "source": {},
            }
        ]
    }
    ready.klaviyo.faults.add(
        Fault(method="GET", path="^/api/profiles", status=403, body=denied, times=0)
    )
    result = checked(ready)
    assert result.exit_code == 4
    assert failed_lines(result) == [
        "failed klaviyo.api_key: the key may not read profiles (it needs the profiles:read "
        "scope; a run needs profiles, lists, events and subscriptions): You do not have "
        "permission to perform this action."
    ]


def test_a_wrong_config_key_is_one_failed_line_and_no_request_is_sent(ready):
    ready.raw["kommo"]["base_url"] += "/api/v4"
    result = checked(ready)
    assert result.exit_code == 2
    base = ready.servers[0].url
    assert result.stdout.splitlines() == [
        f"failed kommo.base_url: give the account's address without /api/v4, like {base}",
        "1 of 1 checks failed",
    ]
    assert (ready.kommo.log, ready.mailchimp.log, ready.klaviyo.log) == ([], [], [])


def test_check_json_holds_every_check_with_its_key_outcome_and_the_exit_code(ready):
    ready.raw["kommo"]["pipelines"] = ["Salse"]
    result = checked(ready, "--json")
    document = json.loads(result.stdout)
    assert result.exit_code == document["exit_code"] == 2
    assert [(c["key"], c["ok"], c["exit_code"]) for c in document["checks"]] == [
        ("config", True, 0),
        ("state", True, 0),
        ("kommo.token", True, 0),
        ("kommo.pipelines[0]", False, 2),
        ("kommo.consent_field", True, 0),
        ("kommo.lead_source_field", True, 0),
        ("mailchimp.api_key", True, 0),
        ("mailchimp.list_id", True, 0),
        ("mailchimp.merge_fields", True, 0),
        ("klaviyo.api_key", True, 0),
        ("klaviyo.list_id", True, 0),
        ("klaviyo.lists_by_stage.won", True, 0),
    ]
    assert document["checks"][3]["message"] == "no pipeline 'Salse' (did you mean 'Sales'?)"


def test_every_field_map_entry_is_found_in_kommo_or_named_with_the_closest_name(ready):
    ready.kommo.add_custom_field("Customer tier", "select", enum_values=("Gold", "Silver"))
    ready.kommo.add_custom_field("Renewal date", "date", entity="leads")
    ready.raw["mailchimp"]["fields"] = [
        {"from": "contact.Customer tier", "to": "TIER"},
        {"from": "lead.price", "to": "DEALVALUE"},
    ]
    ready.raw["klaviyo"]["fields"] = [{"from": "lead.Renewal dat", "to": "renewal_date"}]
    result = checked(ready)
    assert result.exit_code == 2
    assert (
        "ok     mailchimp.fields[0].from: contact field 'Customer tier' (select, id "
        in result.stdout
    )
    assert (
        "ok     mailchimp.fields[1].from: the lead's price (built in, as price) → DEALVALUE"
        in result.stdout
    )
    [line] = [line for line in failed_lines(result) if "fields" in line]
    assert line == (
        "failed klaviyo.fields[0].from: Kommo has no lead field 'Renewal dat'; "
        "did you mean Renewal date?"
    )


@pytest.mark.parametrize("world", ["postgres"], indirect=True)
def test_a_postgres_state_is_checked_by_reaching_its_schema_and_nothing_is_created(ready):
    result = checked(ready)
    location = pg_location(ready.config())
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == (
        f"ok     state: {location.where()}: reachable, a kommo-sync state this release can use"
    )
    with psycopg.connect(location.url) as db:
        found = db.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (location.schema,)
        ).fetchone()
    assert found is None  # the schema's creation was rolled back


def test_an_unreachable_postgres_state_fails_the_check_naming_the_key_not_the_password(
    ready, tmp_path
):
    ready.raw["state"] = f"postgresql://sync:pg-pass-77@/crm?host={tmp_path}"
    result = checked(ready)
    assert result.exit_code == 2
    [line] = [line for line in failed_lines(result) if "state:" in line]
    assert (
        "state: cannot connect to PostgreSQL (schema kommo_sync_" in line and " of crm on " in line
    )
    assert "pg-pass-77" not in result.output
