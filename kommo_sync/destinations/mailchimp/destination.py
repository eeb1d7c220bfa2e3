"""Mailchimp as a destination: members, merge fields, one managed stage tag per member, consent,
feedback. This class only wires the rooms together: planning is `mapping`, writing is `push`
and `tags`, the audience's merge fields are `fields`, reading back is `feedback`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from kommo_sync.batching import JOB_TIMES, JobTimer
from kommo_sync.clock import Clock
from kommo_sync.destinations.base import Destination, DriftFound
from kommo_sync.destinations.mailchimp import feedback, reconcile
from kommo_sync.destinations.mailchimp.api import AudienceApi, Result
from kommo_sync.destinations.mailchimp.config import MailchimpConfig
from kommo_sync.destinations.mailchimp.erase import erase_members
from kommo_sync.destinations.mailchimp.exits import exit_change, is_exit, push_exits, tombstone
from kommo_sync.destinations.mailchimp.field_plan import (
    KOMMO_TAGS,
    FieldPlan,
    MappedField,
    tag_cost,
)
from kommo_sync.destinations.mailchimp.field_specs import ensure_field_specs
from kommo_sync.destinations.mailchimp.fields import ensure_merge_fields
from kommo_sync.destinations.mailchimp.mapping import ABSENT, NAME, plan_person
from kommo_sync.destinations.mailchimp.operations import operation_of
from kommo_sync.destinations.mailchimp.push import MemberPush
from kommo_sync.destinations.mailchimp.tags import Segments, TagMover
from kommo_sync.fieldmap import Entry, Resolved, Source
from kommo_sync.http import HttpClient
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import Feedback, Person, Stage
from kommo_sync.plan import STATUS, Change, Outcome, Plan, Skip


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
        self.config, self.tags = config, tags
        self.api = AudienceApi(config, http, archive_http, clock, job_timer or JobTimer())
        self.segments = Segments(self.api, {})
        self.managed: list[str] = list(tags.values())
        self.memory: DestinationMemory | None = None
        self.dry_run = False
        self.audience_was_empty: bool | None = False
        self.audience_lock = threading.Lock()
        self.resolved: tuple[Resolved, ...] = ()
        self.field_plan = FieldPlan(kommo_tags=config.kommo_tags)

    def settings(self) -> Any:
        """The field map and the Kommo tags are in it only when configured: a config without
        them re-plans nobody after an upgrade."""
        settings: dict[str, Any] = {
            "tags": {stage.value: name for stage, name in self.tags.items()},
            "merge_fields": dict(self.config.merge_fields),
            "without_consent": self.config.without_consent,
        }
        if self.config.fields:
            settings["fields"] = [[e.source.key, e.target] for e in self.config.fields]
        if self.config.kommo_tags is not None:
            kommo = self.config.kommo_tags
            settings["kommo_tags"] = [list(kommo.sources), kommo.prefix, kommo.max]
        return settings

    def field_entries(self) -> tuple[Entry, ...]:
        """`mailchimp.fields`, and the built-in tag sources `mailchimp.kommo_tags` reads."""
        return self.config.fields + self._tag_entries()

    def take_fields(self, resolved: tuple[Resolved, ...]) -> None:
        self.resolved = tuple(r for r in resolved if r.entry.target != KOMMO_TAGS)

    def _tag_entries(self) -> tuple[Entry, ...]:
        kommo = self.config.kommo_tags
        if kommo is None:
            return ()
        where = "mailchimp.kommo_tags.from"
        return tuple(Entry(Source(s, "tags", True), KOMMO_TAGS, where) for s in kommo.sources)

    def target(self) -> str:
        return self.config.list_id

    def prepare(self, memory: DestinationMemory, dry_run: bool) -> None:
        self.memory, self.dry_run = memory, dry_run
        self.api.job_timer.restore(memory.get(JOB_TIMES))
        self.managed = sorted(set(memory.get("managed_tags", [])) | set(self.tags.values()))
        ensure_merge_fields(self.api, self.config, memory, dry_run)
        self._prepare_fields(memory, dry_run)
        self.segments = Segments(self.api, memory.get("segments", {}))
        self.audience_was_empty = False if memory.get("members_pushed") else None

    def _prepare_fields(self, memory: DestinationMemory, dry_run: bool) -> None:
        """The merge field of every `fields:` entry, and the Kommo tags managed so far."""
        specs = ensure_field_specs(self.api, self.resolved, memory, dry_run)
        fields = tuple(
            MappedField(r.entry.target, r.key, specs[r.entry.target]) for r in self.resolved
        )
        admitted = set(memory.get(KOMMO_TAGS, []))
        self.field_plan = FieldPlan(fields, self.config.kommo_tags, admitted)

    def plan(
        self, people: list[Person], pushed: dict[int, dict[str, Any]], suppressed: set[str]
    ) -> Plan:
        plan = Plan()
        extra = self.field_plan
        for person in people:
            item = plan_person(
                person,
                pushed.get(person.contact_id),
                person.email in suppressed,
                self.config,
                self.tags,
                extra,
            )
            if isinstance(item, Skip):
                plan.skipped.append(item)
            elif item is not None:
                plan.changes.append(item)
        plan.counts.update(extra.counts)
        extra.counts.clear()
        moves = (operation_of(c).kommo for c in plan.changes)
        plan.counts.update(tag_cost(move for move in moves if move is not None))
        return plan

    def exit_changes(self, pushed: dict[int, dict[str, Any]]) -> list[Change]:
        """`on_delete` for deleted contacts this tool pushed (not part of `settings`: it shapes
        no desired state, so changing it re-plans nobody)."""
        changes = (exit_change(pid, pushed[pid], self.config.on_delete) for pid in sorted(pushed))
        return [change for change in changes if change is not None]

    def tombstone(self, record: dict[str, Any]) -> dict[str, Any]:
        return tombstone(record)

    def push(self, changes: list[Change]) -> list[Outcome]:
        results = push_exits(self.api, [c for c in changes if is_exit(c)])
        results.update(self._absent_without_asking(changes))
        to_send = [c for c in changes if c.person_id not in results]
        mover = TagMover(self.api, self.segments, self.managed, self.tags.values())
        results.update(MemberPush(self.api, mover, self.config.max_connections).push(to_send))
        self._remember_managed()
        if self.memory is not None:
            self.api.job_timer.keep_in(self.memory)
        return [_outcome(change, results[change.person_id]) for change in changes]

    def erase(self, emails: list[str], phones: list[str]) -> str:
        """`forget`: members deleted permanently (Mailchimp keys members by email only)."""
        return erase_members(self.api, emails)

    def read_feedback(self, since: int, until: int, activity: bool) -> Iterator[Feedback]:
        yield from feedback.read_feedback(self.api, self._list_name(), since, until, activity)

    def reconcile_cost(self, people: int) -> int:
        return reconcile.reconcile_cost(people)

    def read_drift(self, pushed: dict[int, dict[str, Any]]) -> DriftFound:
        """`reconcile`: the members pushed, read back; the managed tags are the run's."""
        return reconcile.read_drift(self.api, pushed, self.managed, self._list_name)

    def _absent_without_asking(self, changes: list[Change]) -> dict[int, Result]:
        """ "Update if already a member" needs no request when the audience held nobody before
        our first push: every member in it now is one we added (a 404 answer, known in advance)."""
        probes = [c for c in changes if c.action == "update_if_exists"]
        if not probes or not self._empty_before_our_first_push():
            return {}
        return {c.person_id: Result(True, status=ABSENT) for c in probes}

    def _empty_before_our_first_push(self) -> bool:
        """Asked once, before this run adds anyone (push workers wait for the answer)."""
        with self.audience_lock:
            if self.audience_was_empty is None:
                self.audience_was_empty = self.api.total_contacts() == 0
            return self.audience_was_empty

    def _remember_managed(self) -> None:
        """Handed to the memory as copies: the main thread writes them to the state while a push
        worker may be adding a tag."""
        if self.memory is not None:
            self.memory.set("managed_tags", list(self.managed))
            self.memory.set("segments", self.segments.snapshot())
            self.memory.set("members_pushed", True)
            if self.config.kommo_tags is not None:
                self.memory.set(KOMMO_TAGS, sorted(self.field_plan.admitted))

    def _list_name(self) -> str:
        """The audience's name for notes, asked once and remembered."""
        name = self.memory.get("list_name") if self.memory else None
        if not name:
            body = self.api.get(self.api.list_path, {"fields": "name"}) or {}
            name = body.get("name") or self.config.list_id
            if self.memory is not None and not self.dry_run:
                self.memory.set("list_name", name)
        return str(name)


def _outcome(change: Change, result: Result) -> Outcome:
    if not result.ok:
        return Outcome(change, False, result.permanent, result.reason)
    updates = {STATUS: result.status} if result.status else {}
    return Outcome(change, True, record_updates=updates)
