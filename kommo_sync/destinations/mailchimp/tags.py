"""Stage tags: one managed tag per member, moved by static-segment calls (500 adds and 500
removes per call and tag), or on one member directly when a run is small.

Only the tags this tool manages are ever removed. A tag is found by its exact name and created
when first added; a marketer who deletes one gets it back on the next run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from kommo_sync.destinations.mailchimp.api import (
    AudienceApi,
    Result,
    already_exists,
    answer,
    failed,
    settle,
)
from kommo_sync.destinations.mailchimp.operations import (
    KommoTagMove,
    MemberOperation,
    TagChange,
    operation_of,
)
from kommo_sync.errors import OutcomeUnknown, RecordRejected, RequestRefused, RetryLater
from kommo_sync.plan import Change

SEGMENT_SIZE = 500


@dataclass(frozen=True)
class SegmentCall:
    """One static-segment call: up to 500 members gain the tag, up to 500 lose it."""

    name: str
    segment_id: int
    start: int
    add: tuple[Change, ...]
    remove: tuple[Change, ...]

    @property
    def operation_id(self) -> str:
        return f"tag:{self.segment_id}:{self.start}"

    def body(self) -> dict[str, list[str]]:
        return {
            "members_to_add": [c.email or "" for c in self.add],
            "members_to_remove": [c.email or "" for c in self.remove],
        }

    def operation(self, list_path: str) -> dict[str, Any]:
        """This call as an operation of a /batches job."""
        return {
            "method": "POST",
            "path": f"{list_path}/segments/{self.segment_id}",
            "operation_id": self.operation_id,
            "body": json.dumps(self.body()),
        }


class Segments:
    """The audience's tags (static segments): exact name → id, shared by the push workers.

    Lookups and creations hold the lock: two batches pushed at once must not create one tag
    twice. What the state stores is `snapshot()`, a copy taken under the lock, so a worker that
    adds a tag later never changes a value the main thread is writing.
    """

    def __init__(self, api: AudienceApi, known: Mapping[str, int]):
        self.api = api
        self._ids = dict(known)
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._ids)

    def id_of(self, name: str, create: bool) -> int | None:
        """The tag's id by exact name; created when missing and `create` (a tag being added)."""
        with self._lock:
            if name in self._ids:
                return self._ids[name]
            self._read()
            if name not in self._ids and create:
                self._ids[name] = self._create(name)
            return self._ids.get(name)

    def forget(self, name: str) -> None:
        """A marketer deleted the tag: it is looked up (and made) again next time."""
        with self._lock:
            self._ids.pop(name, None)

    def _read(self) -> None:
        api = self.api
        for segment in api.collection(f"{api.list_path}/segments", "segments", {"type": "static"}):
            self._ids.setdefault(segment["name"], int(segment["id"]))

    def _create(self, name: str) -> int:
        """A create is not safe to repeat: an unknown outcome, or "already exists" (batch subscribe
        made the tag meanwhile), is settled by reading the tags back; when it is not there after
        all, it is created once more, then left to the next run."""
        for _ in range(2):
            try:
                return int(
                    self.api.http.request(
                        "POST",
                        f"{self.api.list_path}/segments",
                        repeatable=False,
                        json={"name": name, "static_segment": []},
                    ).json()["id"]
                )
            except OutcomeUnknown:
                pass
            except RequestRefused as exc:
                if not already_exists(exc.reason):
                    raise
            self._read()
            if name in self._ids:
                return self._ids[name]
        raise RetryLater(
            f"tag '{name}': Mailchimp did not confirm making it and it is not among the "
            "audience's tags; made on the next run"
        )


class TagMover:
    """Moves managed tags: `managed` are all the tags this tool ever pushed, `current` those the
    stages map to now (a tag no longer mapped is only ever removed)."""

    def __init__(
        self,
        api: AudienceApi,
        segments: Segments,
        managed: Collection[str],
        current: Collection[str],
    ):
        self.api, self.segments = api, segments
        self.managed, self.current = managed, current

    def tag_member(self, member_hash: str, operation: MemberOperation) -> None:
        """One member's tags in one call: the stage tag active and every other managed stage tag
        inactive (when the stage tag moves), the Kommo tags added and removed."""
        tags = _stage_tags(operation.tag, self.managed) + _kommo_tags(operation.kommo)
        self.api.http.request(
            "POST", f"{self.api.member_path(member_hash)}/tags", json={"tags": tags}
        )

    def calls(self, movers: list[Change], results: dict[int, Result]) -> list[SegmentCall]:
        """Per managed tag, static-segment calls adding the people who now carry it and removing
        it from the rest; people whose tag cannot be found or made are rejected in `results`."""
        calls: list[SegmentCall] = []
        if not movers:
            return calls
        moves = [(change, operation_of(change).tag) for change in movers]
        for name in self.managed:
            add = [c for c, tag in moves if tag is not None and tag.tag == name]
            remove = [
                c for c, tag in moves if tag is not None and tag.tag != name and tag.may_carry(name)
            ]
            if name not in self.current and not remove:
                continue
            calls += self._calls_of(name, add, remove, results)
        return calls + self._kommo_calls(movers, results)

    def _kommo_calls(self, movers: list[Change], results: dict[int, Result]) -> list[SegmentCall]:
        """Per Kommo tag moved, the calls adding it to and removing it from its people."""
        moves = [(c, k) for c in movers if (k := operation_of(c).kommo) is not None]
        names = sorted({name for _, k in moves for name in (*k.add, *k.remove)})
        calls: list[SegmentCall] = []
        for name in names:
            add = [c for c, k in moves if name in k.add]
            remove = [c for c, k in moves if name in k.remove]
            calls += self._calls_of(name, add, remove, results)
        return calls

    def _calls_of(
        self, name: str, add: list[Change], remove: list[Change], results: dict[int, Result]
    ) -> list[SegmentCall]:
        """One tag's calls; its people are rejected in `results` when it cannot be found or made
        (a tag only removed and not in the audience needs no call)."""
        try:
            segment_id = self.segments.id_of(name, create=bool(add))
        except (RecordRejected, RetryLater) as exc:
            for change in add + remove:
                settle(results, change.person_id, failed(exc))
            return []
        return [] if segment_id is None else _split(name, segment_id, add, remove)

    def send(self, call: SegmentCall, results: dict[int, Result]) -> None:
        """One static-segment call made directly (a few tag moves cost less than a job)."""
        try:
            self.api.http.request(
                "POST", f"{self.api.list_path}/segments/{call.segment_id}", json=call.body()
            )
        except RecordRejected as exc:
            self.refused(call, exc.status or 400, ("", exc.reason), results)
        except RetryLater as exc:
            reject_movers(call, failed(exc), results)

    def refused(
        self, call: SegmentCall, status: int, problem: tuple[str, str], results: dict[int, Result]
    ) -> None:
        """A refused tag move rejects its people; a 404 means a marketer deleted the tag: it is
        forgotten, made again on the next run, and these people retried then."""
        if status == 404:
            self.segments.forget(call.name)
            failure = Result(
                False,
                False,
                f"tag '{call.name}' was deleted in Mailchimp; it is made again on the next run",
            )
        else:
            failure = answer(status, *problem, attributed=False)  # a tag move names no one record
        reject_movers(call, failure, results)


def _stage_tags(tag: TagChange | None, managed: Collection[str]) -> list[dict[str, str]]:
    if tag is None:
        return []
    return [
        {"name": name, "status": "active" if name == tag.tag else "inactive"} for name in managed
    ]


def _kommo_tags(kommo: KommoTagMove | None) -> list[dict[str, str]]:
    if kommo is None:
        return []
    active = [{"name": name, "status": "active"} for name in kommo.add]
    return active + [{"name": name, "status": "inactive"} for name in kommo.remove]


def reject_movers(call: SegmentCall, failure: Result, results: dict[int, Result]) -> None:
    """A refused tag move rejects its people, unless another part of their push already failed."""
    for change in call.add + call.remove:
        settle(results, change.person_id, failure)


def _split(
    name: str, segment_id: int, add: list[Change], remove: list[Change]
) -> list[SegmentCall]:
    """The calls of one tag, each within Mailchimp's 500 adds and 500 removes."""
    return [
        SegmentCall(
            name,
            segment_id,
            start,
            tuple(add[start : start + SEGMENT_SIZE]),
            tuple(remove[start : start + SEGMENT_SIZE]),
        )
        for start in range(0, max(len(add), len(remove)), SEGMENT_SIZE)
    ]
