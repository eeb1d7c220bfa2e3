"""Bulk profile import jobs: ≤ 10,000 rows and ≤ 4.5 MB each, new people joining their lists
through the job, polled on the injected clock. Import errors per row become rejections, and
identity conflicts go the single way so they get the same care."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import requests

from kommo_sync.batching import JobTimer
from kommo_sync.clock import Clock, epoch_of
from kommo_sync.destinations.klaviyo.api import (
    PAGE_SIZE,
    ROW_POINTER,
    import_job_body,
    index_locator,
    pages,
    text_of,
)
from kommo_sync.destinations.klaviyo.operations import sync_of
from kommo_sync.destinations.klaviyo.profiles import Results, SingleImports, apply
from kommo_sync.destinations.klaviyo.sending import Failure, Request, failure_of, send
from kommo_sync.errors import RequestRefused, RetryLater
from kommo_sync.http import HttpClient
from kommo_sync.pipeline import map_side_by_side
from kommo_sync.plan import Change

IMPORT_JOB_ROWS = 2_500
IMPORT_JOB_BYTES = 4_500_000
IMPORT_JOBS_AT_ONCE = 4
CONFLICT_CODES = ("duplicate_profile", "not_found")
JOBS = "/api/profile-bulk-import-jobs"


class ImportJobs:
    """Bulk imports of one destination. `phone_owners` lives as long as this object (one run):
    which email sent each phone first, as hashes, guarded by `phone_lock` (pushes of several
    batches may run at once)."""

    def __init__(self, http: HttpClient, clock: Clock, job_timer: JobTimer, single: SingleImports):
        self.http, self.clock, self.job_timer, self.single = http, clock, job_timer, single
        self.phone_owners: dict[int, int] = {}
        self.phone_lock = threading.Lock()

    def import_bulk(self, changes: list[Change], results: Results) -> None:
        conflicts = self._import_jobs(self._without_claimed_phones(changes, results), results)
        for change in self._import_without_phones(conflicts, results):
            self.single.import_one(change, results[change.person_id])

    def _import_without_phones(self, conflicts: list[Change], results: Results) -> list[Change]:
        """Identity conflicts are mostly shared office phones: resend those rows in one job
        without the phone (recorded as withheld; a job costs a POST and a poll, one by one costs
        two requests a row, so from two rows on); what still conflicts goes one by one."""
        phoned = [c for c in conflicts if sync_of(c).row.phone]
        if len(phoned) < 2:
            return conflicts
        for change in phoned:
            results[change.person_id].notes["phone_withheld"] = True
        resent = self._import_jobs(list(map(_without_phone, phoned)), results)
        return [c for c in conflicts if c not in phoned] + resent

    def _without_claimed_phones(self, changes: list[Change], results: Results) -> list[Change]:
        """One phone, one Klaviyo profile: a phone this run already sent with another email would
        only come back as a conflict after the job, so such rows go without it at once (withheld,
        as after a conflict). The first person to send a phone keeps it. Only hashes are kept: a
        500,000-contact sync would otherwise hold every phone and email twice."""
        kept = []
        with self.phone_lock:
            for change in changes:
                phone, email = sync_of(change).row.phone, hash((change.email or "").lower())
                if phone and self.phone_owners.setdefault(hash(phone), email) != email:
                    results[change.person_id].notes["phone_withheld"] = True
                    change = _without_phone(change)
                kept.append(change)
        return kept

    def _import_jobs(self, changes: list[Change], results: Results) -> list[Change]:
        """One import job per group of lists to join (and per 10,000 rows), run side by side:
        Klaviyo works on several jobs at once. Returns the rows that hit identity conflicts.
        Each job touches only its own rows' results."""
        jobs = [
            (chunk, list_ids)
            for list_ids, group in _by_lists_to_join(changes)
            for chunk in _import_chunks(group)
        ]
        found = map_side_by_side(
            lambda job: self._import_job(job[0], job[1], results),
            jobs,
            IMPORT_JOBS_AT_ONCE,
            "klaviyo",
        )
        return [change for conflicts in found for change in conflicts]

    def _import_job(
        self, chunk: list[Change], list_ids: list[str], results: Results
    ) -> list[Change]:
        """One bulk import job (or several, when Klaviyo finds it too large); returns the rows
        that hit an identity conflict (to go singly)."""
        sent = send(
            self.http,
            Request("POST", JOBS, need_body=True),
            chunk,
            lambda part: (
                import_job_body([sync_of(c).row.resource() for c in part], list_ids),
                index_locator(ROW_POINTER),
            ),
        )
        apply(chunk, sent, results)
        conflicts: list[Change] = []
        for positions, response in sent.accepted:
            rows = [chunk[i] for i in positions]
            conflicts += self._finish_import(rows, response, list_ids, results)
        return conflicts

    def _finish_import(
        self, rows: list[Change], response: requests.Response, list_ids: list[str], results: Results
    ) -> list[Change]:
        """Wait for an accepted import job and read what it did to each row."""
        try:
            job = self._wait_for_job(response.json()["data"], len(rows))
            failed = int(job["attributes"].get("failed_count") or 0)
            errors = self._import_errors(job["id"]) if failed else {}
            if failed > len(errors):
                raise RetryLater(
                    f"Klaviyo import job {job['id']} failed {failed} rows but named only "
                    f"{len(errors)}; its rows are sent again on the next run"
                )
            found = self._job_profiles(job["id"]) if _needs_read_back(rows) else None
        except (RequestRefused, RetryLater) as exc:
            for change in rows:
                results[change.person_id].fail(failure_of(exc))
            return []
        return _read_job(rows, errors, found, list_ids, results)

    def _wait_for_job(self, job: dict[str, Any], rows: int) -> dict[str, Any]:
        job_id = job["id"]
        job = self.job_timer.wait(
            job,
            rows,
            lambda j: j["attributes"]["status"] in ("complete", "cancelled"),
            lambda _: self.http.get_json(f"{JOBS}/{job_id}")["data"],
            self.clock.sleep,
            f"Klaviyo import job {job_id}",
        )
        if job["attributes"]["status"] == "cancelled":
            raise RetryLater(f"Klaviyo cancelled import job {job['id']}")
        self.job_timer.finished(
            rows,
            epoch_of(job["attributes"].get("completed_at"))
            - epoch_of(job["attributes"].get("created_at")),
        )
        return job

    def _import_errors(self, job_id: str) -> dict[int, dict[str, Any]]:
        """Import errors by the row index their pointer names."""
        errors: dict[int, dict[str, Any]] = {}
        path = f"{JOBS}/{job_id}/import-errors"
        for item in pages(self.http, path, {"page[size]": PAGE_SIZE}):
            attributes = item.get("attributes") or {}
            match = ROW_POINTER.match(str((attributes.get("source") or {}).get("pointer") or ""))
            if match:
                errors.setdefault(int(match[1]), attributes)
        return errors

    def _job_profiles(self, job_id: str) -> dict[str, dict[str, Any]]:
        """The profiles a job created or updated, by lower-cased email, with their consent."""
        params = {"page[size]": PAGE_SIZE, "additional-fields[profile]": "subscriptions"}
        return {
            str(p["attributes"].get("email") or "").lower(): p
            for p in pages(self.http, f"{JOBS}/{job_id}/profiles", params)
        }


def _read_job(
    rows: list[Change],
    errors: dict[int, dict[str, Any]],
    found: dict[str, dict[str, Any]] | None,
    list_ids: list[str],
    results: Results,
) -> list[Change]:
    """Each row's result from a finished job; returns the rows that hit identity conflicts."""
    conflicts = []
    for index, change in enumerate(rows):
        result, error = results[change.person_id], errors.get(index)
        email = (change.email or "").lower()
        if error and error.get("code") in CONFLICT_CODES:
            conflicts.append(change)
        elif error:
            reason = str(error.get("detail") or error.get("title") or error.get("code"))
            status = int(error.get("status") or 400)
            result.fail(Failure.judged(status, reason, True, text_of(error)))
        elif found is None:
            result.profile_id = sync_of(change).row.profile_id
            result.joined = tuple(list_ids)
        elif email in found:
            result.take(found[email])
            result.joined = tuple(list_ids)
        else:
            result.fail(Failure("Klaviyo's import job did not report this profile", False))
    return conflicts


def _without_phone(change: Change) -> Change:
    return replace(change, payload=sync_of(change).without_phone())


def _needs_read_back(rows: list[Change]) -> bool:
    """A job's profiles (100 a request) are read back only when a list must be left by a
    profile whose id we do not know: lists are joined inside the job itself, and whether someone
    may be subscribed comes from the suppressions read before planning."""
    return any(not sync_of(c).row.profile_id and sync_of(c).lists.remove for c in rows)


def _by_lists_to_join(changes: list[Change]) -> list[tuple[list[str], list[Change]]]:
    """Rows grouped by the lists they join, so each import job joins them in one go."""
    groups: dict[tuple[str, ...], list[Change]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(sync_of(change).lists.add)), []).append(change)
    return [(list(lists), group) for lists, group in sorted(groups.items())]


def _import_chunks(changes: list[Change]) -> Iterator[list[Change]]:
    """Rows for import jobs: at most 10,000 and about 4.5 MB each (Klaviyo's cap is 5 MB)."""
    chunk: list[Change] = []
    size = 0
    for change in changes:
        row_size = len(json.dumps(sync_of(change).row.resource()))
        if chunk and (len(chunk) >= IMPORT_JOB_ROWS or size + row_size > IMPORT_JOB_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(change)
        size += row_size
    if chunk:
        yield chunk
