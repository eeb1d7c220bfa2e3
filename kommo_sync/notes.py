"""Feedback → notes on Kommo contacts and their open deals (texts and keys are pure)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from kommo_sync.model import Feedback, FeedbackKind

SUPPRESSING = frozenset({FeedbackKind.UNSUBSCRIBED, FeedbackKind.CLEANED})
OPTING_OUT = SUPPRESSING | {FeedbackKind.SMS_UNSUBSCRIBED}  # noted on the contact
ACTIVITY = frozenset({FeedbackKind.OPEN, FeedbackKind.CLICK})
TIMES = {1: "once", 2: "twice"}


@dataclass(frozen=True)
class PlannedNote:
    """One note to write once: `key` is stable across runs and overlapping windows."""

    key: str
    contact_id: int
    entity: str  # "contacts" or "leads"
    entity_id: int
    text: str


def day(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d")


def unsubscribe_text(item: Feedback) -> str:
    verb = "Removed (cleaned) from" if item.kind == "cleaned" else "Unsubscribed from"
    reason = f" (reason: {item.detail})" if item.detail else ""
    channel = "SMS" if item.kind == FeedbackKind.SMS_UNSUBSCRIBED else "email"
    return f"{verb} {item.place} on {day(item.at)}{reason}. Do not include in {channel} campaigns."


def activity_text(items: Iterable[Feedback]) -> str:
    """One sentence per person: "Opened 'November newsletter' twice, clicked pricing link"."""
    opens: dict[str, int] = defaultdict(int)
    clicks: dict[str, int] = defaultdict(int)
    places = set()
    for item in items:
        places.add(item.place)
        target = opens if item.kind == "open" else clicks
        target[item.detail if item.kind == "open" else (item.url or item.detail)] += 1
    parts = [f"opened '{title}' {_times(n)}" for title, n in opens.items()]
    parts += [f"clicked {url} {_times(n)}" for url, n in clicks.items()]
    sentence = ", ".join(parts)
    return f"Email activity in {', '.join(sorted(places))}: {sentence[:1].upper()}{sentence[1:]}."


def _times(count: int) -> str:
    return TIMES.get(count, f"{count} times")


def notes_for(
    contact_id: int, open_deal_ids: Iterable[int], key: str, text: str, on_open_deals: bool
) -> list[PlannedNote]:
    """The contact's note and, when asked, one on each of its open deals."""
    notes = [PlannedNote(f"{key}|contacts:{contact_id}", contact_id, "contacts", contact_id, text)]
    if on_open_deals:
        notes += [
            PlannedNote(f"{key}|leads:{lead_id}", contact_id, "leads", lead_id, text)
            for lead_id in sorted(open_deal_ids)
        ]
    return notes
