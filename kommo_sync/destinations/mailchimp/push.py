"""Pushing members: the cheapest safe path for the run's size.

- a handful of changes go one by one (PUT / PATCH / member tags);
- otherwise new people go first through batch subscribe (500 a call, their stage tag; an
  "already a member" answer falls back to the PUT form, with `status_if_new`), then those PUTs,
  updates, renames, unsubscribes and tag moves are operations of one `/batches` job.
A request refused whole is transient for all it held; a 413 is first sent again in halves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kommo_sync.batching import chunks
from kommo_sync.destinations.mailchimp.api import (
    AudienceApi,
    Result,
    batch_item_result,
    failed,
    problem,
    settle,
    verdict,
)
from kommo_sync.destinations.mailchimp.mapping import ABSENT, subscriber_hash
from kommo_sync.destinations.mailchimp.operations import (
    Subscribe,
    UpdateIfMember,
    method_of,
    moves_tags,
    operation_of,
)
from kommo_sync.destinations.mailchimp.tags import SegmentCall, TagMover, reject_movers
from kommo_sync.errors import RecordRejected, RequestRefused, RetryLater
from kommo_sync.pipeline import map_side_by_side
from kommo_sync.plan import Change

SMALL_RUN = 10
BATCH_SUBSCRIBE_SIZE = 500
DIRECT_TAG_CALLS = (
    3  # a /batches job costs a POST, a poll and the archive: fewer tag calls go direct
)
TOO_LARGE = 413
ALREADY_MEMBER = ("ERROR_CONTACT_EXISTS", "already a list member")


@dataclass
class Pushed:
    """Results by person; `existing`: new people batch subscribe found already in the audience."""

    results: dict[int, Result] = field(default_factory=dict)
    existing: list[Change] = field(default_factory=list)

    def merged(self, other: Pushed) -> Pushed:
        return Pushed({**self.results, **other.results}, self.existing + other.existing)


@dataclass
class _Answers:
    """What became of each operation of a /batches push: its archive item, or the failure of
    the whole request that held it."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, Result] = field(default_factory=dict)

    def of(self, operation_id: str) -> dict[str, Any] | Result:
        if operation_id in self.failed:
            return self.failed[operation_id]
        return self.items.get(operation_id) or Result(
            False, False, "no result in the batch archive"
        )

    def merged(self, other: _Answers) -> _Answers:
        return _Answers({**self.items, **other.items}, {**self.failed, **other.failed})


class MemberPush:
    """Member operations and tag moves of one push, by the path that suits their number."""

    def __init__(self, api: AudienceApi, tags: TagMover, max_connections: int):
        self.api, self.tags, self.max_connections = api, tags, max_connections

    def push(self, changes: list[Change]) -> dict[int, Result]:
        if len(changes) <= SMALL_RUN:
            return {change.person_id: self.push_one(change) for change in changes}
        return self.push_bulk(changes)

    # one by one ------------------------------------------------------------------------------
    def push_one(self, change: Change) -> Result:
        operation = operation_of(change)
        path = self.api.member_path(operation.member_hash)
        body = operation.body()
        try:
            status = None
            if isinstance(operation, Subscribe):
                status = self.api.http.request("PUT", path, json=body).json().get("status")
            elif body or isinstance(operation, UpdateIfMember):
                response = self.api.http.request("PATCH", path, json=body, allow=(404,))
                if response.status_code == 404:
                    return Result(True, status=ABSENT)
                status = response.json().get("status")
            if moves_tags(operation):
                self.tags.tag_member(subscriber_hash(change.email or ""), operation)
            return Result(True, status=status)
        except (RecordRejected, RetryLater) as exc:
            return failed(exc, attributed=True)

    # bulk ------------------------------------------------------------------------------------
    def push_bulk(self, changes: list[Change]) -> dict[int, Result]:
        """New people by batch subscribe first (its calls run side by side and take seconds),
        then everyone else's member operations and tag moves, with the PUT form of those batch
        subscribe found already in the audience, as one `/batches` job: Mailchimp runs a
        list's jobs one at a time, each with a fixed cost of seconds, so one job, not two
        queued one after the other."""
        creates = [c for c in changes if isinstance(c.payload, Subscribe)]
        others = [c for c in changes if not isinstance(c.payload, Subscribe)]
        subscribed = self._batch_subscribe(creates)
        results = dict(subscribed.results)
        results.update(self._batch_operations(others + subscribed.existing))
        return results

    def _batch_subscribe(self, creates: list[Change]) -> Pushed:
        """New people, 500 a call, calls side by side within `max_connections`; those already in
        the audience come back for the PUT form."""
        pushed = Pushed()
        calls = list(chunks(creates, BATCH_SUBSCRIBE_SIZE))
        for chunk in map_side_by_side(
            self._subscribe_chunk, calls, self.max_connections, "mailchimp"
        ):
            pushed = pushed.merged(chunk)
        return pushed

    def _subscribe_chunk(self, chunk: list[Change]) -> Pushed:
        """One batch subscribe call; too large (413) → sent again in halves; refused or failed
        whole (no member named) → transient for everyone it held."""
        members = [_subscriber(c) for c in chunk]
        try:
            body = self.api.call(
                "POST", self.api.list_path, json={"members": members, "update_existing": False}
            ).json()
        except RequestRefused as exc:
            if exc.status == TOO_LARGE and len(chunk) > 1:
                middle = len(chunk) // 2
                return self._subscribe_chunk(chunk[:middle]).merged(
                    self._subscribe_chunk(chunk[middle:])
                )
            return Pushed({c.person_id: failed(exc) for c in chunk})
        except RetryLater as exc:
            return Pushed({c.person_id: failed(exc) for c in chunk})
        return _subscribe_answer(chunk, body)

    def _batch_operations(self, changes: list[Change]) -> dict[int, Result]:
        """Member PUT/PATCH operations and the tag moves of these people, as one asynchronous
        /batches job (operations run in no promised order: a tag move only touches members who
        exist already, and Mailchimp ignores addresses not in the audience)."""
        members = [c for c in changes if operation_of(c).body()]
        results = {c.person_id: Result(True) for c in changes if not operation_of(c).body()}
        calls = self.tags.calls([c for c in changes if moves_tags(operation_of(c))], results)
        if not members and len(calls) <= DIRECT_TAG_CALLS:
            for call in calls:
                self.tags.send(call, results)
            return results
        operations = [self._operation(c) for c in members]
        operations += [call.operation(self.api.list_path) for call in calls]
        self._apply(self._send_batch(operations), members, calls, results)
        return results

    def _apply(
        self,
        answers: _Answers,
        members: list[Change],
        calls: list[SegmentCall],
        results: dict[int, Result],
    ) -> None:
        """Each person's outcome from their member operation and their tag moves."""
        for change in members:
            found = answers.of(str(change.person_id))
            result = found if isinstance(found, Result) else batch_item_result(found)
            settle(results, change.person_id, result)
        for call in calls:
            found = answers.of(call.operation_id)
            if isinstance(found, Result):
                reject_movers(call, found, results)
            elif int(found.get("status_code") or 0) != 200:
                status = int(found.get("status_code") or 0)
                self.tags.refused(call, status, problem(found), results)

    def _send_batch(self, operations: list[dict[str, Any]]) -> _Answers:
        """One /batches job; too large (413) → sent again in halves; refused or failed whole →
        transient for every operation it held."""
        try:
            return _Answers(self.api.run_batch(operations))
        except RequestRefused as exc:
            if exc.status == TOO_LARGE and len(operations) > 1:
                middle = len(operations) // 2
                return self._send_batch(operations[:middle]).merged(
                    self._send_batch(operations[middle:])
                )
            failure = failed(exc)
        except RetryLater as exc:
            failure = failed(exc)
        return _Answers(
            failed={str(operation["operation_id"]): failure for operation in operations}
        )

    def _operation(self, change: Change) -> dict[str, Any]:
        """A member's PUT or PATCH as an operation of a /batches job, named by the person."""
        operation = operation_of(change)
        return {
            "method": method_of(operation),
            "path": self.api.member_path(operation.member_hash),
            "operation_id": str(change.person_id),
            "body": json.dumps(operation.body()),
        }


def _subscriber(change: Change) -> dict[str, Any]:
    """A new person as a member of a batch subscribe call, with their stage tag and Kommo tags
    (tags given here apply when the member is made, which is all this call does)."""
    operation = operation_of(change)
    assert operation.tag is not None  # a new person always gets their stage tag
    kommo = operation.kommo.add if operation.kommo is not None else ()
    return {**operation.body(), "tags": [operation.tag.tag, *kommo]}


def _subscribe_answer(chunk: list[Change], body: dict[str, Any]) -> Pushed:
    """Member errors name their address: those are the only per-record failures."""
    errors = {str(e.get("email_address", "")).lower(): e for e in body.get("errors") or []}
    pushed = Pushed()
    for change in chunk:
        error = errors.get((change.email or "").lower())
        if error is None:
            pushed.results[change.person_id] = Result(True, status=_status_if_new(change))
        elif any(
            mark in f"{error.get('error_code')} {error.get('error')}" for mark in ALREADY_MEMBER
        ):
            pushed.existing.append(change)
        else:
            reason = str(error.get("error") or error.get("error_code"))
            pushed.results[change.person_id] = verdict(400, reason, attributed=True)
    return pushed


def _status_if_new(change: Change) -> str:
    operation = operation_of(change)
    assert isinstance(operation, Subscribe)  # only new people go through batch subscribe
    return operation.status_if_new
