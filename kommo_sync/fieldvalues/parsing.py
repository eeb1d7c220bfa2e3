"""Lenient readers for one scalar of Kommo's wire: text, number, flag, timestamp.

Each returns None for what it cannot read, and never raises: the caller decides whether that is
a text, an unknown shape or a skip.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

_GROUPING = re.compile(r"[\s\u00a0\u202f'_]")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off", ""}


def clean_text(text: str) -> str:
    """The text with lone surrogates (JSON allows "\\ud800") replaced, so it encodes as UTF-8."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def as_text(raw: Any) -> str | None:
    """A string, or a number written as text; None for anything else (dicts, lists, null)."""
    if isinstance(raw, str):
        return clean_text(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
        return None
    number = as_number(raw)
    return format_number(number) if number is not None else None


def as_number(raw: Any) -> int | Decimal | None:
    """An int or a finite Decimal from a JSON number or a numeric string ("1,234.50", "1 234,5")."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return _exact(Decimal(repr(raw))) if math.isfinite(raw) else None
    if isinstance(raw, Decimal):
        return _exact(raw) if raw.is_finite() else None
    if isinstance(raw, str):
        return _parse_number(raw)
    return None


def _parse_number(text: str) -> int | Decimal | None:
    plain = _decimal_point(_GROUPING.sub("", text.strip()))
    if plain is None or not _NUMBER.fullmatch(plain):
        return None
    try:
        return _exact(Decimal(plain))
    except InvalidOperation:
        return None


def _decimal_point(text: str) -> str | None:
    """The text with thousands separators gone and "." as the decimal point.

    With both "," and ".", the later one is the decimal point. A lone "," is a decimal comma
    unless exactly three digits follow it ("1,234" is a thousand and more, "1,5" is one and a
    half); repeated separators are grouping."""
    commas, dots = text.count(","), text.count(".")
    if commas and dots:
        point = "," if text.rfind(",") > text.rfind(".") else "."
        grouping = "." if point == "," else ","
        return text.replace(grouping, "").replace(point, ".")
    if commas > 1 or dots > 1:
        return text.replace(",", "").replace(".", "")
    if commas == 1:
        whole, _, fraction = text.partition(",")
        return whole + fraction if len(fraction) == 3 else whole + "." + fraction
    return text


def _exact(number: Decimal) -> int | Decimal:
    """An int when the number is whole, else the Decimal without trailing zeros."""
    if number == number.to_integral_value():
        return int(number)
    return number.normalize()


def format_number(number: int | Decimal) -> str:
    """Plain digits: no thousands separators, no exponent, no trailing ".0"."""
    if isinstance(number, int):
        return str(number)
    return format(number, "f")


def as_flag(raw: Any) -> bool | None:
    """A checkbox: true/false, 1/0, "1"/"0", "true"/"false" (webhooks send strings)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else None
    return None


def as_moment(raw: Any, tz: ZoneInfo) -> datetime | None:
    """An aware instant in the account's timezone from Unix seconds or an ISO 8601 string.

    A string without an offset is read as the account's wall-clock time."""
    seconds = as_number(raw) if not isinstance(raw, str) or raw.strip().isdigit() else None
    if seconds is not None:
        try:
            return datetime.fromtimestamp(int(seconds), UTC).astimezone(tz)
        except (OverflowError, OSError, ValueError):
            return None
    parsed = _iso(raw)
    if parsed is None:
        return None
    return parsed.astimezone(tz) if parsed.tzinfo else parsed.replace(tzinfo=tz)


def as_day(raw: Any, tz: ZoneInfo) -> date | None:
    """The calendar day a date or birthday means, whichever way Kommo stored it.

    Kommo keeps a date as the Unix time of its midnight in the account's timezone (issue
    amocrm/amocrm-api-php#402); values written by integrations as 00:00 UTC also exist. The
    day is the one the timestamp is a midnight of: account-local first, then UTC, else the
    account-local day. A date-only or ISO string means the day written in it."""
    if isinstance(raw, str) and not raw.strip().isdigit():
        parsed = _iso(raw)
        return parsed.date() if parsed else None
    moment = as_moment(raw, tz)
    if moment is None:
        return None
    utc = moment.astimezone(UTC)
    if moment.time() != time(0) and utc.time() == time(0):
        return utc.date()
    return moment.date()


def _iso(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
