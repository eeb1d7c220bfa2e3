"""Deal events into Klaviyo: bulk create jobs (≤ 1,000, never a unique_id twice in one
request), or one by one through `POST /api/events`, which de-duplicates on unique_id: the path
for events whose outcome a crash, a lost answer or a refusal naming no event left unknown (a
bulk job is never sent twice)."""

from __future__ import annotations

from dataclasses import replace

from kommo_sync.batching import chunks
from kommo_sync.destinations.klaviyo.api import SMALL_RUN, events_job_body
from kommo_sync.destinations.klaviyo.sending import Request, failure_of, send
from kommo_sync.errors import RequestRefused, RetryLater
from kommo_sync.http import HttpClient
from kommo_sync.plan import Change, Outcome

EVENT_JOB_SIZE = 1000
EVENT_JOBS = Request("POST", "/api/event-bulk-create-jobs", repeatable=False)


class DealEvents:
    def __init__(self, http: HttpClient):
        self.http = http

    def push(self, changes: list[Change], outcome_unknown: bool = False) -> list[Outcome]:
        """Few events, or events whose outcome is unknown, go one by one; the rest in jobs, each
        event id once (a change repeating one gets the first's outcome)."""
        if outcome_unknown or len(changes) <= SMALL_RUN:
            return [self._send_event(change) for change in changes]
        firsts: dict[str, Change] = {}
        for change in changes:
            firsts.setdefault(change.record["event_id"], change)
        outcomes: dict[str, Outcome] = {}
        for chunk in chunks(list(firsts.values()), EVENT_JOB_SIZE):
            outcomes.update(self._event_job(chunk))
        return [replace(outcomes[c.record["event_id"]], change=c) for c in changes]

    def _send_event(self, change: Change) -> Outcome:
        """POST /api/events: Klaviyo records a repeated unique_id once, so a re-send is safe."""
        try:
            self.http.request("POST", "/api/events", json=change.payload)
        except (RequestRefused, RetryLater) as exc:
            failure = failure_of(exc, attributed=True)
            return Outcome(change, False, failure.permanent, failure.reason)
        return Outcome(change, True)

    def _event_job(self, chunk: list[Change]) -> dict[str, Outcome]:
        """One bulk create job, never sent twice: it has no status to read back, so events whose
        outcome is unknown (a lost answer, a 5xx) or that were refused without being named go one
        by one through POST /api/events, which records a repeated unique_id once."""
        sent = send(
            self.http, EVENT_JOBS, chunk, lambda part: events_job_body([c.payload for c in part])
        )
        outcomes = {chunk[i].record["event_id"]: Outcome(chunk[i], True) for i in sent.sent}
        for index, failure in sent.failures.items():
            outcomes[chunk[index].record["event_id"]] = Outcome(
                chunk[index], False, failure.permanent, failure.reason
            )
        for index in sent.unsettled:
            outcomes[chunk[index].record["event_id"]] = self._send_event(chunk[index])
        return outcomes
