"""What Klaviyo tells back: email suppressions (feedback, the plan's suppression list, and the
read right before Bulk Subscribe), SMS opt-outs (kept in the destination's memory: see `sms`)
and, optionally, opens and clicks.

Bulk Subscribe lifts unsubscribes, so it is never sent for a profile Klaviyo reports
unsubscribed or suppressed: right before the jobs, the profiles suppressed since the last read
(remembered as `suppressions_read_at`) are read and left out.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

from kommo_sync.clock import Clock, epoch_of, iso_utc
from kommo_sync.destinations.klaviyo.api import PAGE_SIZE, bodies, error_text, pages
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.destinations.klaviyo.mapping import NAME
from kommo_sync.destinations.klaviyo.sms import SmsOptOuts
from kommo_sync.errors import RequestRefused
from kommo_sync.http import HttpClient
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import Feedback, FeedbackKind

SUPPRESSION = "subscriptions.email.marketing.suppression"
SUPPRESSIONS_READ_AT = "suppressions_read_at"
EVER = "1990-01-01T00:00:00Z"
CLOCK_SKEW = 60
FEEDBACK_SORT = "feedback_sort"
SORT_WORD = re.compile(r"\bsort\b", re.IGNORECASE)
ACTIVITY_PAGE_SIZE = 200
SMS_UNSUBSCRIBED_METRIC = "Unsubscribed from SMS Marketing"
ACTIVITY_METRICS = {"Opened Email": FeedbackKind.OPEN, "Clicked Email": FeedbackKind.CLICK}
SUPPRESSION_KINDS = {
    "UNSUBSCRIBE": (FeedbackKind.UNSUBSCRIBED, ""),
    "SPAM_COMPLAINT": (FeedbackKind.UNSUBSCRIBED, "marked an email as spam"),
    "USER_SUPPRESSED": (FeedbackKind.UNSUBSCRIBED, "suppressed in Klaviyo"),
    "HARD_BOUNCE": (FeedbackKind.CLEANED, "hard bounce"),
    "INVALID_EMAIL": (FeedbackKind.CLEANED, "invalid email"),
}


class KlaviyoFeedback:
    """Reads on `http`, remembering in `memory` (get/set only: workers call
    `suppressed_since_last_read`, `lock` makes its read-and-remember one step)."""

    def __init__(
        self,
        config: KlaviyoConfig,
        http: HttpClient,
        clock: Clock,
        memory: DestinationMemory,
        sms_optouts: SmsOptOuts | None = None,
    ):
        self.config, self.http, self.clock, self.memory = config, http, clock, memory
        self.sms_optouts = sms_optouts
        self.lock = threading.Lock()

    def read_feedback(self, since: int, until: int, activity: bool) -> Iterator[Feedback]:
        """Email-marketing suppressions from the profiles API, filtered by suppression time.

        The profiles API (filter on `subscriptions.email.marketing.suppression.timestamp`, which
        the spec lists with gt/lte) gives the state with its reason in one paged read, while the
        events API needs the account's metric ids first and a metric exists only once it happened.
        """
        window = (
            f"greater-than({SUPPRESSION}.timestamp,{iso_utc(since)}),"
            f"less-or-equal({SUPPRESSION}.timestamp,{iso_utc(until)})"
        )
        params = {
            "additional-fields[profile]": "subscriptions",
            "filter": window,
            "page[size]": PAGE_SIZE,
            "fields[profile]": "email,subscriptions",
        }
        for profile in self._suppressed_profiles(params):
            yield from suppression_feedback(profile, since, until)
        metrics = self._metric_ids() if activity or self.sms_optouts is not None else {}
        if self.sms_optouts is not None:
            for email, at in self.sms_optouts.add(self._sms_optouts(metrics, since, until)).items():
                yield sms_optout_feedback(email, at)
        if activity:
            yield from self._activity(metrics, since, until)

    def _suppressed_profiles(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Sorted by suppression time, unless Klaviyo refuses a sort beside a subscriptions filter
        (reported, not documented): then unsorted, and remembered, so later runs send no request
        bound to fail first. Nothing depends on the order: feedback keys are stable."""
        if self.memory.get(FEEDBACK_SORT, True):
            try:
                sorted_params = {**params, "sort": f"{SUPPRESSION}.timestamp"}
                yield from pages(self.http, "/api/profiles", sorted_params)
                return
            except RequestRefused as exc:
                if not _refuses_sort(exc):
                    raise
                self.memory.set(FEEDBACK_SORT, False)
        yield from pages(self.http, "/api/profiles", params)

    def _metric_ids(self) -> dict[str, str]:
        """The account's metric ids by name (a metric exists once it first happened)."""
        return {m["attributes"].get("name"): m["id"] for m in pages(self.http, "/api/metrics", {})}

    def _sms_optouts(self, metrics: dict[str, str], since: int, until: int) -> dict[str, int]:
        """Who opted out of SMS marketing in (since, until], by email: the profiles API cannot
        filter on SMS consent (its filters name only email suppressions), so the events of
        Klaviyo's SMS unsubscribe metric are read (STOP replies, carrier deactivations,
        unsubscribes by hand or API all record it)."""
        metric_id = metrics.get(SMS_UNSUBSCRIBED_METRIC)
        if metric_id is None:
            return {}
        found: dict[str, int] = {}
        for event, email in self._events_with_email(metric_id, since, until):
            at = epoch_of(event["attributes"]["datetime"])
            found[email] = max(found.get(email, at), at)
        return found

    def _activity(self, metrics: dict[str, str], since: int, until: int) -> Iterator[Feedback]:
        for name, kind in ACTIVITY_METRICS.items():
            if name in metrics:
                for event, email in self._events_with_email(metrics[name], since, until):
                    yield activity_feedback(event, email, kind)

    def _events_with_email(
        self, metric_id: str, since: int, until: int
    ) -> Iterator[tuple[dict[str, Any], str]]:
        """Each event of the metric in (since, until] with its profile's email."""
        params = {
            "filter": f'equals(metric_id,"{metric_id}"),'
            f"greater-than(datetime,{iso_utc(since)}),"
            f"less-or-equal(datetime,{iso_utc(until)})",
            "include": "profile",
            "fields[profile]": "email",
            "page[size]": ACTIVITY_PAGE_SIZE,
        }
        for body in bodies(self.http, "/api/events", params):
            emails = {
                p["id"]: str(p["attributes"].get("email") or "").lower()
                for p in body.get("included") or []
            }
            for event in body.get("data") or []:
                email = emails.get(_profile_id_of(event))
                if email:
                    yield event, email

    def known_suppressions(self) -> Iterator[str]:
        """Everyone Klaviyo must not email: global suppressions and suppressions on our list.
        The time of the read is remembered: Bulk Subscribe reads only what came after it."""
        started = int(self.clock.now())
        list_id = self.config.list_id
        filters = (
            f"greater-than({SUPPRESSION}.timestamp,{EVER})",
            f'equals(subscriptions.email.marketing.list_suppressions.list_id,"{list_id}")',
        )
        for condition in filters:
            yield from self._suppressed_emails(condition)
        self.memory.set(SUPPRESSIONS_READ_AT, started)

    def suppressed_since_last_read(self) -> set[str]:
        """Emails globally suppressed in Klaviyo since the last read, less a minute for clock
        skew (all of them when no read is remembered), in one paged read. What the plan knew
        may be a crash or a disabled feedback read old, and Bulk Subscribe lifts suppressions."""
        with self.lock:
            last = self.memory.get(SUPPRESSIONS_READ_AT)
            started = int(self.clock.now())
            since = EVER if last is None else iso_utc(last - CLOCK_SKEW)
            emails = set(self._suppressed_emails(f"greater-than({SUPPRESSION}.timestamp,{since})"))
            self.memory.set(SUPPRESSIONS_READ_AT, max(started, last or 0))
        return emails

    def _suppressed_emails(self, condition: str) -> Iterator[str]:
        params = {"filter": condition, "fields[profile]": "email", "page[size]": PAGE_SIZE}
        for profile in pages(self.http, "/api/profiles", params):
            if profile["attributes"].get("email"):
                yield str(profile["attributes"]["email"]).lower()


def suppression_feedback(profile: dict[str, Any], since: int, until: int) -> Iterator[Feedback]:
    """One Feedback per global email suppression of this profile inside (since, until]."""
    marketing = (
        ((profile.get("attributes") or {}).get("subscriptions") or {}).get("email") or {}
    ).get("marketing") or {}
    email = str(profile["attributes"].get("email") or "").lower()
    for suppression in marketing.get("suppression") or []:
        at = epoch_of(suppression["timestamp"])
        reason = suppression.get("reason")
        kind, detail = SUPPRESSION_KINDS.get(reason, (FeedbackKind.UNSUBSCRIBED, ""))
        if email and since < at <= until:
            yield Feedback(
                NAME,
                kind,
                email,
                at,
                "Klaviyo email marketing",
                f"klaviyo:{reason}:{profile['id']}:{at}",
                detail=detail,
            )


def sms_optout_feedback(email: str, at: int) -> Feedback:
    """An SMS opt-out, noted on the contact (the destination keeps it from SMS; email goes on)."""
    kind = FeedbackKind.SMS_UNSUBSCRIBED
    return Feedback(NAME, kind, email, at, "Klaviyo SMS marketing", f"klaviyo:{kind}:{email}:{at}")


def activity_feedback(event: dict[str, Any], email: str, kind: FeedbackKind) -> Feedback:
    """An open or a click, named by its campaign (or subject) and link."""
    props = event["attributes"].get("event_properties") or {}
    return Feedback(
        NAME,
        kind,
        email,
        epoch_of(event["attributes"]["datetime"]),
        "Klaviyo",
        f"klaviyo:{kind.value}:{event['id']}",
        detail=str(props.get("Campaign Name") or props.get("Subject") or "a campaign"),
        url=str(props.get("URL") or ""),
    )


def _profile_id_of(event: dict[str, Any]) -> Any:
    return ((event.get("relationships") or {}).get("profile") or {}).get("data", {}).get("id")


def _refuses_sort(exc: RequestRefused) -> bool:
    """Klaviyo's 400 for a `sort` it will not take (its error names the parameter or the sort)."""
    errors = (exc.body.get("errors") if isinstance(exc.body, dict) else None) or []
    named = any(
        isinstance(e, dict) and (e.get("source") or {}).get("parameter") == "sort" for e in errors
    )
    return exc.status == 400 and (named or SORT_WORD.search(error_text(exc.body)) is not None)
