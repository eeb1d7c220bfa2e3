"""The field map's source grammar, its resolution against the account's custom fields, and the
reader that gives a person the typed value of each mapped source."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kommo_sync.config_reader import Section
from kommo_sync.errors import ConfigError
from kommo_sync.field_reader import FieldReader
from kommo_sync.fieldmap import Entry, parse_entries, parse_source, resolve
from kommo_sync.fieldvalues import CLEARED, Day, KommoField, Number, Text, Texts
from kommo_sync.model import Catalog, Company, Contact, Lead, Pipeline, Status

INDUSTRY = KommoField(11, "Industry", "select", "contacts", ((1, "Retail"), (2, "Tech")))
RENEWAL = KommoField(12, "Renewal date", "date", "leads")
COUNTRY = KommoField(13, "Country", "text", "companies")
FIELDS = (INDUSTRY, RENEWAL, COUNTRY)


def upper(where: str, target: str) -> str:
    return target.upper()


def entries(*items: Any, check: Callable[[str, str], str] = upper) -> tuple[Entry, ...]:
    section = Section({"fields": list(items)}, "mailchimp", {})
    return parse_entries(section, "fields", check)


def test_a_source_names_its_entity_and_a_builtin_or_a_custom_field() -> None:
    assert parse_source("k", "lead.price").builtin
    custom = parse_source("k", "contact.Industry")
    assert (custom.entity, custom.name, custom.builtin) == ("contact", "Industry", False)
    assert parse_source("k", "company.123").key == "company.123"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Industry", "must be <contact|lead|company>"),
        ("deal.price", "unknown entity 'deal'"),
        ("lead.", "names no attribute"),
        (7, "must be <contact|lead|company>"),
    ],
)
def test_a_bad_source_is_a_config_error_naming_the_key(text: Any, words: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_source("mailchimp.fields[0].from", text)
    assert error.value.key == "mailchimp.fields[0].from" and words in str(error.value)


def test_entries_are_parsed_with_the_destinations_target_check_and_targets_unique() -> None:
    parsed = entries({"from": "contact.Industry", "to": "industry"})
    assert parsed[0].target == "INDUSTRY" and parsed[0].where == "mailchimp.fields[0]"
    with pytest.raises(ConfigError) as error:
        entries({"from": "lead.price", "to": "A"}, {"from": "lead.name", "to": "a"})
    assert error.value.key == "mailchimp.fields[1]" and "already the target" in str(error.value)
    with pytest.raises(ConfigError, match="must be {from"):
        entries({"from": "lead.price"})


def test_custom_fields_resolve_by_exact_name_or_id_and_builtins_need_none() -> None:
    parsed = entries(
        {"from": "contact.Industry", "to": "A"},
        {"from": "lead.12", "to": "B"},
        {"from": "lead.price", "to": "C"},
    )
    resolved = resolve(parsed, FIELDS)
    assert [r.field for r in resolved] == [INDUSTRY, RENEWAL, None]
    assert [r.type for r in resolved] == ["select", "date", "price"]


@pytest.mark.parametrize(
    ("source", "hint"),
    [
        ("contact.industry", "did you mean Industry? (names match exactly)"),
        ("contact.Industri", "did you mean Industry?"),
        ("company.Industry", "Kommo has no company field 'Industry'"),
    ],
)
def test_an_unknown_field_names_the_entry_and_the_likeliest_meaning(source: str, hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        resolve(entries({"from": source, "to": "A"}), FIELDS)
    assert error.value.key == "mailchimp.fields[0].from" and hint in str(error.value)


def test_two_fields_with_one_name_must_be_named_by_id() -> None:
    twin = KommoField(99, "Industry", "text", "contacts")
    with pytest.raises(ConfigError, match=r"name one by its id \(11, 99\)"):
        resolve(entries({"from": "contact.Industry", "to": "A"}), (*FIELDS, twin))


def reader() -> FieldReader:
    parsed = entries(
        {"from": "contact.Industry", "to": "A"},
        {"from": "lead.Renewal date", "to": "B"},
        {"from": "company.Country", "to": "C"},
        {"from": "lead.price", "to": "D"},
        {"from": "lead.status", "to": "E"},
        {"from": "lead.responsible_user", "to": "F"},
        {"from": "contact.tags", "to": "G"},
        {"from": "contact.name", "to": "H"},
    )
    pipeline = Pipeline(7, "Sales", (Status(70, 7, "Qualified", 10),))
    return FieldReader(
        resolve(parsed, FIELDS), ZoneInfo("Asia/Tokyo"), Catalog({7: pipeline}), users={5: "Mo"}
    )


def test_the_reader_types_every_mapped_source_of_contact_lead_and_company() -> None:
    contact = Contact(
        1, 0, "Ada", "Lovelace", company_id=3, tags=("vip", "b2b"),
        custom={"11": [{"value": "Tech", "enum_id": 2}]},
    )  # fmt: skip
    midnight_tokyo = 1_767_193_200  # 2026-01-01 00:00 in Tokyo
    lead = Lead(
        2, 0, price=1500, pipeline_id=7, status_id=70, responsible_user_id=5,
        custom={"12": [{"value": midnight_tokyo}]},
    )  # fmt: skip
    company = Company(3, 0, "Firm", custom={"13": [{"value": "Spain"}]})
    values = reader().values(contact, lead, {3: company})
    assert values["contact.Industry"] == Text("Tech")
    assert values["lead.Renewal date"] == Day(date(2026, 1, 1))
    assert values["company.Country"] == Text("Spain")
    assert values["lead.price"] == Number(1500)
    assert values["lead.status"] == Text("Qualified")
    assert values["lead.responsible_user"] == Text("Mo")
    assert values["contact.tags"] == Texts(("vip", "b2b"))
    assert values["contact.name"] == Text("Ada Lovelace")


def test_what_the_person_lacks_is_cleared() -> None:
    values = reader().values(Contact(1, 0, "Ada"), None, {})
    assert values["lead.price"] is CLEARED and values["company.Country"] is CLEARED
    assert values["contact.Industry"] is CLEARED  # Kommo sent no value: cleared downstream
