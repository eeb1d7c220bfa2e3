"""What Mailchimp learned, read back: unsubscribes and cleaned addresses since the cursor, and
(optionally) the opens and clicks of campaigns sent to the audience."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kommo_sync.clock import epoch_of, iso_utc
from kommo_sync.destinations.mailchimp.api import AudienceApi
from kommo_sync.destinations.mailchimp.mapping import NAME
from kommo_sync.model import Feedback, FeedbackKind

ACTIVITY_DAYS = 30  # campaigns sent this long before the window may still be opened in it
WITHDRAWN = (FeedbackKind.UNSUBSCRIBED, FeedbackKind.CLEANED)
ACTIVITY = (FeedbackKind.OPEN, FeedbackKind.CLICK)
MEMBER_FIELDS = (
    "members.id,members.email_address,members.status,members.last_changed,"
    "members.unsubscribe_reason,total_items"
)
CAMPAIGN_FIELDS = (
    "campaigns.id,campaigns.settings.title,campaigns.settings.subject_line,total_items"
)


def read_feedback(
    api: AudienceApi, list_name: str, since: int, until: int, activity: bool
) -> Iterator[Feedback]:
    """Unsubscribes and cleaned addresses in (since, until], then opens and clicks if asked."""
    place = f"Mailchimp list '{list_name}'"
    for kind in WITHDRAWN:
        for member in _members_changed(api, kind, since, until):
            yield _member_feedback(member, kind, place)
    if activity:
        yield from _activity(api, since, until, place)


def _members_changed(
    api: AudienceApi, status: FeedbackKind, since: int, until: int
) -> Iterator[dict[str, Any]]:
    """Members whose status became `status` in (since, until], oldest first, 1,000 a page."""
    params = {
        "status": str(status),
        "since_last_changed": iso_utc(since),
        "before_last_changed": iso_utc(until + 1),
        "sort_field": "last_changed",
        "sort_dir": "ASC",
        "fields": MEMBER_FIELDS,
    }
    return api.collection(f"{api.list_path}/members", "members", params)


def _activity(api: AudienceApi, since: int, until: int, place: str) -> Iterator[Feedback]:
    """Opens and clicks of campaigns sent to this audience in the last 30 days."""
    params = {
        "list_id": api.list_id,
        "status": "sent",
        "since_send_time": iso_utc(since - ACTIVITY_DAYS * 86400),
        "fields": CAMPAIGN_FIELDS,
    }
    for campaign in api.collection("/campaigns", "campaigns", params):
        settings = campaign.get("settings") or {}
        title = settings.get("title") or settings.get("subject_line") or campaign["id"]
        rows = api.collection(
            f"/reports/{campaign['id']}/email-activity",
            "emails",
            {"since": iso_utc(since)},
            item_key="email_id",
        )
        for row in rows:
            yield from _row_feedback(row, campaign["id"], title, place, since, until)


def _member_feedback(member: dict[str, Any], kind: FeedbackKind, place: str) -> Feedback:
    at = epoch_of(member.get("last_changed"))
    return Feedback(
        NAME,
        kind,
        str(member["email_address"]).lower(),
        at,
        place,
        f"{NAME}:{kind}:{member['id']}:{at}",
        detail=member.get("unsubscribe_reason") or "",
    )


def _row_feedback(
    row: dict[str, Any], campaign_id: str, title: str, place: str, since: int, until: int
) -> Iterator[Feedback]:
    """The opens and clicks in (since, until] of one address's campaign activity."""
    for act in row.get("activity") or []:
        at = epoch_of(act.get("timestamp"))
        if act.get("action") in ACTIVITY and since < at <= until:
            kind = FeedbackKind(act["action"])
            yield Feedback(
                NAME,
                kind,
                str(row["email_address"]).lower(),
                at,
                place,
                f"{NAME}:{kind}:{campaign_id}:{row['email_id']}:{at}",
                detail=title,
                url=act.get("url") or "",
            )
