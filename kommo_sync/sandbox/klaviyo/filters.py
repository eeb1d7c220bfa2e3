"""Klaviyo's `filter=` expressions: `equals(email,"a@b.c")`, `any(...)`, comparisons, comma-joined.

Parsed, typed against what each endpoint allows (400 otherwise) and evaluated over records.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from kommo_sync.sandbox.klaviyo.errors import ApiError, invalid
from kommo_sync.sandbox.klaviyo.rules import parse_datetime


@dataclass(frozen=True)
class Condition:
    op: str
    field: str
    value: Any = None
    quoted: bool = False


class FilterParser:
    """Parses Klaviyo's filter syntax.

    Example: `equals(email,"a@b.c"),greater-than(updated,2026-01-01T00:00:00Z)`.
    """

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def parse(self) -> list[Condition]:
        conditions = [self._condition()]
        while self._take(","):
            conditions.append(self._condition())
        self._skip_space()
        if self.pos != len(self.text):
            raise ValueError("unexpected text after the last condition")
        return conditions

    def _condition(self) -> Condition:
        op = self._word()
        self._expect("(")
        name = self._word()
        value, quoted = self._value() if self._take(",") else (None, False)
        self._expect(")")
        return Condition(op, name, value, quoted)

    def _value(self) -> tuple[Any, bool]:
        self._skip_space()
        char = self.text[self.pos : self.pos + 1]
        if char and char in "'\"":
            return self._string(char), True
        if char == "[":
            return self._list(), True
        return self._bare(), False

    def _list(self) -> list[Any]:
        self.pos += 1
        items: list[Any] = []
        while not self._take("]"):
            if items:
                self._expect(",")
            items.append(self._value()[0])
        return items

    def _string(self, quote: str) -> str:
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise ValueError("unterminated string")
        value, self.pos = self.text[self.pos + 1 : end], end + 1
        return value

    def _bare(self) -> str:
        match = re.compile(r"[^,)\]]+").match(self.text, self.pos)
        if not match or not match.group().strip():
            raise ValueError("missing value")
        self.pos = match.end()
        return match.group().strip()

    def _word(self) -> str:
        self._skip_space()
        match = re.compile(r"[A-Za-z0-9_.$-]+").match(self.text, self.pos)
        if not match:
            raise ValueError("expected a name")
        self.pos = match.end()
        return match.group()

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _take(self, char: str) -> bool:
        self._skip_space()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def _expect(self, char: str) -> None:
        if not self._take(char):
            raise ValueError(f"expected '{char}'")


COMPARISONS = frozenset({"greater-than", "greater-or-equal", "less-than", "less-or-equal"})


EQUALITY = frozenset({"equals", "any"})


COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": operator.eq,
    "any": lambda value, options: value in options,
    "greater-than": operator.gt,
    "greater-or-equal": operator.ge,
    "less-than": operator.lt,
    "less-or-equal": operator.le,
    "has": lambda value, _: True,
}


FilterSpec = dict[str, tuple[str, frozenset[str]]]


def invalid_filter(reason: str) -> ApiError:
    return invalid(f"Invalid filter provided. {reason}", parameter="filter")


def parse_filter(text: str | None, spec: FilterSpec) -> list[Condition]:
    """Parsed and typed conditions; 400 for syntax, fields or operators the endpoint refuses."""
    if not text:
        return []
    try:
        conditions = FilterParser(text).parse()
    except ValueError as exc:
        raise invalid_filter(f"Could not parse '{text}': {exc}.") from exc
    return [typed_condition(condition, spec) for condition in conditions]


def typed_condition(condition: Condition, spec: FilterSpec) -> Condition:
    kind, operators = spec.get(condition.field, ("", frozenset()))
    if not kind:
        raise invalid_filter(f"'{condition.field}' is not a valid field for this endpoint.")
    if condition.op not in operators:
        raise invalid_filter(f"'{condition.op}' is not a valid operator for '{condition.field}'.")
    return replace(condition, value=typed_value(condition, kind))


def typed_value(condition: Condition, kind: str) -> Any:
    value = condition.value
    if kind == "relation":
        return None
    if condition.op == "any":
        if not isinstance(value, list):
            raise invalid_filter(f"'any' needs a list for '{condition.field}'.")
        return [normalized(condition.field, str(item)) for item in value]
    if kind == "string":
        if not condition.quoted:
            raise invalid_filter(f"String values must be quoted: '{value}'.")
        return normalized(condition.field, value)
    if condition.quoted:
        raise invalid_filter(f"Datetimes must be unquoted: '{value}'.")
    return filter_datetime(value)


def filter_datetime(value: str) -> float:
    if re.fullmatch(r"\d+", value):
        return float(value)
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise invalid_filter(f"'{value}' is not a valid datetime.") from exc


def normalized(field_name: str, value: str) -> str:
    return value.strip().lower() if field_name.endswith("email") else value


def satisfies(values: Iterable[Any], condition: Condition) -> bool:
    compare = COMPARATORS[condition.op]
    return any(value is not None and compare(value, condition.value) for value in values)


def string_field(*operators: str) -> tuple[str, frozenset[str]]:
    return ("string", frozenset(operators))


def datetime_field(*operators: str) -> tuple[str, frozenset[str]]:
    return ("datetime", frozenset(operators))


SUPPRESSION = "subscriptions.email.marketing.suppression"


LIST_SUPPRESSIONS = "subscriptions.email.marketing.list_suppressions"


PROFILE_FILTERS: FilterSpec = {
    "id": string_field(*EQUALITY),
    "email": string_field(*EQUALITY),
    "phone_number": string_field(*EQUALITY),
    "external_id": string_field(*EQUALITY),
    "created": datetime_field("greater-than", "less-than"),
    "updated": datetime_field("greater-than", "less-than"),
    f"{SUPPRESSION}.reason": string_field("equals"),
    f"{SUPPRESSION}.timestamp": datetime_field(*COMPARISONS),
    f"{LIST_SUPPRESSIONS}.reason": string_field("equals"),
    f"{LIST_SUPPRESSIONS}.timestamp": datetime_field(*COMPARISONS),
    f"{LIST_SUPPRESSIONS}.list_id": string_field("equals"),
}


EVENT_FILTERS: FilterSpec = {
    "metric_id": string_field("equals"),
    "profile_id": string_field("equals"),
    "profile": ("relation", frozenset({"has"})),
    "metric": ("relation", frozenset({"has"})),
    "datetime": datetime_field(*COMPARISONS),
    "timestamp": datetime_field(*COMPARISONS),
}


METRIC_FILTERS: FilterSpec = {
    "integration.name": string_field("equals"),
    "integration.category": string_field("equals"),
}


LIST_FILTERS: FilterSpec = {
    "name": string_field(*EQUALITY),
    "id": string_field(*EQUALITY),
    "created": datetime_field("greater-than"),
    "updated": datetime_field("greater-than"),
}


JOB_FILTERS: FilterSpec = {"status": string_field(*EQUALITY)}


MEMBER_FILTERS: FilterSpec = {
    "email": string_field(*EQUALITY),
    "phone_number": string_field(*EQUALITY),
    "joined_group_at": datetime_field(*COMPARISONS),
}
