"""Kommo parsers replay cassettes whose responses are Kommo's documented examples."""

from pathlib import Path

import pytest
import vcr

from kommo_sync.clock import FakeClock
from kommo_sync.config import KommoConfig
from kommo_sync.errors import ConfigError, FatalError
from kommo_sync.kommo import KommoClient, iter_pages, kommo_http, resolve_fields
from kommo_sync.kommo_records import FieldMap, parse_contact, parse_lead

CASSETTES = Path(__file__).parent / "cassettes"
replay = vcr.VCR(
    cassette_library_dir=str(CASSETTES),
    record_mode="none",
    match_on=["method", "scheme", "host", "path", "query"],
    filter_headers=["authorization"],
)


@pytest.fixture
def kommo():
    config = KommoConfig(base_url="https://example.kommo.com", token="cassette-token")
    return KommoClient(kommo_http(config, FakeClock()))


@replay.use_cassette("kommo_documented_examples.yaml")
def test_contacts_page_parses_phone_company_and_enum_code(kommo):
    pages = list(kommo.changed("contacts", 0, 1_700_000_000))
    contact = parse_contact(pages[0][0], FieldMap())
    assert (contact.id, contact.first_name, contact.updated_at) == (406322, "Sam", 1686670710)
    assert contact.phone == "19651796212"
    assert contact.company_id == 406320
    assert contact.emails == () and contact.email is None
    assert contact.consent is None


@replay.use_cassette("kommo_documented_examples.yaml")
def test_legacy_amocrm_contact_with_enum_and_leads(kommo):
    [page] = list(kommo.by_ids("contacts", [3]))
    contact = parse_contact(page[0], FieldMap())
    assert (contact.first_name, contact.last_name, contact.phone) == ("Иван", "Иванов", "+79123")
    assert contact.company_id == 1


@replay.use_cassette("kommo_documented_examples.yaml", allow_playback_repeats=True)
def test_leads_page_ends_on_204_although_next_link_is_present(kommo):
    """The 204 is asked for once more (a stray 204 must not end a read early), then ends it."""
    params = {
        "filter[updated_at][from]": 0,
        "filter[updated_at][to]": 1_700_000_000,
        "order[id]": "asc",
        "with": "contacts",
    }
    pages = list(iter_pages(kommo.http, "/api/v4/leads", "leads", params, limit=2))
    assert [len(p) for p in pages] == [2]
    won, lost = (parse_lead(raw) for raw in pages[0])
    assert (won.status_id, won.price, won.pipeline_id, won.contact_ids) == (142, 46333, 1300, ())
    assert (lost.status_id, lost.main_contact_id, lost.contact_ids) == (143, 10971465, (10971465,))


@replay.use_cassette("kommo_documented_examples.yaml")
def test_pipelines_key_status_names_by_pipeline(kommo):
    catalog = kommo.catalog()
    pipeline = catalog.pipelines[3177727]
    assert pipeline.first_status_id == 32392156  # the unsorted status, type 1
    assert catalog.status_name(3177727, 142) == "Успешно реализовано"
    assert catalog.status_name(999, 142) == "status 142"


@replay.use_cassette("kommo_documented_examples.yaml")
def test_custom_fields_and_a_missing_configured_field_is_a_config_error(kommo):
    fields = kommo.custom_fields()
    assert fields[0]["name"] == "Client Type"
    config = KommoConfig(base_url="https://x.kommo.com", token="t", consent_field="Email consent")
    with pytest.raises(ConfigError) as info:
        resolve_fields(config, fields)
    assert info.value.key == "kommo.consent_field" and "Client Type" in str(info.value)
    wrong_type = KommoConfig(base_url="https://x.kommo.com", token="t", consent_field="Client Type")
    with pytest.raises(ConfigError, match="select field, not a checkbox"):
        resolve_fields(wrong_type, fields)


@replay.use_cassette("kommo_documented_examples.yaml")
def test_events_page_has_string_ids(kommo):
    [page] = list(kommo.lead_events(0, 1_900_000_000))
    assert page[0].id == "01pz58t6p04ymgsgfbmfyfy1mf" and page[0].type == "lead_added"


@replay.use_cassette("kommo_errors.yaml")
def test_documented_429_asks_for_300_seconds_and_the_run_stops_cleanly(kommo):
    with pytest.raises(FatalError, match="wait 300 s"):
        kommo.catalog()


@replay.use_cassette("kommo_errors.yaml")
def test_documented_401_says_the_token_expired_and_never_shows_it(kommo):
    with pytest.raises(FatalError) as info:
        kommo.custom_fields()
    assert "expired or was revoked" in str(info.value)
    assert "cassette-token" not in str(info.value)


def test_cassettes_hold_no_authorization_header():
    for path in CASSETTES.glob("*.yaml"):
        assert "authorization" not in path.read_text().lower(), path.name
