"""The push strategy for profiles: the cheapest safe path per run size, then lists and consent.

A handful of profiles go through `POST /api/profile-import` one by one, more through bulk
import jobs. Stage lists then move by relationship calls (≤ 1,000 ids), consent by Bulk
Subscribe (≤ 1,000) and Bulk Unsubscribe (≤ 100), email first, then SMS (`sms`), each only for
the people whose import held.
"""

from __future__ import annotations

from kommo_sync.batching import JobTimer, chunks
from kommo_sync.clock import Clock
from kommo_sync.destinations.klaviyo.api import (
    LIST_POINTER,
    ROW_POINTER,
    SMALL_RUN,
    ConsentRow,
    consent_body,
    index_locator,
    list_body,
)
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.destinations.klaviyo.feedback import KlaviyoFeedback
from kommo_sync.destinations.klaviyo.imports import ImportJobs
from kommo_sync.destinations.klaviyo.mapping import may_subscribe
from kommo_sync.destinations.klaviyo.operations import sync_of
from kommo_sync.destinations.klaviyo.profiles import Result, Results, SingleImports, apply
from kommo_sync.destinations.klaviyo.sending import Request, send
from kommo_sync.destinations.klaviyo.sms import SmsConsent, SmsOptOuts
from kommo_sync.http import HttpClient
from kommo_sync.pipeline import map_side_by_side
from kommo_sync.plan import Change, Outcome

LIST_CHANGE_SIZE = 1000
SUBSCRIBE_SIZE = 1000
SUBSCRIBE_JOBS_AT_ONCE = 4
UNSUBSCRIBE_SIZE = 100
SUBSCRIBE_JOBS = Request("POST", "/api/profile-subscription-bulk-create-jobs")
UNSUBSCRIBE_JOBS = Request("POST", "/api/profile-subscription-bulk-delete-jobs")


class ProfilePush:
    """Pushes for one run: `imports` remembers which email sent each phone first."""

    def __init__(
        self,
        config: KlaviyoConfig,
        http: HttpClient,
        clock: Clock,
        job_timer: JobTimer,
        feedback: KlaviyoFeedback,
        sms_optouts: SmsOptOuts,
    ):
        self.config, self.http, self.feedback = config, http, feedback
        self.single = SingleImports(http)
        self.imports = ImportJobs(http, clock, job_timer, self.single)
        self.sms = SmsConsent(http, clock, config.list_id, sms_optouts)

    def push(self, changes: list[Change]) -> list[Outcome]:
        changes = self.single.with_known_ids(changes)
        results = {c.person_id: Result() for c in changes}
        if len(changes) <= SMALL_RUN:
            for change in changes:
                self.single.import_one(change, results[change.person_id])
        else:
            self.imports.import_bulk(changes, results)
        steps = (
            self._move_lists,
            self._subscribe,
            self._unsubscribe,
            self.sms.subscribe,
            self.sms.unsubscribe,
        )
        for step in steps:
            step([c for c in changes if not results[c.person_id].failure], results)
        return [_outcome(change, results[change.person_id]) for change in changes]

    def _move_lists(self, changes: list[Change], results: Results) -> None:
        adds: dict[str, list[Change]] = {}
        removes: dict[str, list[Change]] = {}
        for change in changes:
            lists = sync_of(change).lists
            for list_id in lists.add:
                if list_id not in results[change.person_id].joined:
                    adds.setdefault(list_id, []).append(change)
            for list_id in lists.remove:
                removes.setdefault(list_id, []).append(change)
        for method, moves in (("DELETE", removes), ("POST", adds)):
            for list_id, members in sorted(moves.items()):
                for chunk in chunks(members, LIST_CHANGE_SIZE):
                    self._list_call(method, list_id, chunk, results)

    def _list_call(self, method: str, list_id: str, chunk: list[Change], results: Results) -> None:
        sent = send(
            self.http,
            Request(method, f"/api/lists/{list_id}/relationships/profiles"),
            chunk,
            lambda part: (
                list_body([results[c.person_id].profile_id for c in part]),
                index_locator(LIST_POINTER),
            ),
        )
        apply(chunk, sent, results)

    def _subscribe(self, changes: list[Change], results: Results) -> None:
        """Bulk Subscribe for those who may be subscribed; whoever Klaviyo suppressed since the
        last read (made right before these jobs) is left out and kept unsubscribed. The jobs
        run side by side, each touching only its own rows' results."""
        ready = [
            c for c in changes if sync_of(c).subscribe and self._may_subscribe(results[c.person_id])
        ]
        suppressed = self.feedback.suppressed_since_last_read() if ready else set()
        for change in (c for c in ready if (c.email or "").lower() in suppressed):
            results[change.person_id].notes["kept_unsubscribed"] = True
        ready = [c for c in ready if (c.email or "").lower() not in suppressed]
        map_side_by_side(
            lambda chunk: self._subscribe_chunk(chunk, results),
            list(chunks(ready, SUBSCRIBE_SIZE)),
            SUBSCRIBE_JOBS_AT_ONCE,
            "klaviyo",
        )

    def _subscribe_chunk(self, chunk: list[Change], results: Results) -> None:
        sent = send(
            self.http,
            SUBSCRIBE_JOBS,
            chunk,
            lambda part: (
                consent_body(
                    "profile-subscription-bulk-create-job",
                    "SUBSCRIBED",
                    [ConsentRow(results[c.person_id].profile_id, c.email or "") for c in part],
                    self.config.list_id,
                ),
                index_locator(ROW_POINTER),
            ),
        )
        apply(chunk, sent, results)

    def _may_subscribe(self, result: Result) -> bool:
        """Unknown consent (bulk imports read none back) goes by the suppressions read; a known
        unsubscribe or suppression is kept."""
        marketing = result.marketing
        if marketing is None or may_subscribe(marketing, self.config.list_id):
            return True
        if marketing.get("consent") != "SUBSCRIBED":
            result.notes["kept_unsubscribed"] = True
        return False

    def _unsubscribe(self, changes: list[Change], results: Results) -> None:
        """Consent withdrawn in Kommo: unsubscribed from email marketing (globally, no list)."""
        withdrawn = [c for c in changes if sync_of(c).unsubscribe]
        for chunk in chunks(withdrawn, UNSUBSCRIBE_SIZE):
            bulk_unsubscribe(self.http, chunk, results)


def bulk_unsubscribe(http: HttpClient, chunk: list[Change], results: Results) -> None:
    """One Bulk Unsubscribe job for these people's emails; the rows Klaviyo points at fail."""
    sent = send(
        http,
        UNSUBSCRIBE_JOBS,
        chunk,
        lambda part: (
            consent_body(
                "profile-subscription-bulk-delete-job",
                "UNSUBSCRIBED",
                [ConsentRow(None, c.email or "") for c in part],
            ),
            index_locator(ROW_POINTER),
        ),
    )
    apply(chunk, sent, results)


def _outcome(change: Change, result: Result) -> Outcome:
    if result.failure:
        return Outcome(change, False, result.failure.permanent, result.failure.reason)
    return Outcome(change, True, record_updates={"profile_id": result.profile_id, **result.notes})
