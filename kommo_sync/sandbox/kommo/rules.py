"""Kommo's ids, limits, standard fields and value rules (event ids, stored field values)."""

from __future__ import annotations

import re
from typing import Any

HAL = "application/hal+json"


PROBLEM = "application/problem+json"


ACCOUNT_ID = 31361463


USER_ID = 8375357


WON, LOST = 142, 143


WRITE_BATCH_LIMIT = 250


LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT = 50, 250


EVENTS_LIMIT = 100


ULID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


ULID_PAIRS = [a + b for a in ULID_ALPHABET for b in ULID_ALPHABET]


ULID_SHIFTS = range(120, -1, -10)


CONTACT_FIELDS = (
    "id",
    "name",
    "first_name",
    "last_name",
    "responsible_user_id",
    "group_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "closest_task_at",
    "is_deleted",
    "is_unsorted",
    "custom_fields_values",
    "account_id",
)


LEAD_FIELDS = (
    "id",
    "name",
    "price",
    "responsible_user_id",
    "group_id",
    "status_id",
    "pipeline_id",
    "loss_reason_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "closed_at",
    "closest_task_at",
    "is_deleted",
    "custom_fields_values",
    "score",
    "account_id",
    "labor_cost",
    "is_price_modified_by_robot",
)


CONTACT_CHANGES = frozenset(
    {
        "first_name",
        "last_name",
        "email",
        "phone",
        "company_id",
        "consent",
        "lead_source",
        "extra_emails",
    }
)


NOTE_TYPES = frozenset({"common", "service_message"})


PHONE_ENUMS = ("WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER")


EMAIL_ENUMS = ("WORK", "PRIV", "OTHER")


STATUS_COLORS = ("#99ccff", "#ffff99", "#ffcc66", "#ff8f92", "#87f2c0", "#deff81")


DUMMY_FIELD_NAMES = (
    "Birthday",
    "Website",
    "Address",
    "Skype",
    "Preferred language",
    "Customer type",
    "Industry",
    "Annual revenue",
    "Employees",
    "Region",
    "Referral code",
    "Loyalty level",
    "Last order date",
    "VAT number",
    "Account manager note",
    "Interests",
    "Newsletter segment",
    "Fax",
    "LinkedIn",
    "Contract number",
)


DUMMY_FIELD_TYPES = (
    "date",
    "url",
    "textarea",
    "text",
    "select",
    "select",
    "text",
    "numeric",
    "numeric",
    "radiobutton",
    "text",
    "select",
    "date",
    "text",
    "textarea",
    "multiselect",
    "select",
    "text",
    "url",
    "text",
)


DUMMY_FIELD_COUNT = 58


# GET /api/v4/account without `with`, in the order of Kommo's account-parameters example.
ACCOUNT_DEFAULTS: dict[str, Any] = {
    "id": ACCOUNT_ID,
    "name": "Sandbox",
    "subdomain": "sandbox",
    "current_user_id": USER_ID,
    "country": "ES",
    "currency": "EUR",
    "currency_symbol": "€",
    "customers_mode": "disabled",
    "is_unsorted_on": True,
    "mobile_feature_version": 0,
    "is_loss_reason_enabled": True,
    "is_helpbot_enabled": False,
    "is_technical_account": False,
    "contact_name_display_order": 1,
}


# `_embedded.datetime_settings` (with=datetime_settings) as the PHP library reads it; the pattern
# values are PHP date formats (their exact defaults per country are unconfirmed).
DATETIME_DEFAULTS = {
    "date_pattern": "d.m.Y H:i",
    "short_date_pattern": "d.m.Y",
    "short_time_pattern": "H:i",
    "date_format": "d.m.Y",
    "time_format": "H:i:s",
    "timezone": "Europe/Madrid",
}


ENTITY_TYPES = ("contacts", "leads", "companies")


FIELD_TYPES = frozenset(
    {
        "text",
        "textarea",
        "numeric",
        "price",
        "monetary",
        "checkbox",
        "select",
        "radiobutton",
        "multiselect",
        "multitext",
        "date",
        "date_time",
        "birthday",
        "url",
        "streetaddress",
        "smart_address",
        "legal_entity",
        "category",
        "chained_list",
        "tracking_data",
        "items",
        "linked_entity",
        "file",
    }
)


# The types whose definitions carry `enums`: the PHP library's WithEnumCustomFieldModel kinds,
# and category (its choices are enums in field_types.py; the PHP model names them `nested`).
ENUM_FIELD_TYPES = frozenset(
    {
        "select",
        "multiselect",
        "radiobutton",
        "multitext",
        "smart_address",
        "legal_entity",
        "category",
    }
)


STATUSES_KEY = re.compile(r"^filter\[statuses\]\[(\d+)\]\[(pipeline_id|status_id)\]$")


def event_id(created_at: int, sequence: int) -> str:
    """A ULID-like id: 10 chars of milliseconds then 16 of sequence, so ids sort by time."""
    value = (created_at * 1000) << 80 | sequence
    return "".join([ULID_PAIRS[(value >> shift) & 1023] for shift in ULID_SHIFTS])


def stored_values(record: dict[str, Any], field_id: int) -> list[Any]:
    """The raw `value`s a record holds for one custom field."""
    for entry in record["custom_fields_values"] or []:
        if entry["field_id"] == field_id:
            return [value.get("value") for value in entry["values"]]
    return []


def user_rights(is_admin: bool, is_active: bool) -> dict[str, Any]:
    """A user's `rights` as Kommo's users list shows them: "A" (all) on every entity."""
    entity = {action: "A" for action in ("view", "edit", "add", "delete", "export")}
    return {
        "leads": dict(entity),
        "contacts": dict(entity),
        "companies": dict(entity),
        "tasks": {"edit": "A", "delete": "A"},
        "mail_access": False,
        "catalog_access": False,
        "status_rights": [],
        "is_admin": is_admin,
        "is_free": False,
        "is_active": is_active,
        "group_id": None,
        "role_id": None,
    }


def is_checked(value: Any) -> bool:
    return value is True or value in (1, "1", "true")
