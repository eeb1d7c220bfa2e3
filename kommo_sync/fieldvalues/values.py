"""The typed values between Kommo's wire shapes and the targets, and what a conversion gives.

`normalise` turns a field's raw `values` list into one of these; `to_mailchimp` and `to_klaviyo`
turn one of these into a `Converted`. Every value is frozen and compares by content, so plans
and fingerprints can hold them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Cleared:
    """No value: Kommo sends nothing for a cleared field, so absence on a mapped field clears."""


CLEARED = Cleared()


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Number:
    """An int, or a Decimal for anything with a fraction (no float rounding on the way through)."""

    number: int | Decimal


@dataclass(frozen=True)
class Flag:
    flag: bool


@dataclass(frozen=True)
class Day:
    """A calendar day (date, birthday): no time, no zone, so it can never shift."""

    day: date


@dataclass(frozen=True)
class Moment:
    """An instant, aware, in the Kommo account's timezone."""

    at: datetime


@dataclass(frozen=True)
class Texts:
    """Several texts in Kommo's order (multiselect choices, multitext entries, tags)."""

    texts: tuple[str, ...]


@dataclass(frozen=True)
class Structured:
    """An object-valued field (address, legal entity, items, file, linked entity, catalog link).

    `data` is JSON (a dict, or a list of dicts when the field holds several); `summary` is the
    one line a text merge field shows, or None when there is no readable line (then the compact
    JSON of `data` is shown)."""

    kind: str
    data: dict[str, Any] | list[dict[str, Any]]
    summary: str | None = None


@dataclass(frozen=True)
class Unknown:
    """A type or shape this module does not know, kept raw so nothing is lost or guessed.

    `reason` is "unknown type", "unknown shape" or "date out of range"."""

    field_type: str
    raw: Any
    reason: str


Value = Cleared | Text | Number | Flag | Day | Moment | Texts | Structured | Unknown


TRUNCATED = "truncated"
UNKNOWN_SHAPE = "unknown_shape"


@dataclass(frozen=True)
class Converted:
    """One value for one target: the wire value, or a clear, or a skip with its reason.

    `notes` are counted by the caller (`truncated`, `unknown_shape`); a `skip` is a counted,
    reported refusal: the target is left as it is for this field."""

    value: Any = None
    cleared: bool = False
    notes: tuple[str, ...] = field(default=())
    skip: str | None = None


def sent(value: Any, *notes: str) -> Converted:
    """A value to send, with the notes it earned."""
    return Converted(value=value, notes=notes)


def skipped(reason: str) -> Converted:
    """A value the target cannot hold."""
    return Converted(skip=reason)
