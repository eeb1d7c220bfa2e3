"""One realistic custom field per Kommo field type, with values in Kommo's wire shapes.

Pure data for the Kommo sandbox and tests: `FIELDS` are definitions as
`GET /api/v4/{entity}/custom_fields` lists them, `SAMPLES` one or two `values` lists per type
(shapes and sources: kommo_sync/fieldvalues/shapes.py). Dates are Unix times of midnight in
`TIMEZONE`, the way Kommo stores them.
"""

from __future__ import annotations

from typing import Any

TIMEZONE = "Europe/Moscow"

FIRST_FIELD_ID = 700001


def _enums(first_id: int, *texts: str) -> list[dict[str, Any]]:
    return [{"id": first_id + n, "value": text, "sort": 500 + n} for n, text in enumerate(texts)]


_ADDRESS_ENUMS = [
    {"id": 900 + n, "value": code, "sort": n}
    for n, code in enumerate(
        ["address_line_1", "address_line_2", "city", "state", "zip", "country"]
    )
]

# type → (entity, name, enums)
_DEFINITIONS: dict[str, tuple[str, str, list[dict[str, Any]] | None]] = {
    "text": ("contacts", "Job title", None),
    "textarea": ("contacts", "Notes for marketing", None),
    "numeric": ("contacts", "Employees", None),
    "price": ("leads", "Unit price", None),
    "monetary": ("leads", "Contract value", None),
    "checkbox": ("contacts", "Newsletter consent", None),
    "select": ("contacts", "Client type", _enums(867968, "New", "Regular", "VIP")),
    "radiobutton": ("contacts", "Preferred channel", _enums(3001, "Email", "Phone", "SMS")),
    "multiselect": ("contacts", "Interests", _enums(5001, "Webinars", "Offers", "News")),
    "multitext": ("contacts", "Messengers", _enums(6001, "WORK", "PRIV", "OTHER")),
    "date": ("leads", "Contract signed", None),
    "date_time": ("leads", "Demo booked", None),
    "birthday": ("contacts", "Birthday", None),
    "url": ("companies", "Website", None),
    "streetaddress": ("contacts", "Short address", None),
    "smart_address": ("contacts", "Address", _ADDRESS_ENUMS),
    "legal_entity": ("companies", "Legal entity", None),
    "category": ("leads", "Product category", _enums(4001, "Hardware", "Software")),
    "chained_list": ("leads", "Catalog item", None),
    "tracking_data": ("leads", "utm_source", None),
    "items": ("leads", "Order lines", None),
    "linked_entity": ("leads", "Linked order", None),
    "file": ("leads", "Signed contract", None),
}


def field_definition(field_type: str, field_id: int) -> dict[str, Any]:
    """A field object like Kommo's, for one of the 23 types."""
    entity, name, enums = _DEFINITIONS[field_type]
    return {
        "id": field_id,
        "name": name,
        "type": field_type,
        "code": None,
        "sort": 500,
        "is_api_only": False,
        "enums": enums,
        "entity_type": entity,
        "is_predefined": False,
        "is_deletable": True,
    }


FIELDS: dict[str, dict[str, Any]] = {
    kind: field_definition(kind, FIRST_FIELD_ID + n) for n, kind in enumerate(_DEFINITIONS)
}

SAMPLES: dict[str, list[list[dict[str, Any]]]] = {
    "text": [[{"value": "Head of Procurement"}], [{"value": "Директор по закупкам 🚀"}]],
    "textarea": [[{"value": "Met at the Berlin fair.\nPrefers calls after 3pm."}]],
    "numeric": [[{"value": "250"}], [{"value": "1.5"}]],
    "price": [[{"value": 1999}]],
    "monetary": [[{"value": "125000.50"}]],
    "checkbox": [[{"value": True}], [{"value": False}]],
    "select": [[{"value": "Regular", "enum_id": 867969, "enum_code": None}]],
    "radiobutton": [[{"value": "Email", "enum_id": 3001}]],
    "multiselect": [[{"value": "Webinars", "enum_id": 5001}, {"value": "News", "enum_id": 5003}]],
    "multitext": [
        [
            {"value": "@acme_jane", "enum_id": 6001, "enum_code": "WORK"},
            {"value": "jane.doe", "enum_id": 6002, "enum_code": "PRIV"},
        ]
    ],
    # 2024-03-15 00:00 Europe/Moscow; 1990-07-04 00:00 Europe/Moscow
    "date": [[{"value": 1710450000}]],
    "birthday": [[{"value": 647035200}]],
    "date_time": [[{"value": 1726572758}]],
    "url": [[{"value": "https://acme.example/"}]],
    "streetaddress": [[{"value": "Tverskaya 7, Moscow"}]],
    "smart_address": [
        [
            {"value": "Nikoloyamskaya 28/60", "enum_id": 900, "enum_code": "address_line_1"},
            {"value": "Moscow", "enum_id": 902, "enum_code": "city"},
            {"value": "109240", "enum_id": 904, "enum_code": "zip"},
            {"value": "RU", "enum_id": 905, "enum_code": "country"},
        ]
    ],
    "legal_entity": [
        [
            {
                "value": {
                    "name": "Acme LLC",
                    "entity_type": 2,
                    "vat_id": "7701234567",
                    "kpp": "770101001",
                    "address": "Moscow, Tverskaya 7",
                }
            }
        ]
    ],
    "category": [[{"value": "Hardware", "enum_id": 4001}]],
    "chained_list": [[{"catalog_id": 4521, "catalog_element_id": 525439}]],
    "tracking_data": [[{"value": "google"}]],
    "items": [
        [
            {"value": {"sku": "W-1", "description": "Widget", "unit_price": 10.5, "quantity": 2}},
            {"value": {"sku": "G-7", "description": "Gadget", "unit_price": 99, "quantity": 1}},
        ]
    ],
    "linked_entity": [
        [{"value": {"name": "Order 17", "entity_id": 17, "entity_type": "catalog_elements"}}]
    ],
    "file": [
        [
            {
                "value": {
                    "file_uuid": "6f1c2d3e-0000-4000-8000-000000000001",
                    "version_uuid": "9a2b3c4d-0000-4000-8000-000000000002",
                    "file_name": "contract.pdf",
                    "file_size": 48213,
                }
            }
        ]
    ],
}


def field_value(field_type: str, sample: int = 0) -> dict[str, Any]:
    """One `custom_fields_values` entry for the type's field, as an entity carries it."""
    field = FIELDS[field_type]
    return {
        "field_id": field["id"],
        "field_name": field["name"],
        "field_code": field["code"],
        "field_type": field_type,
        "values": SAMPLES[field_type][sample],
    }
