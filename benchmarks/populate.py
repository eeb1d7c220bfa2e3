"""Destinations that already hold people, for the first-sync case: a real audience is rarely
empty when a CRM sync is switched on.

A share of the Kommo addresses (`KNOWN`) is already a Mailchimp member and a Klaviyo profile on
the list, next to people Kommo does not know (`STRANGERS` × the Kommo addresses); about 5 % of
them opted out long ago: in Mailchimp unsubscribed (3 %) or cleaned (2 %), in Klaviyo
suppressed. The opt-outs are dated a month back, before any feedback cursor.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

KNOWN = 0.30
STRANGERS = 0.20
UNSUBSCRIBED, CLEANED = 0.03, 0.02
MONTH = 30 * 86_400
PLAUSIBLE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")


@dataclass(frozen=True)
class Populated:
    members: int
    known: int
    strangers: int
    opted_out: int


def kommo_emails(kommo: Any) -> list[str]:
    """Every plausible primary address in the Kommo sandbox, normalised, once each, sorted."""
    found = {email.strip().lower() for email in _email_values(kommo)}
    return sorted(email for email in found if PLAUSIBLE.match(email))


def _email_values(kommo: Any) -> Iterator[str]:
    for contact in kommo.contacts.values():
        for entry in contact["custom_fields_values"] or []:
            if entry["field_id"] == kommo.email_field_id:
                yield from (value["value"] for value in entry["values"][:1])


def populate(stack: Any, seed: int) -> Populated:
    """Fill the stack's Mailchimp audience and Klaviyo list (`stack` is a stack.Stack)."""
    rng = random.Random(seed)
    emails = kommo_emails(stack.kommo)
    known = rng.sample(emails, round(len(emails) * KNOWN))
    strangers = [
        f"reader{n}@newsletter{n % 89}.example.org" for n in range(round(len(emails) * STRANGERS))
    ]
    at = stack.mailchimp.clock.now() - MONTH
    opted_out = sum(_add_person(stack, email, rng.random(), at) for email in known + strangers)
    return Populated(len(known) + len(strangers), len(known), len(strangers), opted_out)


def _add_person(stack: Any, email: str, roll: float, at: float) -> bool:
    """One person in both destinations; True when they opted out."""
    status = (
        "unsubscribed"
        if roll < UNSUBSCRIBED
        else "cleaned"
        if roll < UNSUBSCRIBED + CLEANED
        else "subscribed"
    )
    stack.mailchimp.add_member(stack.list_id, email, status, last_changed=at)
    try:
        stack.klaviyo.add_profile(
            email, lists=[stack.klaviyo_list], subscribed=status == "subscribed"
        )
    except ValueError:  # an address Klaviyo refuses stays a Mailchimp member only
        return status != "subscribed"
    if status != "subscribed":
        stack.klaviyo.unsubscribe(
            email, at=at, reason="UNSUBSCRIBE" if status == "unsubscribed" else "HARD_BOUNCE"
        )
    return status != "subscribed"
