"""The vendor jobs a run submitted, read from the sandboxes' stamped requests, and "one job
round": the longest single job of the run's last batch, the wait no pipelining can hide.

A job's length is the network model's (network.py) for its size, not how long it waited behind
other jobs: Mailchimp `/batches` (pending + base + per operation), Klaviyo profile imports
(queued + base + per row), and Mailchimp batch subscribe calls (their answer's own time: 1.5 s
per 500 members on `realistic`). Klaviyo bulk subscribe and event jobs answer 202 with no job
id, so a client cannot wait for them: they are listed but never a round.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from kommo_sync.sandbox.network import Network

# The pull's list pages; events are read again after the pushes (deal events), so they do not
# mark the pull's end.
KOMMO_PAGES = re.compile(r"^/api/v4/(contacts|leads|companies)/?$")
BATCH_SUBSCRIBE = re.compile(r"^/3\.0/lists/[^/]+/?$")
WAITED = frozenset({"mailchimp batch", "mailchimp batch subscribe", "klaviyo import"})


@dataclass(frozen=True)
class Job:
    kind: str
    submitted: float  # monotonic seconds, as the stamps
    size: int
    seconds: float

    @property
    def waited(self) -> bool:
        """Whether the client can (and does) wait for this job to finish."""
        return self.kind in WAITED


def jobs_of(stamps: dict[str, list[Any]], model: Network) -> list[Job]:
    """Every job in these stamps, in submission order."""
    found = [job for stamp in stamps["mailchimp"] if (job := _mailchimp_job(stamp, model))]
    found += [job for stamp in stamps["klaviyo"] if (job := _klaviyo_job(stamp, model))]
    return sorted(found, key=lambda job: job.submitted)


def _mailchimp_job(stamp: Any, model: Network) -> Job | None:
    request = stamp.request
    if request.method != "POST" or request.status != 200:
        return None
    if request.path.rstrip("/") == "/3.0/batches":
        size = _count(request.body, ("operations",))
        return Job("mailchimp batch", stamp.start, size, model.mailchimp_jobs.seconds(size))
    if BATCH_SUBSCRIBE.match(request.path):
        size = _count(request.body, ("members",))
        return Job("mailchimp batch subscribe", stamp.start, size, stamp.end - stamp.start)
    return None


def _klaviyo_job(stamp: Any, model: Network) -> Job | None:
    request = stamp.request
    if request.method != "POST" or request.status != 202:
        return None
    path, timing = request.path.rstrip("/"), model.klaviyo_jobs
    if path == "/api/profile-bulk-import-jobs":
        size = _count(request.body, ("data", "attributes", "profiles", "data"))
        return Job("klaviyo import", stamp.start, size, timing.import_seconds(size))
    if path == "/api/profile-subscription-bulk-create-jobs":
        size = _count(request.body, ("data", "attributes", "profiles", "data"))
        return Job("klaviyo subscribe", stamp.start, size, timing.subscribe_after)
    if path == "/api/event-bulk-create-jobs":
        size = _count(request.body, ("data", "attributes", "events-bulk-create", "data"))
        return Job("klaviyo events", stamp.start, size, timing.events_after)
    return None


def _count(body: bytes, keys: tuple[str, ...]) -> int:
    """Length of the list under `keys` in a JSON body (0 when absent)."""
    value: Any = json.loads(body) if body else {}
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return len(value) if isinstance(value, list) else 0


def last_page_end(kommo: list[Any]) -> float | None:
    """When the pull's last Kommo list page (contacts, leads, companies; reads by id apart)
    was answered."""
    ends = [stamp.end for stamp in kommo if _is_list_page(stamp.request)]
    return max(ends) if ends else None


def _is_list_page(request: Any) -> bool:
    by_id = any(key.startswith("filter[id]") for key in request.query)
    return request.method == "GET" and not by_id and bool(KOMMO_PAGES.match(request.path))


def job_round(jobs: list[Job], after: float | None) -> Job | None:
    """The longest job the client waits for among those submitted after the last Kommo page
    (the last batch can only be planned once every page is in); when none was, the last job of
    each kind stands for the last batch."""
    waited = [job for job in jobs if job.waited]
    last = [job for job in waited if after is not None and job.submitted >= after]
    if not last:
        last = list({job.kind: job for job in waited}.values())
    return max(last, key=lambda job: job.seconds, default=None)
