"""Mailchimp: members, merge fields, one managed stage tag per member, consent, feedback.

Mapping and planning are pure. Pushing picks the cheapest safe path per run size:
- a handful of changes go one by one (PUT / PATCH / member tags);
- otherwise new people go through batch subscribe (500 a call, `status_if_new` and their stage
  tag; an "already a member" answer falls back to the PUT form), while updates, renames,
  unsubscribes and tag moves (static-segment calls: 500 adds and 500 removes per managed tag)
  are operations of one `/batches` job.
`status: subscribed` is never sent: new people get `status_if_new`, so nobody already in the
audience (unsubscribed, cleaned) is ever re-subscribed.

Failures follow `failures.RULES`: only what names one member (a member error, an archive item, a
single-member call) can be permanent; a request refused whole is transient for all it held (a
413 is first sent again in halves); a missing audience or Mailchimp down is fatal (the engine sets
Mailchimp aside). Creations are never repeated blindly: tags and merge fields are read back.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests

from kommo_sync.batching import JobTimer, chunks
from kommo_sync.clock import Clock, epoch_of, iso_utc
from kommo_sync.destinations.base import Destination
from kommo_sync.destinations.mailchimp.config import MAILCHIMP_USER, MailchimpConfig
from kommo_sync.errors import (
    ConfigError,
    FatalError,
    OutcomeUnknown,
    RecordRejected,
    RequestRefused,
    RetryLater,
)
from kommo_sync.failures import classify
from kommo_sync.http import HttpClient
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import Feedback, Person, Stage
from kommo_sync.paging import offset_pages
from kommo_sync.plan import Change, Outcome, Plan, Skip, fingerprint

log = logging.getLogger("kommo_sync.mailchimp")

NAME = "mailchimp"
SMALL_RUN = 10
BATCH_SUBSCRIBE_SIZE = 500
SEGMENT_SIZE = 500
DIRECT_TAG_CALLS = (
    3  # a /batches job costs a POST, a poll and the archive: fewer tag calls go direct
)
TEXT_LIMIT = 255
TOO_LARGE = 413
PAGE = 1000  # the most `count` allows
ARCHIVE_READS = 2
ALREADY_MEMBER = ("ERROR_CONTACT_EXISTS", "already a list member")


def subscriber_hash(email: str) -> str:
    """MD5 of the trimmed, lower-cased address (Mailchimp's member id)."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()


# mapping (pure) ------------------------------------------------------------------------------
def merge_fields(person: Person, mapping: Mapping[str, str]) -> dict[str, str]:
    """FNAME, LNAME and the configured merge fields, as text Mailchimp accepts (≤ 255 bytes)."""
    values = {"FNAME": person.first_name, "LNAME": person.last_name}
    values.update({tag: person.attribute(attribute) for tag, attribute in mapping.items()})
    return {tag: _text(value) for tag, value in values.items()}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is str and value.isascii() and len(value) <= TEXT_LIMIT:
        return value  # the common case: nothing to convert or cut
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).encode("utf-8")[:TEXT_LIMIT].decode("utf-8", "ignore")


def desired_member(
    person: Person, config: MailchimpConfig, tags: dict[Stage, str]
) -> dict[str, Any]:
    return {
        "email": person.email,
        "merge_fields": merge_fields(person, config.merge_fields),
        "tag": tags[person.stage],
        "consent": person.consent,
    }


def status_for_new(consenting: bool, without_consent: str) -> str | None:
    """`status_if_new` for someone not yet in the audience; None = keep them out."""
    if consenting:
        return "subscribed"
    return {"skip": None, "transactional": "transactional", "pending": "pending"}[without_consent]


def plan_person(
    person: Person,
    pushed: dict[str, Any] | None,
    suppressed: bool,
    config: MailchimpConfig,
    tags: dict[Stage, str],
) -> Change | Skip | None:
    """The one change this person needs in Mailchimp, a Skip, or None when all is in step."""
    if not person.email:
        return Skip(person.contact_id, "no_email")
    desired = desired_member(person, config, tags)
    digest = fingerprint(desired)
    if pushed is not None and pushed.get("fingerprint") == digest:
        return None
    if pushed is None or pushed.get("status") == "absent":
        return _plan_new(person, desired, digest, suppressed, config)
    return _plan_existing(person, desired, digest, pushed)


def _plan_new(
    person: Person, desired: dict[str, Any], digest: str, suppressed: bool, config: MailchimpConfig
) -> Change | Skip:
    consenting = person.consent is not False and not suppressed
    status = status_for_new(consenting, config.without_consent)
    body: dict[str, Any] = {"email_address": person.email, "merge_fields": desired["merge_fields"]}
    if status is None:
        return _change(
            person,
            "update_if_exists",
            digest,
            desired,
            body,
            None,
            tag_change=True,
            summary={"reason": "no consent: updated only if already a member"},
        )
    body["status_if_new"] = status
    return _change(
        person,
        "create",
        digest,
        desired,
        body,
        None,
        tag_change=True,
        summary={"status_if_new": status},
    )


def _plan_existing(
    person: Person, desired: dict[str, Any], digest: str, pushed: dict[str, Any]
) -> Change:
    body: dict[str, Any] = {}
    before = pushed.get("merge_fields") or {}
    changed = sorted(
        tag for tag, value in desired["merge_fields"].items() if before.get(tag) != value
    )
    if changed:
        body["merge_fields"] = desired["merge_fields"]
    action = "update"
    if pushed.get("email") != person.email:
        body["email_address"], action = person.email, "rename"
    if pushed.get("consent") is True and person.consent is False:
        body["status"], action = "unsubscribed", "unsubscribe"
    renamed = pushed.get("email") != person.email
    summary = {"fields": changed, "renamed_from": pushed.get("email") if renamed else None}
    change = _change(
        person,
        action,
        digest,
        desired,
        body,
        pushed["hash"],
        tag_change=pushed.get("tag") != desired["tag"],
        summary=summary,
        old_tag=pushed.get("tag"),
    )
    if action != "unsubscribe" and pushed.get("status"):
        change.record["status"] = pushed["status"]
    return change


def _change(
    person: Person,
    action: str,
    digest: str,
    desired: dict[str, Any],
    body: dict[str, Any],
    member_hash: str | None,
    tag_change: bool,
    summary: dict[str, Any],
    old_tag: str | None = None,
) -> Change:
    """`member_hash` is the member the request addresses; None: the person's own address."""
    if tag_change:
        summary = {**summary, "tag_added": desired["tag"], "tag_removed": old_tag}
    own_hash = subscriber_hash(person.email or "")
    record = {**desired, "hash": own_hash, "fingerprint": digest}
    payload = {
        "hash": own_hash if member_hash is None else member_hash,
        "body": body,
        "tag": desired["tag"] if tag_change else None,
        "remove": [old_tag] if old_tag and tag_change else None,
    }
    return Change(
        NAME,
        person.contact_id,
        person.email,
        action,
        digest,
        record,
        summary,
        payload,
        opts_out=action == "unsubscribe",
    )


# client ----------------------------------------------------------------------------------------
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


@dataclass
class _Result:
    """What happened to one person's member operation and tag move."""

    ok: bool = True
    permanent: bool = False
    reason: str = ""
    status: str | None = None


@dataclass
class _TagMove:
    """One static-segment call: up to 500 members gain the tag, up to 500 lose it."""

    name: str
    segment_id: int
    start: int
    add: list[Change]
    remove: list[Change]

    @property
    def operation_id(self) -> str:
        return f"tag:{self.segment_id}:{self.start}"

    def body(self) -> dict[str, list[str]]:
        return {
            "members_to_add": [c.email or "" for c in self.add],
            "members_to_remove": [c.email or "" for c in self.remove],
        }

    def operation(self, list_path: str) -> dict[str, Any]:
        return {
            "method": "POST",
            "path": f"{list_path}/segments/{self.segment_id}",
            "operation_id": self.operation_id,
            "body": json.dumps(self.body()),
        }


@dataclass
class _Answers:
    """What became of each operation of a /batches push: its archive item, or the failure of
    the whole request that held it."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, _Result] = field(default_factory=dict)

    def of(self, operation_id: str) -> dict[str, Any] | _Result:
        if operation_id in self.failed:
            return self.failed[operation_id]
        return self.items.get(operation_id) or _Result(
            False, False, "no result in the batch archive"
        )

    def merged(self, other: _Answers) -> _Answers:
        return _Answers({**self.items, **other.items}, {**self.failed, **other.failed})


def _settle(results: dict[int, _Result], person_id: int, result: _Result) -> None:
    """One part of a person's push (member operation or tag move) is done: a failure stands
    whatever part succeeds later, so a tag never counts as pushed when it did not land."""
    if results.get(person_id, _Result(True)).ok:
        results[person_id] = result


def _reject_movers(move: _TagMove, failure: _Result, results: dict[int, _Result]) -> None:
    """A refused tag move rejects its people, unless another part of their push already failed."""
    for change in move.add + move.remove:
        _settle(results, change.person_id, failure)


def _verdict(status: int, reason: str, attributed: bool) -> _Result:
    """A failed answer → a rejection, by the one table (failures.RULES): permanent only when
    Mailchimp named the record (`attributed`) and said it is bad."""
    verdict = classify(NAME, status, reason, attributed=attributed)
    return _Result(False, verdict.permanent, reason or f"HTTP {status}")


def _failed(exc: RecordRejected | RetryLater, attributed: bool = False) -> _Result:
    """A refused or failed request → the rejection of every record it held; `attributed` when
    the request was about exactly one member (a PUT, PATCH or tags call)."""
    if isinstance(exc, RecordRejected):
        return _verdict(exc.status or 400, exc.reason, attributed)
    return _Result(False, False, str(exc))


def _answer(status: int, title: str, detail: str, attributed: bool = True) -> _Result:
    """A member operation's HTTP result (an archive item, named by its operation id)."""
    if status < 300:
        return _Result(True)
    reason = f"{title}: {detail}".strip(": ") if detail and detail != title else title
    return _verdict(status, reason, attributed)


class MailchimpDestination(Destination):
    name = NAME

    def __init__(
        self,
        config: MailchimpConfig,
        tags: dict[Stage, str],
        http: HttpClient,
        archive_http: HttpClient,
        clock: Clock,
        job_timer: JobTimer | None = None,
    ):
        self.config, self.tags, self.clock = config, tags, clock
        self.http, self.archive_http = http, archive_http
        self.list_path = f"/lists/{config.list_id}"
        self.segments: dict[str, int] = {}
        self.segment_lock = threading.Lock()
        self.managed: list[str] = list(tags.values())
        self.memory: DestinationMemory | None = None
        self.dry_run = False
        self.audience_was_empty: bool | None = False
        self.audience_lock = threading.Lock()
        self.job_timer = job_timer or JobTimer()

    def settings(self) -> Any:
        return {
            "tags": {stage.value: name for stage, name in self.tags.items()},
            "merge_fields": dict(self.config.merge_fields),
            "without_consent": self.config.without_consent,
        }

    def target(self) -> str:
        return self.config.list_id

    # prepare ---------------------------------------------------------------------------------
    def prepare(self, memory: DestinationMemory, dry_run: bool) -> None:
        self.memory, self.dry_run = memory, dry_run
        self.managed = sorted(set(memory.get("managed_tags", [])) | set(self.tags.values()))
        self._ensure_merge_fields(memory, dry_run)
        self.segments = dict(memory.get("segments", {}))
        self.audience_was_empty = False if memory.get("members_pushed") else None

    def _audience_call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A request on the audience itself or one of its collections: a 404 there can only mean
        the audience does not exist, which no record can fix (fatal: Mailchimp is set aside)."""
        try:
            return self.http.request(method, path, **kwargs)
        except RequestRefused as exc:
            if exc.status == 404:
                raise ConfigError(
                    "mailchimp.list_id",
                    f"Mailchimp has no audience {self.config.list_id} "
                    f"(HTTP 404 on {method} {path})",
                ) from None
            raise

    def _audience_json(self, path: str, params: dict[str, Any]) -> Any:
        return self._audience_call("GET", path, params=params, need_body=True).json()

    def _total_contacts(self) -> int | None:
        """Everyone in the audience, whatever their status (None when Mailchimp does not say)."""
        body = (
            self._audience_json(
                self.list_path, {"include_total_contacts": "true", "fields": "stats.total_contacts"}
            )
            or {}
        )
        total = (body.get("stats") or {}).get("total_contacts")
        return int(total) if total is not None else None

    def _ensure_merge_fields(self, memory: DestinationMemory, dry_run: bool) -> None:
        wanted = {"FNAME", "LNAME", *self.config.merge_fields}
        if wanted <= set(memory.get("merge_fields", [])):
            return
        missing = sorted(wanted - self._merge_field_tags())
        if dry_run:
            return
        for tag in missing:
            self._create_merge_field(tag)
        memory.set("merge_fields", sorted(wanted))

    def _merge_field_tags(self) -> set[str]:
        body = self._audience_json(f"{self.list_path}/merge-fields", {"count": 1000}) or {}
        return {f["tag"] for f in body.get("merge_fields", [])}

    def _create_merge_field(self, tag: str) -> None:
        """A create is not safe to repeat: an unknown outcome, or "already exists" (made
        meanwhile), is settled by reading the merge fields back; any other refusal is fatal."""
        try:
            self.http.request(
                "POST",
                f"{self.list_path}/merge-fields",
                repeatable=False,
                json=_merge_field_body(tag, self.config),
            )
            return
        except OutcomeUnknown as exc:
            doubt = str(exc)
        except RequestRefused as exc:
            if not _already_exists(exc.reason):
                raise ConfigError(
                    "mailchimp.merge_fields",
                    f"Mailchimp refused to create the merge field {tag} "
                    f"({exc.reason}); check the audience's merge fields",
                ) from None
            doubt = exc.reason
        if tag not in self._merge_field_tags():
            raise FatalError(
                f"Mailchimp merge field {tag}: {doubt}, and it is not there; "
                "the next run tries again"
            )

    # plan -------------------------------------------------------------------------------------
    def plan(
        self, people: list[Person], pushed: dict[int, dict[str, Any]], suppressed: set[str]
    ) -> Plan:
        plan = Plan()
        for person in people:
            item = plan_person(
                person,
                pushed.get(person.contact_id),
                person.email in suppressed,
                self.config,
                self.tags,
            )
            if isinstance(item, Skip):
                plan.skipped.append(item)
            elif item is not None:
                plan.changes.append(item)
        return plan

    # push -------------------------------------------------------------------------------------
    def push(self, changes: list[Change]) -> list[Outcome]:
        results = self._absent_without_asking(changes)
        to_send = [c for c in changes if c.person_id not in results]
        if len(to_send) <= SMALL_RUN:
            for change in to_send:
                results[change.person_id] = self._push_one(change)
        else:
            results.update(self._push_bulk(to_send))
        self._remember_managed()
        return [self._outcome(change, results[change.person_id]) for change in changes]

    def _absent_without_asking(self, changes: list[Change]) -> dict[int, _Result]:
        """ "Update if already a member" needs no request when the audience held nobody before
        our first push: every member in it now is one we added (a 404 answer, known in advance)."""
        probes = [c for c in changes if c.action == "update_if_exists"]
        if not probes or not self._empty_before_our_first_push():
            return {}
        return {c.person_id: _Result(True, status="absent") for c in probes}

    def _empty_before_our_first_push(self) -> bool:
        """Asked once, before this run adds anyone (push workers wait for the answer)."""
        with self.audience_lock:
            if self.audience_was_empty is None:
                self.audience_was_empty = self._total_contacts() == 0
            return self.audience_was_empty

    def _outcome(self, change: Change, result: _Result) -> Outcome:
        if not result.ok:
            return Outcome(change, False, result.permanent, result.reason)
        updates = {"status": result.status} if result.status else {}
        return Outcome(change, True, record_updates=updates)

    def _remember_managed(self) -> None:
        if self.memory is not None:
            self.memory.set("managed_tags", self.managed)
            self.memory.set("segments", self.segments)
            self.memory.set("members_pushed", True)

    # one by one ---------------------------------------------------------------------------------
    def _push_one(self, change: Change) -> _Result:
        payload = change.payload
        path = f"{self.list_path}/members/{payload['hash']}"
        try:
            if change.action == "create":
                response = self.http.request("PUT", path, json=payload["body"])
            elif payload["body"] or change.action == "update_if_exists":
                response = self.http.request(
                    "PATCH", path, json=payload["body"] or {"merge_fields": {}}, allow=(404,)
                )
                if response.status_code == 404:
                    return _Result(True, status="absent")
            else:
                response = None
            status = response.json().get("status") if response is not None else None
            if payload["tag"]:
                self._tag_one(subscriber_hash(change.email or ""), payload["tag"])
            return _Result(True, status=status)
        except (RecordRejected, RetryLater) as exc:
            return _failed(exc, attributed=True)

    def _tag_one(self, member_hash: str, tag: str) -> None:
        tags = [
            {"name": name, "status": "active" if name == tag else "inactive"}
            for name in self.managed
        ]
        self.http.request(
            "POST", f"{self.list_path}/members/{member_hash}/tags", json={"tags": tags}
        )

    # bulk -------------------------------------------------------------------------------------
    def _push_bulk(self, changes: list[Change]) -> dict[int, _Result]:
        """New people by batch subscribe while everyone else's member operations and tag moves
        run as one `/batches` job at the same time; those batch subscribe found already in the
        audience follow in a second job."""
        creates = [c for c in changes if c.action == "create"]
        others = [c for c in changes if c.action != "create"]
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mailchimp") as pool:
            subscribed = pool.submit(self._batch_subscribe, creates)
            operated = pool.submit(self._batch_operations, others)
            results, existing = subscribed.result()
            results.update(operated.result())
        results.update(self._batch_operations(existing))
        return results

    def _batch_subscribe(self, creates: list[Change]) -> tuple[dict[int, _Result], list[Change]]:
        """New people, 500 a call, calls side by side within `max_connections`; those already in
        the audience come back for the PUT form."""
        results: dict[int, _Result] = {}
        existing: list[Change] = []
        calls = list(chunks(creates, BATCH_SUBSCRIBE_SIZE))
        with ThreadPoolExecutor(
            max_workers=max(1, min(self.config.max_connections, len(calls)))
        ) as pool:
            for chunk_results, chunk_existing in pool.map(self._subscribe_chunk, calls):
                results.update(chunk_results)
                existing += chunk_existing
        return results, existing

    def _subscribe_chunk(self, chunk: list[Change]) -> tuple[dict[int, _Result], list[Change]]:
        """One batch subscribe call; too large (413) → sent again in halves; refused or failed
        whole (no member named) → transient for everyone it held."""
        members = [{**c.payload["body"], "tags": [c.payload["tag"]]} for c in chunk]
        try:
            body = self._audience_call(
                "POST", self.list_path, json={"members": members, "update_existing": False}
            ).json()
        except RequestRefused as exc:
            if exc.status == TOO_LARGE and len(chunk) > 1:
                return self._subscribe_halves(chunk)
            return {c.person_id: _failed(exc) for c in chunk}, []
        except RetryLater as exc:
            return {c.person_id: _failed(exc) for c in chunk}, []
        return self._subscribe_answer(chunk, body)

    def _subscribe_halves(self, chunk: list[Change]) -> tuple[dict[int, _Result], list[Change]]:
        middle = len(chunk) // 2
        (first, first_existing), (second, second_existing) = map(
            self._subscribe_chunk, (chunk[:middle], chunk[middle:])
        )
        return {**first, **second}, first_existing + second_existing

    @staticmethod
    def _subscribe_answer(
        chunk: list[Change], body: dict[str, Any]
    ) -> tuple[dict[int, _Result], list[Change]]:
        """Member errors name their address: those are the only per-record failures."""
        errors = {str(e.get("email_address", "")).lower(): e for e in body.get("errors") or []}
        results: dict[int, _Result] = {}
        existing: list[Change] = []
        for change in chunk:
            error = errors.get((change.email or "").lower())
            if error is None:
                results[change.person_id] = _Result(
                    True, status=change.payload["body"]["status_if_new"]
                )
            elif any(
                mark in f"{error.get('error_code')} {error.get('error')}" for mark in ALREADY_MEMBER
            ):
                existing.append(change)
            else:
                results[change.person_id] = _verdict(
                    400, str(error.get("error") or error.get("error_code")), attributed=True
                )
        return results, existing

    def _batch_operations(self, changes: list[Change]) -> dict[int, _Result]:
        """Member PUT/PATCH operations and the tag moves of these people, as one asynchronous
        /batches job (operations run in no promised order: a tag move only touches members who
        exist already, and Mailchimp ignores addresses not in the audience)."""
        results = {c.person_id: _Result(True) for c in changes if not c.payload["body"]}
        moves = self._tag_moves([c for c in changes if c.payload["tag"]], results)
        members = [c for c in changes if c.payload["body"]]
        if not members and len(moves) <= DIRECT_TAG_CALLS:
            for move in moves:
                self._segment_call(move, results)
            return results
        operations = [self._operation(c) for c in members] + [
            m.operation(self.list_path) for m in moves
        ]
        self._apply(self._send_batch(operations), members, moves, results)
        return results

    def _apply(
        self,
        answers: _Answers,
        members: list[Change],
        moves: list[_TagMove],
        results: dict[int, _Result],
    ) -> None:
        """Each person's outcome from their member operation and their tag moves."""
        for change in members:
            answer = answers.of(str(change.person_id))
            _settle(
                results,
                change.person_id,
                answer if isinstance(answer, _Result) else _batch_item_result(answer),
            )
        for move in moves:
            answer = answers.of(move.operation_id)
            if isinstance(answer, _Result):
                _reject_movers(move, answer, results)
            elif int(answer.get("status_code") or 0) != 200:
                self._tag_move_failed(
                    move, int(answer.get("status_code") or 0), _problem(answer), results
                )

    def _send_batch(self, operations: list[dict[str, Any]]) -> _Answers:
        """One /batches job; too large (413) → sent again in halves; refused or failed whole →
        transient for every operation it held."""
        try:
            return _Answers(self._run_batch(operations))
        except RequestRefused as exc:
            if exc.status == TOO_LARGE and len(operations) > 1:
                middle = len(operations) // 2
                return self._send_batch(operations[:middle]).merged(
                    self._send_batch(operations[middle:])
                )
            failure = _failed(exc)
        except RetryLater as exc:
            failure = _failed(exc)
        return _Answers(
            failed={str(operation["operation_id"]): failure for operation in operations}
        )

    def _operation(self, change: Change) -> dict[str, Any]:
        path = f"{self.list_path}/members/{change.payload['hash']}"
        body = dict(change.payload["body"])
        if change.action == "create":
            return {
                "method": "PUT",
                "path": path,
                "operation_id": str(change.person_id),
                "body": json.dumps(body),
            }
        return {
            "method": "PATCH",
            "path": path,
            "operation_id": str(change.person_id),
            "body": json.dumps(body or {"merge_fields": {}}),
        }

    def _run_batch(self, operations: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The archive's result item of each operation, by operation id."""
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
        took = epoch_of(batch.get("completed_at")) - epoch_of(batch.get("submitted_at"))
        self.job_timer.finished(operations, took)
        return batch

    def _archive_items(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """The archive's items; one that is not a readable tar (a proxy's page, nothing) is fetched
        again from a fresh link, then the batch's operations are left to the next run."""
        problem = ""
        for attempt in range(ARCHIVE_READS):
            if attempt:
                batch = self.http.get_json(f"/batches/{batch['id']}")
            try:
                return list(self._archive(batch.get("response_body_url") or ""))
            except (tarfile.TarError, EOFError, OSError, ValueError, RequestRefused) as exc:
                problem = f"{type(exc).__name__}: {exc}"
        raise RetryLater(
            f"Mailchimp batch {batch.get('id')}: its results archive could not be read "
            f"({problem}); its operations are sent again on the next run"
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

    def _tag_moves(self, movers: list[Change], results: dict[int, _Result]) -> list[_TagMove]:
        """Per managed tag, static-segment calls (≤ 500 adds and 500 removes each) adding the
        people who now carry it and removing it from the rest."""
        moves: list[_TagMove] = []
        if not movers:
            return moves
        for name in self.managed:
            add = [c for c in movers if c.payload["tag"] == name]
            remove = [c for c in movers if c.payload["tag"] != name and _may_carry(c, name)]
            if name not in self.tags.values() and not remove:
                continue
            try:
                segment_id = self._segment_id(name, create=bool(add))
            except (RecordRejected, RetryLater) as exc:
                for change in add + remove:
                    _settle(results, change.person_id, _failed(exc))
                continue
            if segment_id is not None:
                moves += [
                    _TagMove(
                        name,
                        segment_id,
                        start,
                        add[start : start + SEGMENT_SIZE],
                        remove[start : start + SEGMENT_SIZE],
                    )
                    for start in range(0, max(len(add), len(remove)), SEGMENT_SIZE)
                ]
        return moves

    def _segment_call(self, move: _TagMove, results: dict[int, _Result]) -> None:
        try:
            self.http.request(
                "POST", f"{self.list_path}/segments/{move.segment_id}", json=move.body()
            )
        except RecordRejected as exc:
            self._tag_move_failed(move, exc.status or 400, ("", exc.reason), results)
        except RetryLater as exc:
            _reject_movers(move, _failed(exc), results)

    def _tag_move_failed(
        self, move: _TagMove, status: int, problem: tuple[str, str], results: dict[int, _Result]
    ) -> None:
        """A refused tag move rejects its people; a 404 means a marketer deleted the tag: it is
        forgotten, made again on the next run, and these people retried then."""
        if status == 404:
            with self.segment_lock:
                self.segments.pop(move.name, None)
            failure = _Result(
                False,
                False,
                f"tag '{move.name}' was deleted in Mailchimp; it is made again on the next run",
            )
        else:
            failure = _answer(status, *problem, attributed=False)  # a tag move names no one record
        _reject_movers(move, failure, results)

    def _segment_id(self, name: str, create: bool) -> int | None:
        """The static segment (tag) id by exact name; created when a tag is first added (under a
        lock: two batches pushed at once must not create the same tag twice)."""
        with self.segment_lock:
            return self._find_or_create_segment(name, create)

    def _find_or_create_segment(self, name: str, create: bool) -> int | None:
        if name in self.segments:
            return self.segments[name]
        self._read_segments()
        if name not in self.segments and create:
            self.segments[name] = self._create_segment(name)
        return self.segments.get(name)

    def _read_segments(self) -> None:
        """The audience's tags by exact name."""
        for segment in self._collection(
            f"{self.list_path}/segments", "segments", {"type": "static"}
        ):
            self.segments.setdefault(segment["name"], int(segment["id"]))

    def _create_segment(self, name: str) -> int:
        """A create is not safe to repeat: an unknown outcome, or "already exists" (batch subscribe
        made the tag meanwhile), is settled by reading the tags back; when it is not there after
        all, it is created once more, then left to the next run."""
        for _ in range(2):
            try:
                return int(
                    self.http.request(
                        "POST",
                        f"{self.list_path}/segments",
                        repeatable=False,
                        json={"name": name, "static_segment": []},
                    ).json()["id"]
                )
            except OutcomeUnknown:
                pass
            except RequestRefused as exc:
                if not _already_exists(exc.reason):
                    raise
            self._read_segments()
            if name in self.segments:
                return self.segments[name]
        raise RetryLater(
            f"tag '{name}': Mailchimp did not confirm making it and it is not among the "
            "audience's tags; made on the next run"
        )

    # feedback ------------------------------------------------------------------------------------
    def read_feedback(self, since: int, until: int, activity: bool) -> Iterator[Feedback]:
        place = f"Mailchimp list '{self._list_name()}'"
        for status in ("unsubscribed", "cleaned"):
            for member in self._members_changed(status, since, until):
                yield _member_feedback(member, status, place)
        if activity:
            yield from self._activity(since, until, place)

    def _list_name(self) -> str:
        name = self.memory.get("list_name") if self.memory else None
        if not name:
            body = self._audience_json(self.list_path, {"fields": "name"}) or {}
            name = body.get("name") or self.config.list_id
            if self.memory is not None and not self.dry_run:
                self.memory.set("list_name", name)
        return name

    def _members_changed(self, status: str, since: int, until: int) -> Iterator[dict[str, Any]]:
        """Members whose status became `status` in (since, until], oldest first, 1,000 a page."""
        params = {
            "status": status,
            "since_last_changed": iso_utc(since),
            "before_last_changed": iso_utc(until + 1),
            "sort_field": "last_changed",
            "sort_dir": "ASC",
            "fields": "members.id,members.email_address,members.status,members.last_changed,"
            "members.unsubscribe_reason,total_items",
        }
        return self._collection(f"{self.list_path}/members", "members", params)

    def _activity(self, since: int, until: int, place: str) -> Iterator[Feedback]:
        """Opens and clicks of campaigns sent to this audience in the last 30 days."""
        campaigns = (
            self.http.get_json(
                "/campaigns",
                params={
                    "list_id": self.config.list_id,
                    "status": "sent",
                    "since_send_time": iso_utc(since - 30 * 86400),
                    "count": 1000,
                    "fields": "campaigns.id,campaigns.settings.title,campaigns.settings.subject_line",
                },
            )
            or {}
        )
        for campaign in campaigns.get("campaigns") or []:
            settings = campaign.get("settings") or {}
            title = settings.get("title") or settings.get("subject_line") or campaign["id"]
            for row in self._email_activity(campaign["id"], since):
                yield from _row_feedback(row, campaign["id"], title, place, since, until)

    def _email_activity(self, campaign_id: str, since: int) -> Iterator[dict[str, Any]]:
        return self._collection(
            f"/reports/{campaign_id}/email-activity",
            "emails",
            {"since": iso_utc(since)},
            item_key="email_id",
        )

    def _collection(
        self, path: str, key: str, params: dict[str, Any], item_key: str = "id"
    ) -> Iterator[dict[str, Any]]:
        """Every item of a Mailchimp collection, 1,000 a page by `offset` (`count` caps at 1,000);
        a page served twice, or more pages than `total_items` allows, stops it (PagingLoop)."""
        audience = path == self.list_path or path.startswith(f"{self.list_path}/")
        get = self._audience_json if audience else self.http.get_json

        def fetch(offset: int) -> tuple[list[Any], int | None]:
            body = get(path, {**params, "count": PAGE, "offset": offset}) or {}
            total = body.get("total_items")
            return body.get(key) or [], int(total) if total is not None else None

        for page in offset_pages(
            fetch, PAGE, f"Mailchimp GET {path}", key=lambda item: item.get(item_key)
        ):
            yield from page


def _member_feedback(member: dict[str, Any], status: str, place: str) -> Feedback:
    at = epoch_of(member.get("last_changed"))
    return Feedback(
        "mailchimp",
        status,
        str(member["email_address"]).lower(),
        at,
        place,
        f"mailchimp:{status}:{member['id']}:{at}",
        detail=member.get("unsubscribe_reason") or "",
    )


def _row_feedback(
    row: dict[str, Any], campaign_id: str, title: str, place: str, since: int, until: int
) -> Iterator[Feedback]:
    """The opens and clicks in (since, until] of one address's campaign activity."""
    for act in row.get("activity") or []:
        at = epoch_of(act.get("timestamp"))
        if act.get("action") in ("open", "click") and since < at <= until:
            yield Feedback(
                "mailchimp",
                act["action"],
                str(row["email_address"]).lower(),
                at,
                place,
                f"mailchimp:{act['action']}:{campaign_id}:{row['email_id']}:{at}",
                detail=title,
                url=act.get("url") or "",
            )


def _may_carry(change: Change, tag: str) -> bool:
    """Whether a member may carry this managed tag: the one we pushed, or any on a first push."""
    known = change.payload["remove"]
    return known is None or tag in known


def _item_body(item: dict[str, Any]) -> dict[str, Any]:
    """An archive item's `response`: a JSON document inside a string."""
    try:
        body = json.loads(item.get("response") or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _problem(item: dict[str, Any]) -> tuple[str, str]:
    body = _item_body(item)
    return str(body.get("title") or ""), str(body.get("detail") or "")


def _batch_item_result(item: dict[str, Any]) -> _Result:
    """A member operation's result; 404 = no such member (a marketer deleted it)."""
    status = int(item.get("status_code") or 0)
    if status == 404:
        return _Result(True, status="absent")
    result = _answer(status, *_problem(item))
    if result.ok:
        result.status = _item_body(item).get("status")
    return result


def _already_exists(reason: str) -> bool:
    """Mailchimp's refusal to create a tag or merge field that exists already."""
    return "already exists" in reason.lower()


def _merge_field_body(tag: str, config: MailchimpConfig) -> dict[str, Any]:
    label = config.merge_fields.get(tag, tag).replace("_", " ").title()
    name = {"FNAME": "First Name", "LNAME": "Last Name"}.get(tag, label)
    body: dict[str, Any] = {"tag": tag, "name": name, "type": "text", "public": False}
    if config.merge_fields.get(tag) == "phone":
        body.update(type="phone", options={"phone_format": "International"})
    return body
