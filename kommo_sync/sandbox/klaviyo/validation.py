"""Klaviyo's checks on profile attributes: email and E.164 formats, identifiers, sizes."""

from __future__ import annotations

import json
from typing import Any

import phonenumbers

from kommo_sync.sandbox.klaviyo.errors import invalid_object
from kommo_sync.sandbox.klaviyo.rules import (
    EMAIL_FORMAT,
    IDENTIFIERS,
    INVALID_PHONE,
)


def is_email(value: Any) -> bool:
    return isinstance(value, str) and bool(EMAIL_FORMAT.match(value))


def is_e164(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith("+"):
        return False
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(number)
        and phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == value
    )


def attribute_errors(
    attributes: Any, pointer: str, allowed: frozenset[str]
) -> list[dict[str, Any]]:
    """Validation errors of one profile's attributes, each pointing at the offending field."""
    if not isinstance(attributes, dict):
        return [invalid_object("'attributes' must be an object.", pointer)]
    errors = [
        invalid_object(
            f"'{name}' is not a valid field for the resource 'profile'.", f"{pointer}/{name}"
        )
        for name in attributes
        if name not in allowed
    ]
    email, phone = attributes.get("email"), attributes.get("phone_number")
    if email is not None and not is_email(email):
        errors.append(invalid_object("Invalid email address", f"{pointer}/email"))
    if phone is not None and not is_e164(phone):
        errors.append(invalid_object(INVALID_PHONE, f"{pointer}/phone_number"))
    for name in ("properties", "location"):
        if attributes.get(name) is not None and not isinstance(attributes[name], dict):
            errors.append(invalid_object(f"'{name}' must be an object.", f"{pointer}/{name}"))
    return errors


def has_identifier(attributes: dict[str, Any]) -> bool:
    return any(attributes.get(name) for name in IDENTIFIERS)


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))
