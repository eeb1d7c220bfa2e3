"""Readers for Kommo's object-valued fields: each keeps the data and finds its one-line summary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from kommo_sync.fieldvalues.parsing import as_number, as_text, format_number
from kommo_sync.fieldvalues.values import Structured, Value

Items = list[dict[str, Any]]

ADDRESS_PARTS = ("address_line_1", "address_line_2", "city", "state", "zip", "country")


def _smart_address(items: Items, tz: ZoneInfo) -> Value | None:
    """One item per part, keyed by `enum_code` (`enum_id` when the code is missing)."""
    parts: dict[str, Any] = {}
    for item in items:
        text = as_text(item.get("value"))
        key = item.get("enum_code") or item.get("enum_id")
        if text is None or key is None:
            return None
        parts[str(key)] = text
    ordered = [parts[key] for key in ADDRESS_PARTS if key in parts]
    ordered += [text for key, text in parts.items() if key not in ADDRESS_PARTS]
    return Structured("address", parts, ", ".join(ordered))


def _objects(items: Items) -> list[dict[str, Any]] | None:
    """Each item's object: under "value", or the item itself (the PHP reader accepts both)."""
    objects = [item.get("value", item) for item in items]
    if not all(isinstance(obj, dict) for obj in objects):
        return None
    return [{key: val for key, val in obj.items() if val is not None} for obj in objects]


def _object_reader(kind: str, summary: Callable[[dict[str, Any]], str | None]) -> Reader:
    """A reader for items that are objects; one object stays an object, several make a list."""

    def read(items: Items, tz: ZoneInfo) -> Value | None:
        objects = _objects(items)
        if objects is None:
            return None
        lines = [summary(obj) for obj in objects]
        line = "; ".join(text for text in lines if text) if all(lines) else None
        return Structured(kind, objects[0] if len(objects) == 1 else objects, line)

    return read


def _named(key: str) -> Callable[[dict[str, Any]], str | None]:
    return lambda obj: as_text(obj.get(key)) or None


def _item_line(obj: dict[str, Any]) -> str | None:
    """ "Widget × 2" for an order line; the quantity is left out when absent."""
    name = as_text(obj.get("description")) or as_text(obj.get("sku"))
    quantity = as_number(obj.get("quantity"))
    if not name:
        return None
    return f"{name} × {format_number(quantity)}" if quantity is not None else name


Reader = Callable[[Items, ZoneInfo], Value | None]

STRUCTURED: dict[str, Reader] = {
    "smart_address": _smart_address,
    "legal_entity": _object_reader("legal_entity", _named("name")),
    "items": _object_reader("items", _item_line),
    "linked_entity": _object_reader("linked_entity", _named("name")),
    "file": _object_reader("file", _named("file_name")),
    "chained_list": _object_reader("chained_list", lambda obj: None),
}
