"""SMS marketing consent at Klaviyo: Bulk Subscribe and Bulk Unsubscribe jobs for the sms
channel, and who opted out of SMS there, so no run subscribes them to SMS again.

The core keeps opt-outs by email, and an email suppression stops email marketing. An SMS
opt-out must stop only SMS, so the destination keeps its own in its memory (`sms_optouts`,
email → when): the feedback read adds what Klaviyo reports, a push adds a profile whose
subscriptions read back say SMS unsubscribed, and the plan reads it (`sms_blocked`). Our own
SMS unsubscribes (the Kommo box unchecked) are remembered apart (`sms_own_optouts`), so
reading them back does not block a later, fresh consent from Kommo.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from kommo_sync.batching import chunks
from kommo_sync.clock import Clock, epoch_of
from kommo_sync.destinations.klaviyo.api import ROW_POINTER, ConsentRow, consent_body, index_locator
from kommo_sync.destinations.klaviyo.operations import sync_of
from kommo_sync.destinations.klaviyo.profiles import Results, apply
from kommo_sync.destinations.klaviyo.sending import Request, send
from kommo_sync.http import HttpClient
from kommo_sync.memory import DestinationMemory
from kommo_sync.plan import Change

SMS_OPTOUTS = "sms_optouts"
OWN_SMS_OPTOUTS = "sms_own_optouts"
OWN_CLOCK_SLACK = 600
OWN_APPLY_DELAY = 86_400
SUBSCRIBE_SIZE = 1000
UNSUBSCRIBE_SIZE = 100
SUBSCRIBE = (
    Request("POST", "/api/profile-subscription-bulk-create-jobs"),
    "profile-subscription-bulk-create-job",
    "SUBSCRIBED",
)
UNSUBSCRIBE = (
    Request("POST", "/api/profile-subscription-bulk-delete-jobs"),
    "profile-subscription-bulk-delete-job",
    "UNSUBSCRIBED",
)


class SmsOptOuts:
    """SMS opt-outs in the destination's memory, by lower-cased email (workers add to it:
    `lock` makes each read-and-remember one step)."""

    def __init__(self, memory: DestinationMemory):
        self.memory = memory
        self.lock = threading.Lock()

    def emails(self) -> frozenset[str]:
        return frozenset(self.memory.get(SMS_OPTOUTS, {}))

    def add(self, found: dict[str, int]) -> dict[str, int]:
        """Opt-outs Klaviyo reported (email → when), less the ones we made ourselves; returns
        those kept (the news)."""
        with self.lock:
            news = {e: at for e, at in found.items() if not self.ours(e, at)}
            if news:
                self.memory.set(SMS_OPTOUTS, {**self.memory.get(SMS_OPTOUTS, {}), **news})
            return news

    def ours(self, email: str, at: int) -> bool:
        """Whether an SMS opt-out seen at `at` is the unsubscribe we sent for this email."""
        return _ours(self.memory.get(OWN_SMS_OPTOUTS, {}).get(email), at)

    def made(self, emails: Iterable[str], at: int) -> None:
        """SMS unsubscribes we send now (a box unchecked in Kommo)."""
        with self.lock:
            own = dict(self.memory.get(OWN_SMS_OPTOUTS, {}))
            own.update(dict.fromkeys(emails, at))
            self.memory.set(OWN_SMS_OPTOUTS, own)


def _ours(made_at: int | None, seen_at: int) -> bool:
    """Whether an SMS opt-out seen at `seen_at` is the unsubscribe we sent at `made_at`: from a
    little before (Klaviyo's clock may lag ours) to a day after (jobs apply late)."""
    return made_at is not None and made_at - OWN_CLOCK_SLACK <= seen_at <= made_at + OWN_APPLY_DELAY


class SmsConsent:
    """The SMS steps of a profile push, after the imports, list moves and email consent."""

    def __init__(self, http: HttpClient, clock: Clock, list_id: str, optouts: SmsOptOuts):
        self.http, self.clock, self.list_id, self.optouts = http, clock, list_id, optouts

    def subscribe(self, changes: list[Change], results: Results) -> None:
        """Bulk Subscribe (sms) with each row's E.164 phone and date of birth; a profile whose
        read-back says SMS unsubscribed, or whose phone was withheld, is left out (noted)."""
        ready = [c for c in changes if sync_of(c).sms_subscribe and self._may(c, results)]
        for chunk in chunks(ready, SUBSCRIBE_SIZE):
            self._send(SUBSCRIBE, chunk, results, self.list_id)

    def _may(self, change: Change, results: Results) -> bool:
        result, email = results[change.person_id], (change.email or "").lower()
        at = _unsubscribed_at(result.sms_marketing)
        if at is not None and not self.optouts.ours(email, at):
            result.notes["sms_kept_unsubscribed"] = True
            self.optouts.add({email: at})
            return False
        if not sync_of(change).row.phone:
            result.notes["sms_phone_withheld"] = True
            return False
        return True

    def unsubscribe(self, changes: list[Change], results: Results) -> None:
        """Bulk Unsubscribe (sms, no list: SMS consent is the profile's) for unchecked boxes."""
        withdrawn = [c for c in changes if sync_of(c).sms_unsubscribe]
        if withdrawn:
            self.optouts.made(((c.email or "").lower() for c in withdrawn), int(self.clock.now()))
        for chunk in chunks(withdrawn, UNSUBSCRIBE_SIZE):
            self._send(UNSUBSCRIBE, chunk, results, None)

    def _send(
        self,
        job: tuple[Request, str, str],
        chunk: list[Change],
        results: Results,
        list_id: str | None,
    ) -> None:
        """One job for `chunk`; the rows Klaviyo points at (a bad phone, age gating) fail."""
        request, job_type, consent = job

        def row(change: Change) -> ConsentRow:
            sync, subscribing = sync_of(change), consent == "SUBSCRIBED"
            profile_id = results[change.person_id].profile_id if subscribing else None
            birth_date = sync.birth_date if subscribing else None
            return ConsentRow(profile_id, change.email or "", sync.row.phone, birth_date)

        sent = send(
            self.http,
            request,
            chunk,
            lambda part: (
                consent_body(job_type, consent, [row(c) for c in part], list_id, "sms"),
                index_locator(ROW_POINTER),
            ),
        )
        apply(chunk, sent, results)


def _unsubscribed_at(marketing: dict[str, Any] | None) -> int | None:
    """When a read-back SMS marketing block says the person opted out of SMS (None if not)."""
    if marketing is None or marketing.get("consent") != "UNSUBSCRIBED":
        return None
    return epoch_of(marketing.get("consent_timestamp") or marketing.get("last_updated"))
