"""The Klaviyo destination: profiles with deal properties, stage lists, consent and deal events,
suppressions read back. Thin: planning is `mapping`, pushing is `push` and `events`, reading
back is `feedback`; this class wires them to one HTTP client and the run's memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from kommo_sync.batching import JOB_TIMES, JobTimer
from kommo_sync.clock import Clock
from kommo_sync.destinations.base import Destination, DriftFound
from kommo_sync.destinations.klaviyo import reconcile
from kommo_sync.destinations.klaviyo.api import klaviyo_http
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.destinations.klaviyo.erase import erase_profiles
from kommo_sync.destinations.klaviyo.events import DealEvents
from kommo_sync.destinations.klaviyo.exits import exit_change, is_exit, push_exits, tombstone
from kommo_sync.destinations.klaviyo.feedback import KlaviyoFeedback
from kommo_sync.destinations.klaviyo.field_config import check_resolved
from kommo_sync.destinations.klaviyo.mapping import NAME, plan_events, plan_person
from kommo_sync.destinations.klaviyo.push import ProfilePush
from kommo_sync.destinations.klaviyo.sms import SmsOptOuts
from kommo_sync.errors import ConfigError
from kommo_sync.fieldmap import Entry, Resolved
from kommo_sync.http import HttpClient
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import DealEvent, Feedback, Person, Stage
from kommo_sync.plan import Change, Outcome, Plan

LISTS_FOUND = "lists_found"


class _ProcessMemory(DestinationMemory):
    """The memory of a destination used before prepare() hands it the state's (tools, tests):
    no state behind it, so what is set stays in this process."""

    def __init__(self) -> None:
        super().__init__(None, NAME)


class KlaviyoDestination(Destination):
    name = NAME

    def __init__(
        self,
        config: KlaviyoConfig,
        tags: Mapping[Stage, str],
        http: HttpClient,
        clock: Clock,
        job_timer: JobTimer | None = None,
    ):
        self.config, self.tags, self.http, self.clock = config, dict(tags), http, clock
        self.job_timer = job_timer or JobTimer()
        self._wire(_ProcessMemory())

    def _wire(self, memory: DestinationMemory) -> None:
        """Collaborators for one run, remembering in `memory`."""
        self.memory = memory
        self.job_timer.restore(memory.get(JOB_TIMES))
        self.sms_optouts = SmsOptOuts(memory)
        sms = self.sms_optouts if self.config.field_map.sms_consent else None
        self.feedback = KlaviyoFeedback(self.config, self.http, self.clock, memory, sms)
        self.profiles = ProfilePush(
            self.config, self.http, self.clock, self.job_timer, self.feedback, self.sms_optouts
        )
        self.events = DealEvents(self.http)

    def prepare(self, memory: DestinationMemory, dry_run: bool) -> None:
        """Every configured list must exist: lists are never created per run (150 a day).
        Lists found once are remembered, so later runs spend no request on them."""
        self._wire(memory)
        known = set(memory.get(LISTS_FOUND, []))
        for key, list_id in self._configured_lists().items():
            if list_id in known:
                continue
            if self.http.request("GET", f"/api/lists/{list_id}", allow=(404,)).status_code == 404:
                raise ConfigError(key, f"no list {list_id!r} in this Klaviyo account")
            known.add(list_id)
        if not dry_run:
            memory.set(LISTS_FOUND, sorted(known))

    def _configured_lists(self) -> dict[str, str]:
        """Each configured list id by the config key that names it."""
        wanted = {"klaviyo.list_id": self.config.list_id}
        wanted.update(
            {
                f"klaviyo.lists_by_stage.{stage.value}": list_id
                for stage, list_id in self.config.lists_by_stage.items()
            }
        )
        return wanted

    def events_since(self) -> int | None:
        moment = self.config.events_since
        return int(moment.timestamp()) if moment else None

    def settings(self) -> Any:
        """The field map joins only when configured: an unchanged config re-plans nobody."""
        return {
            "lists_by_stage": {s.value: i for s, i in self.config.lists_by_stage.items()},
            "subscribe_with_consent": self.config.subscribe_with_consent,
            "phone_region": self.config.phone_region,
            **self.config.field_map.settings(),
        }

    def field_entries(self) -> tuple[Entry, ...]:
        return self.config.field_map.entries()

    def take_fields(self, resolved: tuple[Resolved, ...]) -> None:
        """Only checked: people carry the values by source key, which the config names
        already; the SMS consent must be a checkbox and the birthday a day."""
        check_resolved(resolved)

    def target(self) -> str:
        return self.config.list_id

    def read_feedback(self, since: int, until: int, activity: bool) -> Iterator[Feedback]:
        return self.feedback.read_feedback(since, until, activity)

    def known_suppressions(self) -> Iterator[str]:
        return self.feedback.known_suppressions()

    def erase(self, emails: list[str], phones: list[str]) -> str:
        """`forget`: a data-privacy deletion job per email and phone number."""
        return erase_profiles(self.http, emails, phones)

    def plan(
        self, people: list[Person], pushed: dict[int, dict[str, Any]], suppressed: set[str]
    ) -> Plan:
        plan, counts = Plan(), Counter[str]()
        sms_optouts = self.sms_optouts.emails() if self.config.field_map.sms_consent else set()
        for person in people:
            suppressed_now = person.email in suppressed
            record = pushed.get(person.contact_id)
            change, notes = plan_person(
                person,
                record,
                suppressed_now,
                self.config,
                self.tags,
                sms_blocked=person.email in sms_optouts,
                counts=counts,
            )
            plan.skipped.extend(notes)
            if change is not None:
                plan.changes.append(change)
        plan.counts.update({f"{NAME}.{key}": n for key, n in counts.items()})
        return plan

    def reconcile_cost(self, people: int) -> int:
        return reconcile.reconcile_cost(people, len(self._managed_lists()))

    def read_drift(self, pushed: dict[int, dict[str, Any]]) -> DriftFound:
        """`reconcile`: the managed lists' profiles, read back."""
        return reconcile.read_drift(self.http, pushed, self._managed_lists())

    def _managed_lists(self) -> set[str]:
        return set(self._configured_lists().values())

    def plan_events(self, events: list[DealEvent]) -> Plan:
        return plan_events(events, self.config)

    def exit_changes(self, pushed: dict[int, dict[str, Any]]) -> list[Change]:
        """`on_delete` for deleted contacts this tool pushed (not part of `settings`: it shapes
        no desired state, so changing it re-plans nobody)."""
        changes = (exit_change(pid, pushed[pid], self.config) for pid in sorted(pushed))
        return [change for change in changes if change is not None]

    def tombstone(self, record: dict[str, Any]) -> dict[str, Any]:
        return tombstone(record)

    def push(self, changes: list[Change]) -> list[Outcome]:
        exits = [c for c in changes if is_exit(c)]
        others = [c for c in changes if not is_exit(c)]
        outcomes = push_exits(self.http, exits) + (self.profiles.push(others) if others else [])
        self.job_timer.keep_in(self.memory)
        return outcomes

    def push_events(self, changes: list[Change], outcome_unknown: bool = False) -> list[Outcome]:
        return self.events.push(changes, outcome_unknown)


def build_klaviyo(
    config: KlaviyoConfig,
    tags: Mapping[Stage, str],
    clock: Clock,
    timeout: float = 60.0,
    job_timer: JobTimer | None = None,
) -> KlaviyoDestination:
    """The destination with its HTTP client; `timeout` bounds each request, `job_timer` polls
    jobs."""
    return KlaviyoDestination(config, tags, klaviyo_http(config, clock, timeout), clock, job_timer)
