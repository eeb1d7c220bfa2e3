"""Mailchimp's API for one audience: the HTTP client, collections paged by offset, /batches jobs
and their results archive, and what each answer means for the records it held.

Failures follow `failures.RULES`: only what names one member (a member error, an archive item, a
single-member call) can be permanent; a request refused whole is transient for all it held; a
missing audience is fatal (a config error: the engine sets Mailchimp aside).
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from kommo_sync.batching import JobTimer
from kommo_sync.clock import Clock, epoch_of
from kommo_sync.destinations.mailchimp.batch_queue import BatchQueue
from kommo_sync.destinations.mailchimp.config import MAILCHIMP_USER, MailchimpConfig
from kommo_sync.destinations.mailchimp.mapping import ABSENT, NAME
from kommo_sync.errors import ConfigError, RecordRejected, RequestRefused, RetryLater
from kommo_sync.failures import classify
from kommo_sync.http import HttpClient
from kommo_sync.paging import offset_pages

log = logging.getLogger("kommo_sync.mailchimp")

PAGE = 1000  # the most `count` allows
ARCHIVE_READS = 2


def mailchimp_http(config: MailchimpConfig, clock: Clock, timeout: float = 60.0) -> HttpClient:
    return HttpClient(
        base_url=config.base_url,
        vendor="Mailchimp",
        clock=clock,
        auth=(MAILCHIMP_USER, config.api_key),
        max_connections=config.max_connections,
        timeout=timeout,
        auth_hint="check mailchimp.api_key (MAILCHIMP_API_KEY)",
    )


# what an answer means ----------------------------------------------------------------------------
@dataclass
class Result:
    """What happened to one person's member operation and tag move."""

    ok: bool = True
    permanent: bool = False
    reason: str = ""
    status: str | None = None


def settle(results: dict[int, Result], person_id: int, result: Result) -> None:
    """One part of a person's push (member operation or tag move) is done: a failure stands
    whatever part succeeds later, so a tag never counts as pushed when it did not land."""
    if results.get(person_id, Result(True)).ok:
        results[person_id] = result


def verdict(status: int, reason: str, attributed: bool) -> Result:
    """A failed answer → a rejection, by the one table (failures.RULES): permanent only when
    Mailchimp named the record (`attributed`) and said it is bad."""
    found = classify(NAME, status, reason, attributed=attributed)
    return Result(False, found.permanent, reason or f"HTTP {status}")


def failed(exc: RecordRejected | RetryLater, attributed: bool = False) -> Result:
    """A refused or failed request → the rejection of every record it held; `attributed` when
    the request was about exactly one member (a PUT, PATCH or tags call)."""
    if isinstance(exc, RecordRejected):
        return verdict(exc.status or 400, exc.reason, attributed)
    return Result(False, False, str(exc))


def answer(status: int, title: str, detail: str, attributed: bool = True) -> Result:
    """An operation's HTTP result (an archive item, named by its operation id)."""
    if status < 300:
        return Result(True)
    reason = f"{title}: {detail}".strip(": ") if detail and detail != title else title
    return verdict(status, reason, attributed)


def batch_item_result(item: dict[str, Any]) -> Result:
    """A member operation's result; 404 = no such member (a marketer deleted it)."""
    status = int(item.get("status_code") or 0)
    if status == 404:
        return Result(True, status=ABSENT)
    result = answer(status, *problem(item))
    if result.ok:
        result.status = _item_body(item).get("status")
    return result


def problem(item: dict[str, Any]) -> tuple[str, str]:
    """The title and detail of an archive item's error document."""
    body = _item_body(item)
    return str(body.get("title") or ""), str(body.get("detail") or "")


def _item_body(item: dict[str, Any]) -> dict[str, Any]:
    """An archive item's `response`: a JSON document inside a string."""
    try:
        body = json.loads(item.get("response") or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def already_exists(reason: str) -> bool:
    """Mailchimp's refusal to create a tag or merge field that exists already."""
    return "already exists" in reason.lower()


def collection(
    get: Callable[[str, dict[str, Any]], Any],
    path: str,
    key: str,
    params: dict[str, Any],
    item_key: str = "id",
) -> Iterator[dict[str, Any]]:
    """Every item of a Mailchimp collection, 1,000 a page by `offset` (`count` caps at 1,000);
    a page served twice, or more pages than `total_items` allows, stops it (PagingLoop).
    `get(path, params)` is the GET that reads one page."""

    def fetch(offset: int) -> tuple[list[Any], int | None]:
        body = get(path, {**params, "count": PAGE, "offset": offset}) or {}
        total = body.get("total_items")
        return body.get(key) or [], int(total) if total is not None else None

    for page in offset_pages(
        fetch, PAGE, f"Mailchimp GET {path}", key=lambda item: item.get(item_key)
    ):
        yield from page


# the audience's API ------------------------------------------------------------------------------
class AudienceApi:
    """Requests on one audience, its collections and the account's /batches jobs."""

    def __init__(
        self,
        config: MailchimpConfig,
        http: HttpClient,
        archive_http: HttpClient,
        clock: Clock,
        job_timer: JobTimer,
    ):
        self.list_id, self.http, self.archive_http = config.list_id, http, archive_http
        self.clock, self.job_timer = clock, job_timer
        self.list_path = f"/lists/{config.list_id}"
        self.batch_queue = BatchQueue(
            self._run_one_batch, self.clock.check, clock=self.clock, duration=job_timer.estimate
        )
        self.last_completed = 0  # the latest end of one of our jobs, by Mailchimp's clock
        self.completed_lock = threading.Lock()

    def member_path(self, member_hash: str) -> str:
        return f"{self.list_path}/members/{member_hash}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request on the audience itself or one of its collections: a 404 there can only mean
        the audience does not exist, which no record can fix (fatal: Mailchimp is set aside)."""
        try:
            return self.http.request(method, path, **kwargs)
        except RequestRefused as exc:
            if exc.status == 404:
                raise ConfigError(
                    "mailchimp.list_id",
                    f"Mailchimp has no audience {self.list_id} (HTTP 404 on {method} {path})",
                ) from None
            raise

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """A GET on the audience (a 404: no such audience) or elsewhere in the account."""
        if path == self.list_path or path.startswith(f"{self.list_path}/"):
            return self.call("GET", path, params=params, need_body=True).json()
        return self.http.get_json(path, params=params)

    def collection(
        self, path: str, key: str, params: dict[str, Any], item_key: str = "id"
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection of this audience or account (see `collection`)."""
        return collection(self.get, path, key, params, item_key)

    def total_contacts(self) -> int | None:
        """Everyone in the audience, whatever their status (None when Mailchimp does not say)."""
        params = {"include_total_contacts": "true", "fields": "stats.total_contacts"}
        body = self.get(self.list_path, params) or {}
        total = (body.get("stats") or {}).get("total_contacts")
        return int(total) if total is not None else None

    # /batches --------------------------------------------------------------------------------
    def run_batch(self, operations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The archive's result item of each operation, by id, from the /batches job they went in:
        operations other threads hand in while a job runs go together in the next (BatchQueue)."""
        return self.batch_queue.run(operations)

    def _run_one_batch(self, operations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """One /batches job, waited for: the archive's result item of each operation, by id."""
        batch = self.http.request("POST", "/batches", json={"operations": operations}).json()
        batch = self._wait_for_batch(batch, len(operations))
        results, not_200 = {}, 0
        for item in self._archive_items(batch):
            results[str(item.get("operation_id"))] = item
            not_200 += int(item.get("status_code") or 0) != 200
        missing = len(operations) - len(results)
        if int(batch.get("errored_operations") or 0) > not_200 + missing:
            log.warning(
                "Mailchimp batch %s reports %s errored operations, its archive shows %s",
                batch.get("id"),
                batch.get("errored_operations"),
                not_200,
            )
        return results

    def _wait_for_batch(self, batch: dict[str, Any], operations: int) -> dict[str, Any]:
        batch_id = batch["id"]
        batch = self.job_timer.wait(
            batch,
            operations,
            lambda b: b.get("status") == "finished",
            lambda _: self.http.get_json(f"/batches/{batch_id}") or {},
            self.clock.sleep,
            f"Mailchimp batch {batch_id}",
        )
        self.job_timer.finished(operations, self._ran_for(batch))
        return batch

    def _ran_for(self, batch: dict[str, Any]) -> int:
        """Seconds the job ran, by Mailchimp's clock: from its submission, or from the end of
        our job it queued behind (Mailchimp runs them one at a time), so the timer learns how
        long a job takes, not how long it waited."""
        submitted, completed = (
            epoch_of(batch.get("submitted_at")),
            epoch_of(batch.get("completed_at")),
        )
        with self.completed_lock:
            started = max(submitted, min(self.last_completed, completed))
            self.last_completed = max(self.last_completed, completed)
        return completed - started

    def _archive_items(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """The archive's items; one that is not a readable tar (a proxy's page, nothing) is fetched
        again from a fresh link, then the batch's operations are left to the next run."""
        trouble = ""
        for attempt in range(ARCHIVE_READS):
            if attempt:
                batch = self.http.get_json(f"/batches/{batch['id']}")
            try:
                return list(self._archive(batch.get("response_body_url") or ""))
            except (tarfile.TarError, EOFError, OSError, ValueError, RequestRefused) as exc:
                trouble = f"{type(exc).__name__}: {exc}"
        raise RetryLater(
            f"Mailchimp batch {batch.get('id')}: its results archive could not be read "
            f"({trouble}); its operations are sent again on the next run"
        )

    def _archive(self, url: str) -> Iterator[dict[str, Any]]:
        """Results of a finished batch: a gzipped tar of JSON arrays (no auth on this URL)."""
        if not url:
            return
        content = self.archive_http.request("GET", url).content
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
            for member in archive.getmembers():
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is not None:
                    data = json.loads(handle.read().decode("utf-8") or "[]")
                    yield from data if isinstance(data, list) else [data]
