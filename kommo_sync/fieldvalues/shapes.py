"""Kommo's custom-field wire shapes, the field definitions, and the built-in attributes.

An entity carries `custom_fields_values: [{field_id, field_name, field_code, field_type,
values: [...]}]` or null. `SHAPES` gives, for each of the 23 field types, one item of `values`
as Kommo sends it and where that shape comes from. `PHP` is amocrm/amocrm-api-php at commit
1354d8a (src/AmoCRM/Models/CustomFieldsValues/ValueModels/), Kommo's official library; its
`fromArray` is what reads these items. UNCONFIRMED marks what no source states: the reader then
accepts every plausible variant (numbers as strings, items with or without a `value` wrapper).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PHP = "amocrm/amocrm-api-php:src/AmoCRM/Models/CustomFieldsValues/ValueModels/"


@dataclass(frozen=True)
class Shape:
    item: dict[str, Any]
    source: str


def _scalar(value: Any, model: str, note: str = "") -> Shape:
    return Shape({"value": value}, PHP + f"{model}CustomFieldValueModel.php (extends Base){note}")


SHAPES: dict[str, Shape] = {
    "text": _scalar("Acme Ltd", "Text"),
    "textarea": _scalar("Line one\nline two", "Textarea"),
    "streetaddress": _scalar("12 High Street, Leeds", "StreetAdress"),
    "url": _scalar("https://acme.example/", "Url"),
    "tracking_data": _scalar("google", "TrackingData", "; text content UNCONFIRMED"),
    "numeric": _scalar(
        "1.5", "Numeric", "; string vs JSON number UNCONFIRMED (amoCRM examples write strings)"
    ),
    "price": _scalar(1999, "Price", "; catalogs only; number vs string UNCONFIRMED"),
    "monetary": _scalar("1500.00", "Monetary", "; string vs number UNCONFIRMED"),
    "checkbox": Shape(
        {"value": True},
        PHP + "CheckboxCustomFieldValueModel.php casts to bool; true vs 1/'1' UNCONFIRMED "
        "(webhooks send '1', ../api/kommo.md §8)",
    ),
    "select": Shape(
        {"value": "Regular", "enum_id": 867970, "enum_code": None},
        PHP + "SelectCustomFieldValueModel.php (extends BaseEnumCode)",
    ),
    "radiobutton": Shape(
        {"value": "Email", "enum_id": 3001}, PHP + "RadiobuttonCustomFieldValueModel.php (BaseEnum)"
    ),
    "category": Shape(
        {"value": "Hardware", "enum_id": 4001}, PHP + "CategoryCustomFieldValueModel.php (BaseEnum)"
    ),
    "multiselect": Shape(
        {"value": "Webinars", "enum_id": 5001},
        PHP + "MultiselectCustomFieldValueModel.php (BaseEnum), one item per choice",
    ),
    "multitext": Shape(
        {"value": "19651796212", "enum_id": 126290, "enum_code": "WORK"},
        "developers.kommo.com contacts-list example (../api/kommo.md §2.3); "
        + PHP
        + "MultitextCustomFieldValueModel.php; legacy key 'enum' instead of 'enum_code'",
    ),
    "date": Shape(
        {"value": 1634590800},
        PHP + "DateCustomFieldValueModel.php (int, or a date string via strtotime); "
        "issue amocrm/amocrm-api-php#402: a date written as 00:00 UTC reads back as 00:00 in "
        "the account's timezone",
    ),
    "birthday": Shape(
        {"value": 631152000},
        PHP + "BirthdayCustomFieldValueModel.php (extends Date); midnight rule assumed as for "
        "date, UNCONFIRMED",
    ),
    "date_time": Shape(
        {"value": 1726572758},
        PHP + "DateTimeCustomFieldValueModel.php (extends Date); issue #402: read back as written",
    ),
    "smart_address": Shape(
        {"value": "Nikoloyamskaya 28/60", "enum_id": 1, "enum_code": "address_line_1"},
        PHP + "SmartAddressCustomFieldValueModel.php (BaseEnumCode), one item per part; part "
        "codes address_line_1, address_line_2, city, state, zip, country from a third-party "
        "summary of amocrm.ru custom-fields docs, UNCONFIRMED on Kommo's pages",
    ),
    "legal_entity": Shape(
        {"value": {"name": "Acme LLC", "entity_type": 2, "vat_id": "7701234567", "kpp": None}},
        PHP + "LegalEntityCustomFieldValueModel.php (reads value[...] ?? item[...]; also "
        "tax_registration_reason_code, address, real_address, bank_code, external_uid, unp, "
        "bin, egrpou, mfo, bank_account_number, oked, director)",
    ),
    "items": Shape(
        {"value": {"sku": "A-1", "description": "Widget", "unit_price": 10.5, "quantity": 2}},
        PHP + "ItemsCustomFieldValueModel.php (value ?? item; also unit_type, discount "
        "{type, value}, vat_rate_id, vat_rate_value, external_uid, product_id, "
        "bonus_points_per_purchase, metadata, total_sum)",
    ),
    "linked_entity": Shape(
        {"value": {"name": "Order 17", "entity_id": 17, "entity_type": "catalog_elements"}},
        PHP + "LinkedEntityCustomFieldValueModel.php (value ?? item; also catalog_id)",
    ),
    "file": Shape(
        {"value": {"file_uuid": "6f1c", "version_uuid": "9a2b", "file_name": "a.pdf"}},
        PHP + "FileCustomFieldValueModel.php (also file_size)",
    ),
    "chained_list": Shape(
        {"catalog_id": 4521, "catalog_element_id": 525439},
        PHP + "ChainedListCustomFieldValueModel.php (no value wrapper)",
    ),
}


@dataclass(frozen=True)
class KommoField:
    """A field definition as `GET /api/v4/{entity}/custom_fields` returns it (or a built-in)."""

    id: int
    name: str
    type: str
    entity: str
    enums: tuple[tuple[int, str], ...] = ()
    code: str | None = None

    @property
    def choices(self) -> tuple[str, ...]:
        """The enum texts, in Kommo's order."""
        return tuple(text for _, text in self.enums)


def _builtins() -> dict[tuple[str, str], str]:
    common = {"name": "text", "responsible_user": "text", "created_at": "date_time"}
    common |= {"updated_at": "date_time", "tags": "multiselect"}
    lead = {"price": "price", "pipeline": "text", "status": "text", "closed_at": "date_time"}
    lead |= {"loss_reason": "text"}
    person = {"first_name": "text", "last_name": "text"}
    entities = {"contacts": common | person, "leads": common | lead, "companies": common}
    return {
        (entity, name): kind for entity, names in entities.items() for name, kind in names.items()
    }


BUILTINS = _builtins()


def builtin_type(entity: str, attribute: str) -> str | None:
    """The field type a built-in attribute converts as, or None when there is no such attribute.

    Names (responsible user, pipeline, status, loss reason) are resolved to text by the caller;
    tags are a list of names, like a multiselect."""
    return BUILTINS.get((entity, attribute))


def builtin_values(attribute: str, raw: Any) -> list[dict[str, Any]]:
    """A built-in attribute's raw value in the `values` shape, so `normalise` reads it too.

    An empty name, a null, or a `closed_at` of 0 (an open lead) is no value."""
    if raw is None or raw == "" or (attribute == "closed_at" and raw == 0):
        return []
    if attribute == "tags" and isinstance(raw, list):
        return [{"value": tag.get("name") if isinstance(tag, dict) else tag} for tag in raw]
    return [{"value": raw}]
