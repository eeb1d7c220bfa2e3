"""The one classification table: which vendor answer is permanent, transient or fatal.

A failure belongs to a record only when the vendor names that record (an error pointer, a
member error, a `request_id`): `attributed=True`. It is permanent only when the vendor says that
record is bad. Anything not attributed is transient for every record the request held (retried
next run) or fatal for the vendor (credentials, rights, account).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    FATAL = "fatal"


@dataclass(frozen=True)
class Rule:
    """`vendor` ("*" for any), statuses, an optional pattern searched (case-insensitively) in the
    vendor's code, title and detail, and whether the rule is for attributed failures only."""

    vendor: str
    statuses: frozenset[int]
    pattern: str | None
    attributed: bool | None
    kind: Kind
    why: str

    def matches(self, vendor: str, status: int, text: str, attributed: bool) -> bool:
        return (
            (self.vendor in ("*", vendor))
            and status in self.statuses
            and (self.attributed is None or self.attributed == attributed)
            and (self.pattern is None or re.search(self.pattern, text, re.IGNORECASE) is not None)
        )


CLIENT_ERRORS = frozenset(range(400, 500))
SERVER_FAULTS = frozenset({408, 500, 502, 503, 504})

RULES: tuple[Rule, ...] = (
    Rule(
        "mailchimp batch archive",
        frozenset({403, 404}),
        None,
        None,
        Kind.TRANSIENT,
        "the batch results link expired: fetched again from a fresh link",
    ),
    Rule("*", frozenset({401}), None, None, Kind.FATAL, "credentials refused"),
    Rule(
        "*", frozenset({403}), None, None, Kind.FATAL, "the key lacks rights or the IP is blocked"
    ),
    Rule("kommo", frozenset({402}), None, None, Kind.FATAL, "the Kommo account is not paid up"),
    Rule("*", frozenset({429}), None, None, Kind.TRANSIENT, "rate limited"),
    Rule("*", SERVER_FAULTS, None, None, Kind.TRANSIENT, "server or gateway fault"),
    Rule(
        "mailchimp",
        CLIENT_ERRORS,
        r"signed up to a lot of lists|recent\w* signup",
        True,
        Kind.TRANSIENT,
        "Mailchimp's per-address signup throttle",
    ),
    Rule(
        "mailchimp",
        CLIENT_ERRORS,
        r"fake|not a valid|invalid email|looks invalid",
        True,
        Kind.PERMANENT,
        "the address is fake or invalid",
    ),
    Rule(
        "mailchimp",
        CLIENT_ERRORS,
        r"compliance state",
        True,
        Kind.PERMANENT,
        "the address is in a compliance state (unsubscribed, bounced, abuse)",
    ),
    Rule(
        "mailchimp",
        CLIENT_ERRORS,
        r"forgotten|permanently deleted",
        True,
        Kind.PERMANENT,
        "the address was forgotten (GDPR) and cannot be re-imported",
    ),
    Rule("klaviyo", CLIENT_ERRORS, r"throttl|rate", True, Kind.TRANSIENT, "throttled for this row"),
    Rule(
        "*",
        frozenset({413}),
        None,
        False,
        Kind.TRANSIENT,
        "request too large: sent again in halves",
    ),
    Rule(
        "*",
        CLIENT_ERRORS,
        None,
        True,
        Kind.PERMANENT,
        "the vendor named this record and refused it",
    ),
    Rule(
        "*",
        CLIENT_ERRORS,
        None,
        False,
        Kind.TRANSIENT,
        "a whole request refused without naming a record: held back, retried next run",
    ),
)


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    why: str

    @property
    def permanent(self) -> bool:
        return self.kind is Kind.PERMANENT


def classify(vendor: str, status: int, text: str = "", *, attributed: bool = False) -> Verdict:
    """The first rule matching this answer; statuses no rule knows are transient."""
    for rule in RULES:
        if rule.matches(vendor.lower(), status, text, attributed):
            return Verdict(rule.kind, rule.why)
    return Verdict(Kind.TRANSIENT, f"HTTP {status} is not a known answer: retried next run")
