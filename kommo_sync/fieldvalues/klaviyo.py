"""Typed values → Klaviyo profile property values (JSON), or a mark that unsets the property."""

from __future__ import annotations

from decimal import Decimal

from kommo_sync.fieldvalues.mailchimp import unknown_object
from kommo_sync.fieldvalues.values import (
    UNKNOWN_SHAPE,
    Cleared,
    Converted,
    Day,
    Flag,
    Moment,
    Number,
    Text,
    Texts,
    Unknown,
    Value,
    sent,
    skipped,
)

STRING_LIMIT = 100_000
"""Bytes: Klaviyo refuses strings over 100 KB (spec, ../api/klaviyo.md §0)."""


def to_klaviyo(value: Value) -> Converted:
    """Numbers as numbers, flags as booleans, days and instants as ISO 8601, several texts as
    an array, objects as objects; `cleared` means "unset this property" (patch_properties)."""
    if isinstance(value, Cleared):
        return Converted(cleared=True)
    if isinstance(value, Unknown):
        return sent(unknown_object(value), UNKNOWN_SHAPE)
    if isinstance(value, Text):
        return _string(value.text)
    if isinstance(value, Number):
        return sent(_json_number(value.number))
    if isinstance(value, Flag):
        return sent(value.flag)
    if isinstance(value, Day):
        return sent(value.day.isoformat())
    if isinstance(value, Moment):
        return sent(value.at.isoformat())
    if isinstance(value, Texts):
        return sent(list(value.texts))
    return sent(value.data)


def _string(text: str) -> Converted:
    if len(text.encode("utf-8")) > STRING_LIMIT:
        return skipped(f"text longer than Klaviyo's {STRING_LIMIT} bytes")
    return sent(text)


def _json_number(number: int | Decimal) -> int | float:
    """JSON has one number type: a Decimal becomes the nearest float."""
    return number if isinstance(number, int) else float(number)
