"""The classification table: one test per row, and the rule that only a named record is
permanent."""

import pytest

from kommo_sync.failures import RULES, Kind, classify

ROWS = [
    # vendor, status, vendor's words, attributed, expected
    ("Mailchimp batch archive", 403, "AccessDenied: Request has expired", False, Kind.TRANSIENT),
    ("Kommo", 401, "Unauthorized", False, Kind.FATAL),
    ("Mailchimp", 403, "Forbidden", False, Kind.FATAL),
    ("Kommo", 402, "Payment Required", False, Kind.FATAL),
    ("Klaviyo", 429, "throttled", False, Kind.TRANSIENT),
    ("Mailchimp", 503, "Service Unavailable", True, Kind.TRANSIENT),
    (
        "Mailchimp",
        400,
        "ada@firm.io has signed up to a lot of lists very recently",
        True,
        Kind.TRANSIENT,
    ),
    (
        "Mailchimp",
        400,
        "Invalid Resource: test@example.com looks fake or invalid",
        True,
        Kind.PERMANENT,
    ),
    (
        "Mailchimp",
        400,
        "Member In Compliance State: gone@firm.io is in a compliance state",
        True,
        Kind.PERMANENT,
    ),
    (
        "Mailchimp",
        400,
        "Forgotten Email Not Subscribed: erased@firm.io was permanently deleted",
        True,
        Kind.PERMANENT,
    ),
    ("Klaviyo", 400, "Request was throttled for this row", True, Kind.TRANSIENT),
    ("Mailchimp", 413, "Request Entity Too Large", False, Kind.TRANSIENT),
    ("Klaviyo", 400, "Invalid phone number format", True, Kind.PERMANENT),
    ("Klaviyo", 400, "Invalid input.", False, Kind.TRANSIENT),
]


def test_every_rule_of_the_table_has_a_row_here():
    hit = {
        next(i for i, rule in enumerate(RULES) if rule.matches(v.lower(), s, t, a))
        for v, s, t, a, _ in ROWS
    }
    assert hit == set(range(len(RULES)))


@pytest.mark.parametrize("vendor,status,text,attributed,kind", ROWS)
def test_each_answer_is_classified_by_its_row(vendor, status, text, attributed, kind):
    assert classify(vendor, status, text, attributed=attributed).kind is kind


@pytest.mark.parametrize("status", [400, 404, 409, 413, 422])
def test_a_refusal_that_names_no_record_is_never_permanent(status):
    verdict = classify(
        "Mailchimp", status, "Invalid Resource: looks fake or invalid", attributed=False
    )
    assert verdict.kind is Kind.TRANSIENT and not verdict.permanent


def test_an_unknown_status_is_transient():
    assert classify("Klaviyo", 599, "").kind is Kind.TRANSIENT
