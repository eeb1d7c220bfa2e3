"""How a merge value is judged against its merge field's type, as Mailchimp answers it.

Sources: shared/api/mailchimp.md §8 (the value formats: numbers; a radio or dropdown value must
be one of its choices; dates as YYYY-MM-DD, YYYY/MM/DD, DD-MM-YYYY or MM/DD/YYYY; birthdays as
MM/DD; an address object with addr1, city, state, zip; text cut at 255 bytes, not refused), and
"Please enter a complete address" / "Data did not match any of the schemas described in anyOf"
from the issues cited there. The messages for a bad number, choice, date, birthday, URL and US
phone are the sandbox's: Mailchimp's exact wording is UNCONFIRMED, only the 400 "Your merge
fields were invalid." with `errors[{field, message}]` around them is documented.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

_ISO_DATES = (r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})", r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})")
_DATE_FORMATS = {
    "MM/DD/YYYY": r"(?P<m>\d{2})/(?P<d>\d{2})/(?P<y>\d{4})",
    "DD/MM/YYYY": r"(?P<d>\d{2})/(?P<m>\d{2})/(?P<y>\d{4})",
}
_BIRTHDAY_FORMATS = {"MM/DD": r"(?P<m>\d{2})/(?P<d>\d{2})", "DD/MM": r"(?P<d>\d{2})/(?P<m>\d{2})"}
_URL = re.compile(r"https?://[^\s/$.?#][^\s]*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def merge_value_problem(merge_field: dict[str, Any], value: Any) -> str:
    """What Mailchimp says about this value for this merge field ("" when it takes it)."""
    kind = merge_field["type"]
    if value in (None, ""):
        return ""  # a clear
    if kind == "address":
        complete = isinstance(value, dict) and all(
            value.get(key) for key in ("addr1", "city", "state", "zip")
        )
        return "" if complete else "Please enter a complete address"
    if isinstance(value, (dict, list)):
        return "Data did not match any of the schemas described in anyOf"
    check = _CHECKS.get(kind)
    return check(merge_field.get("options") or {}, str(value)) if check else ""


def _number(options: dict[str, Any], value: str) -> str:
    return "" if _NUMBER.fullmatch(value) else "Please enter a number"


def _choice(options: dict[str, Any], value: str) -> str:
    choices = options.get("choices") or []
    return "" if not choices or value in choices else "Please choose one of the options"


def _date(options: dict[str, Any], value: str) -> str:
    own = _DATE_FORMATS.get(options.get("date_format") or "MM/DD/YYYY", _DATE_FORMATS["MM/DD/YYYY"])
    if any(_real_day(pattern, value, leap_year=False) for pattern in (*_ISO_DATES, own)):
        return ""
    return f"Please enter the date in the format {options.get('date_format') or 'MM/DD/YYYY'}"


def _birthday(options: dict[str, Any], value: str) -> str:
    fmt = options.get("date_format") or "MM/DD"
    if _real_day(_BIRTHDAY_FORMATS.get(fmt, _BIRTHDAY_FORMATS["MM/DD"]), value, leap_year=True):
        return ""
    return f"Please enter the birthday in the format {fmt}"


def _url(options: dict[str, Any], value: str) -> str:
    return "" if _URL.fullmatch(value) else "Please enter a valid URL"


def _phone(options: dict[str, Any], value: str) -> str:
    """A US-format phone field takes ten digits; an International one any text."""
    if options.get("phone_format") != "US":
        return ""
    digits = re.sub(r"\D", "", value)
    return "" if len(digits) == 10 else "Please enter a US phone number (###) ###-####"


def _real_day(pattern: str, value: str, leap_year: bool) -> bool:
    """Whether the value matches the pattern and names a day that exists (a birthday has no
    year: any leap year's calendar)."""
    found = re.fullmatch(pattern, value)
    if found is None:
        return False
    parts = found.groupdict()
    try:
        date(2000 if leap_year else int(parts["y"]), int(parts["m"]), int(parts["d"]))
    except ValueError:
        return False
    return True


_CHECKS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "number": _number,
    "radio": _choice,
    "dropdown": _choice,
    "date": _date,
    "birthday": _birthday,
    "url": _url,
    "phone": _phone,
}
