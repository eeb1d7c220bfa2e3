"""Kommo's raw `values` list → one typed `Value`, per field type (shapes in `shapes.SHAPES`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from kommo_sync.fieldvalues.parsing import as_day, as_flag, as_moment, as_number, as_text
from kommo_sync.fieldvalues.structured import STRUCTURED
from kommo_sync.fieldvalues.values import (
    CLEARED,
    Day,
    Flag,
    Moment,
    Number,
    Text,
    Texts,
    Unknown,
    Value,
)

Items = list[dict[str, Any]]


def normalise(field_type: str, values: Any, tz: ZoneInfo) -> Value:
    """The typed value of one field; `values` is the field's `values` (absent → None).

    None, [] or only empty items is `CLEARED`; a shape the type does not have is `Unknown`,
    never an exception."""
    if values is None or values == []:
        return CLEARED
    if not isinstance(values, list) or not all(isinstance(item, dict) for item in values):
        return Unknown(field_type, values, "unknown shape")
    reader = READERS.get(field_type)
    if reader is None:
        return Unknown(field_type, values, "unknown type")
    present = [item for item in values if _present(item)]
    if not present:
        return CLEARED
    result = reader(present, tz)
    if result is None or isinstance(result, Unknown):
        reason = result.reason if result else "unknown shape"
        return Unknown(field_type, values, reason)
    return result


def _present(item: dict[str, Any]) -> bool:
    """An item with something in it ("value": null or "" is Kommo's empty)."""
    inner = item.get("value", item)
    return inner not in (None, "", [], {})


def _text(items: Items, tz: ZoneInfo) -> Value | None:
    text = as_text(items[0].get("value"))
    return Text(text) if text is not None else None


def _number(items: Items, tz: ZoneInfo) -> Value | None:
    raw = items[0].get("value")
    number = as_number(raw)
    if number is not None:
        return Number(number)
    return _text(items, tz) if isinstance(raw, str) else None


def _flag(items: Items, tz: ZoneInfo) -> Value | None:
    flag = as_flag(items[0].get("value"))
    return Flag(flag) if flag is not None else None


def _texts(items: Items, tz: ZoneInfo) -> Value | None:
    texts = [as_text(item.get("value")) for item in items]
    if any(text is None for text in texts):
        return None
    return Texts(tuple(dict.fromkeys(text for text in texts if text is not None)))


def _day(items: Items, tz: ZoneInfo) -> Value | None:
    day = as_day(items[0].get("value"), tz)
    return Day(day) if day is not None else _out_of_range(items)


def _moment(items: Items, tz: ZoneInfo) -> Value | None:
    moment = as_moment(items[0].get("value"), tz)
    return Moment(moment) if moment is not None else _out_of_range(items)


def _out_of_range(items: Items) -> Value | None:
    """A numeric timestamp Python's calendar cannot hold is out of range, not a bad shape."""
    raw = items[0].get("value")
    readable = as_number(raw) is not None
    return Unknown("", raw, "date out of range") if readable else None


Reader = Callable[[Items, ZoneInfo], Value | None]

READERS: dict[str, Reader] = {
    **dict.fromkeys(["text", "textarea", "streetaddress", "url", "tracking_data"], _text),
    **dict.fromkeys(["select", "radiobutton", "category"], _text),
    **dict.fromkeys(["numeric", "price", "monetary"], _number),
    **dict.fromkeys(["multiselect", "multitext"], _texts),
    **dict.fromkeys(["date", "birthday"], _day),
    "date_time": _moment,
    "checkbox": _flag,
    **{kind: reader for kind, reader in STRUCTURED.items()},
}
