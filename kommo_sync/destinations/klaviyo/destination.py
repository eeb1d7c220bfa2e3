"""Klaviyo: profiles with deal properties, stage lists, consent, and deal events.

Mapping and planning are pure. Pushing picks the cheapest safe path per run size:
- a handful of profiles go through `POST /api/profile-import` one by one; a 409 on a shared
  phone is retried without the phone, and a 404 on our stored profile id means the profile is
  gone (upsert by email again) or the new email belongs to another profile (rejected);
- otherwise bulk import jobs (≤ 10,000 rows, ≤ 4.5 MB; new people join `list_id` through the
  job), polled on the injected clock; import errors per row become rejections, and conflicts go
  the single way so they get the same care.
Stage lists move by relationship calls (≤ 1,000 ids), consent by Bulk Subscribe (≤ 1,000) and
Bulk Unsubscribe (≤ 100). Bulk Subscribe lifts unsubscribes, so it is never sent for a profile
Klaviyo reports unsubscribed or suppressed: right before the jobs, the profiles suppressed since
the last read (remembered as `suppressions_read_at`) are read and left out.
Deal events go in bulk create jobs (≤ 1,000, never a unique_id twice in one request), or one by
one through `POST /api/events`, which de-duplicates on unique_id: the path for events whose
outcome a crash, a lost answer or a refusal naming no event left unknown (a bulk job is never
sent twice). A request Klaviyo refuses as a whole because of some rows (`source.pointer`) is
resent without them; one refused without naming rows is transient for all it held (decided by
`failures.classify`), and one too large (413) goes again in halves.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import phonenumbers
import requests

from kommo_sync.batching import JobTimer, chunks
from kommo_sync.clock import Clock, epoch_of, iso_utc
from kommo_sync.destinations.base import Destination
from kommo_sync.destinations.klaviyo.config import KlaviyoConfig
from kommo_sync.errors import ConfigError, RequestRefused, RetryLater
from kommo_sync.failures import classify
from kommo_sync.http import HttpClient, describe_error
from kommo_sync.memory import DestinationMemory
from kommo_sync.model import DealEvent, DealEventKind, Feedback, Person, Stage
from kommo_sync.paging import linked_pages
from kommo_sync.plan import Change, Outcome, Plan, Skip, fingerprint

NAME = "klaviyo"
JSONAPI = "application/vnd.api+json"
SMALL_RUN = 10
IMPORT_JOB_ROWS = 2_500
IMPORT_JOB_BYTES = 4_500_000
LIST_CHANGE_SIZE = 1000
SUBSCRIBE_SIZE = 1000
UNSUBSCRIBE_SIZE = 100
EVENT_JOB_SIZE = 1000
PAGE_SIZE = 100
RATE_PER_SECOND = 10.0
CUSTOM_SOURCE = "Kommo CRM sync"
CONFLICT_CODES = ("duplicate_profile", "not_found")
ROW_POINTER = re.compile(r"^/data/attributes/profiles/data/(\d+)")
LIST_POINTER = re.compile(r"^/data/(\d+)")
EVENT_POINTER = re.compile(
    r"^/data/attributes/events-bulk-create/data/(\d+)(?:/attributes/events/data/(\d+))?"
)

Locator = Callable[[str], list[int]]
Builder = Callable[[list[Change]], tuple[dict[str, Any], Locator]]


# mapping (pure) ------------------------------------------------------------------------------
def e164(phone: str | None, region: str | None) -> str | None:
    """The phone in E.164, or None when it does not read as a valid number."""
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _amount(value: float) -> float | int:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def profile_attributes(person: Person, phone: str | None) -> dict[str, str | None]:
    return {
        "first_name": person.first_name or None,
        "last_name": person.last_name or None,
        "organization": person.company or None,
        "phone_number": phone,
    }


def profile_properties(person: Person) -> dict[str, Any]:
    """Custom properties; None means "not known now" (unset when it was pushed before)."""
    deal = person.deal
    return {
        "crm_stage": deal.status_name if deal else None,
        "crm_pipeline": deal.pipeline_name if deal else None,
        "deal_amount": _amount(deal.amount) if deal else None,
        "kommo_deal_id": deal.id if deal else None,
        "kommo_contact_id": person.contact_id,
    }


def lists_for(stage: Stage, config: KlaviyoConfig) -> list[str]:
    """`list_id` for everyone, plus the stage's list when one is configured."""
    stage_list = config.lists_by_stage.get(stage)
    return sorted({config.list_id, stage_list} if stage_list else {config.list_id})


def desired_profile(person: Person, config: KlaviyoConfig, suppressed: bool) -> dict[str, Any]:
    phone = e164(person.phone, config.phone_region)
    return {
        "email": person.email,
        "attributes": profile_attributes(person, phone),
        "properties": profile_properties(person),
        "lists": lists_for(person.stage, config),
        "consent": person.consent,
        "subscribe": config.subscribe_with_consent and person.consent is True and not suppressed,
    }


def plan_person(
    person: Person,
    pushed: dict[str, Any] | None,
    suppressed: bool,
    config: KlaviyoConfig,
    tags: Mapping[Stage, str],
) -> tuple[Change | None, list[Skip]]:
    """The one change this person needs in Klaviyo (None when in step), and notes to count."""
    if not person.email:
        return None, [Skip(person.contact_id, "no_email")]
    desired = desired_profile(person, config, suppressed)
    digest = fingerprint(desired)
    if pushed is not None and pushed.get("fingerprint") == digest:
        return None, []
    bad_phone = bool(person.phone) and desired["attributes"]["phone_number"] is None
    change = profile_change(person, desired, digest, pushed, config)
    summary = {
        **change.summary,
        "stage": tags.get(person.stage),
        "phone_dropped": person.phone if bad_phone else None,
    }
    return replace(change, summary=summary), [
        Skip(person.contact_id, "bad_phone")
    ] if bad_phone else []


def profile_change(
    person: Person,
    desired: dict[str, Any],
    digest: str,
    pushed: dict[str, Any] | None,
    config: KlaviyoConfig,
) -> Change:
    before = pushed or {}
    add, remove = list_moves(desired["lists"], pushed, config)
    unsubscribe = before.get("consent") is True and person.consent is False
    subscribe = desired["subscribe"] and not before.get("subscribe")
    renamed = pushed is not None and before.get("email") != person.email
    action = (
        "unsubscribe" if unsubscribe else "rename" if renamed else "update" if pushed else "create"
    )
    payload = {
        "profile_id": before.get("profile_id"),
        "email": person.email,
        "attributes": _attributes_to_send(desired["attributes"], before.get("attributes") or {}),
        "properties": {k: v for k, v in desired["properties"].items() if v is not None},
        "unset": sorted(
            k
            for k, v in desired["properties"].items()
            if v is None and (before.get("properties") or {}).get(k) is not None
        ),
        "add_lists": add,
        "remove_lists": remove,
        "subscribe": subscribe,
        "unsubscribe": unsubscribe,
    }
    summary = {
        "fields": changed_fields(desired, before),
        "lists_added": add,
        "lists_removed": remove,
        "subscribe": subscribe or None,
        "unsubscribe": unsubscribe or None,
        "renamed_from": before.get("email") if renamed else None,
    }
    record = {**desired, "profile_id": before.get("profile_id"), "fingerprint": digest}
    if unsubscribe:
        record["status"] = "unsubscribed"  # our own unsubscribe is not news for the notes
    return Change(
        NAME,
        person.contact_id,
        person.email,
        action,
        digest,
        record,
        summary,
        payload,
        opts_out=unsubscribe,
    )


def list_moves(
    lists: list[str], pushed: dict[str, Any] | None, config: KlaviyoConfig
) -> tuple[list[str], list[str]]:
    """Lists to join and to leave: we leave only lists we joined (the stage lists are ours)."""
    if pushed is None:
        return lists, []
    before = set(pushed.get("lists") or [])
    return sorted(set(lists) - before), sorted(before - set(lists))


def _attributes_to_send(attributes: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Known values, and null for a value pushed before and gone now (null clears it)."""
    return {k: v for k, v in attributes.items() if v is not None or before.get(k) is not None}


def changed_fields(desired: dict[str, Any], before: dict[str, Any]) -> list[str]:
    old = {**(before.get("attributes") or {}), **(before.get("properties") or {})}
    new = {**desired["attributes"], **desired["properties"]}
    return sorted(name for name, value in new.items() if old.get(name) != value)


def unique_id(event_id: str) -> str:
    """Stable per Kommo event, so Klaviyo records a re-sent event once."""
    return f"kommo-event-{event_id}"


def event_properties(event: DealEvent) -> dict[str, Any]:
    values = {
        "deal_name": event.deal_name,
        "deal_stage": event.stage,
        "previous_stage": event.previous_stage,
        "pipeline": event.pipeline,
        "deal_amount": _amount(event.deal_amount),
        "kommo_deal_id": event.lead_id,
    }
    return {k: v for k, v in values.items() if v is not None}


def event_payload(event: DealEvent, email: str, config: KlaviyoConfig) -> dict[str, Any]:
    """The `POST /api/events` body; bulk jobs regroup the same attributes per profile."""
    attributes: dict[str, Any] = {
        "properties": event_properties(event),
        "time": iso_utc(event.at),
        "unique_id": unique_id(event.id),
        "metric": {
            "data": {"type": "metric", "attributes": {"name": config.events[event.kind.value]}}
        },
        "profile": {"data": {"type": "profile", "attributes": {"email": email}}},
    }
    if event.kind is DealEventKind.WON:
        attributes.update(value=_amount(event.deal_amount), value_currency=config.currency)
    if event.backfill:
        attributes["backfill"] = True
    return {"data": {"type": "event", "attributes": attributes}}


def event_change(event: DealEvent, person: Person, config: KlaviyoConfig) -> Change:
    payload = event_payload(event, person.email or "", config)
    summary = {
        "event": config.events[event.kind.value],
        "deal": event.deal_name,
        "stage": event.stage,
        "from": event.previous_stage,
        "at": iso_utc(event.at),
        "backfill": event.backfill or None,
    }
    return Change(
        NAME,
        person.contact_id,
        person.email,
        event.kind.value,
        fingerprint(payload),
        {"event_id": event.id},
        summary,
        payload,
    )


# request bodies --------------------------------------------------------------------------------
def profile_resource(payload: dict[str, Any]) -> dict[str, Any]:
    """One profile as profile-import and bulk import rows take it."""
    attributes: dict[str, Any] = {"email": payload["email"], **payload["attributes"]}
    if payload["properties"]:
        attributes["properties"] = payload["properties"]
    row: dict[str, Any] = {"type": "profile", "attributes": attributes}
    if payload["profile_id"]:
        row["id"] = payload["profile_id"]
    if payload["unset"]:
        row["meta"] = {"patch_properties": {"unset": payload["unset"]}}
    return row


def import_job_body(rows: list[dict[str, Any]], list_ids: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "profile-bulk-import-job",
        "attributes": {"profiles": {"data": rows}},
    }
    if list_ids:
        data["relationships"] = {"lists": {"data": [{"type": "list", "id": i} for i in list_ids]}}
    return {"data": data}


def consent_body(
    job_type: str, consent: str, rows: list[tuple[str | None, str]], list_id: str | None = None
) -> dict[str, Any]:
    """Bulk Subscribe / Unsubscribe body for (profile id, email) rows."""
    profiles = []
    for profile_id, email in rows:
        row: dict[str, Any] = {
            "type": "profile",
            "attributes": {
                "email": email,
                "subscriptions": {"email": {"marketing": {"consent": consent}}},
            },
        }
        if profile_id:
            row["id"] = profile_id
        profiles.append(row)
    attributes: dict[str, Any] = {"profiles": {"data": profiles}}
    if consent == "SUBSCRIBED":
        attributes["custom_source"] = CUSTOM_SOURCE
    data: dict[str, Any] = {"type": job_type, "attributes": attributes}
    if list_id:
        data["relationships"] = {"list": {"data": {"type": "list", "id": list_id}}}
    return {"data": data}


def events_job_body(payloads: list[dict[str, Any]]) -> tuple[dict[str, Any], Locator]:
    """Events grouped per profile, and a locator from error pointers back to input positions."""
    groups: dict[str, list[int]] = {}
    for position, payload in enumerate(payloads):
        groups.setdefault(_event_email(payload), []).append(position)
    entries = []
    for positions in groups.values():
        first = payloads[positions[0]]["data"]["attributes"]
        events = [
            {
                "type": "event",
                "attributes": {
                    k: v for k, v in payloads[p]["data"]["attributes"].items() if k != "profile"
                },
            }
            for p in positions
        ]
        entries.append(
            {
                "type": "event-bulk-create",
                "attributes": {"profile": first["profile"], "events": {"data": events}},
            }
        )
    body = {
        "data": {
            "type": "event-bulk-create-job",
            "attributes": {"events-bulk-create": {"data": entries}},
        }
    }
    return body, _event_locator(list(groups.values()))


def _event_email(payload: dict[str, Any]) -> str:
    return str(
        payload["data"]["attributes"]["profile"]["data"]["attributes"].get("email") or ""
    ).lower()


def _event_locator(layout: list[list[int]]) -> Locator:
    def locate(pointer: str) -> list[int]:
        match = EVENT_POINTER.match(pointer)
        if not match or int(match[1]) >= len(layout):
            return []
        positions = layout[int(match[1])]
        if match[2] is not None and int(match[2]) < len(positions):
            return [positions[int(match[2])]]
        return positions

    return locate


def _index_locator(pattern: re.Pattern[str]) -> Locator:
    def locate(pointer: str) -> list[int]:
        match = pattern.match(pointer)
        return [int(match[1])] if match else []

    return locate


# client -----------------------------------------------------------------------------------------
def klaviyo_http(config: KlaviyoConfig, clock: Clock, timeout: float = 60.0) -> HttpClient:
    headers = {
        "Authorization": f"Klaviyo-API-Key {config.api_key}",
        "revision": config.revision,
        "Accept": JSONAPI,
        "Content-Type": JSONAPI,
    }
    return HttpClient(
        base_url=config.base_url,
        vendor="Klaviyo",
        clock=clock,
        headers=headers,
        rate_per_second=RATE_PER_SECOND,
        max_connections=4,
        timeout=timeout,
        auth_hint="check klaviyo.api_key (KLAVIYO_API_KEY) and its scopes",
    )


def build_klaviyo(
    config: KlaviyoConfig,
    tags: Mapping[Stage, str],
    clock: Clock,
    timeout: float = 60.0,
    job_timer: JobTimer | None = None,
) -> KlaviyoDestination:
    """The destination with its HTTP client; `timeout` bounds each request, `job_timer` polls jobs."""
    return KlaviyoDestination(config, tags, klaviyo_http(config, clock, timeout), clock, job_timer)


@dataclass(frozen=True)
class _Failure:
    reason: str
    permanent: bool

    @classmethod
    def judged(cls, status: int, reason: str, attributed: bool, text: str = "") -> _Failure:
        """The classification table's verdict on a refusal (`text`: Klaviyo's code, title and
        detail); a record is named (`attributed`) by a row pointer or a single-record request."""
        verdict = classify(NAME, status, text or reason, attributed=attributed)
        return cls(reason if verdict.permanent else f"{reason} ({verdict.why})", verdict.permanent)


def _failure(exc: RequestRefused | RetryLater, attributed: bool = False) -> _Failure:
    if isinstance(exc, RequestRefused):
        return _Failure.judged(exc.status, exc.reason, attributed, _error_text(exc.body))
    return _Failure(str(exc), False)


def _error_text(body: Any) -> str:
    """The code, title and detail of each error in a JSON:API error body."""
    errors = body.get("errors") if isinstance(body, dict) else None
    return " ".join(_text_of(error) for error in errors or [] if isinstance(error, dict))


def _text_of(error: dict[str, Any]) -> str:
    """What the classification patterns read in one error: its code, title and detail."""
    return " ".join(str(error.get(key) or "") for key in ("code", "title", "detail"))


class _RowRefused(Exception):
    """A single-profile request refused: Klaviyo named that record."""

    def __init__(self, failure: _Failure):
        super().__init__(failure.reason)
        self.failure = failure


@dataclass
class _Result:
    """What happened to one person's profile during a push."""

    profile_id: str | None = None
    marketing: dict[str, Any] | None = None
    joined: tuple[str, ...] = ()
    failure: _Failure | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def fail(self, failure: _Failure) -> None:
        self.failure = self.failure or failure


@dataclass
class _Sent:
    """One logical request after dropping the rows Klaviyo pointed at (and halving it when too
    large), by input position: the requests Klaviyo accepted with their positions, the failures,
    and `unsettled`: positions of a request refused without naming rows, or whose outcome is
    unknown (they hold transient failures)."""

    failures: dict[int, _Failure] = field(default_factory=dict)
    accepted: list[tuple[list[int], requests.Response]] = field(default_factory=list)
    unsettled: list[int] = field(default_factory=list)

    @property
    def sent(self) -> list[int]:
        return [position for positions, _ in self.accepted for position in positions]

    def hold(self, positions: list[int], failure: _Failure) -> None:
        self.failures.update({position: failure for position in positions})
        self.unsettled += positions

    def take(self, response: requests.Response, pending: list[int], locate: Locator) -> list[int]:
        """Record Klaviyo's answer for `pending`; the positions to send again (refused because
        of other rows). A refusal naming no row is transient for all it held."""
        status = response.status_code
        if status < 300:
            self.accepted.append((pending, response))
            return []
        named = _pointed_rows(response, locate, len(pending))
        if not named:
            self.hold(
                pending,
                _Failure.judged(
                    status, describe_error(response), False, _error_text(_json_of(response))
                ),
            )
            return []
        for position, (reason, text) in named.items():
            self.failures[pending[position]] = _Failure.judged(status, reason, True, text)
        return [i for position, i in enumerate(pending) if position not in named]


def _json_of(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _pointed_rows(
    response: requests.Response, locate: Locator, count: int
) -> dict[int, tuple[str, str]]:
    """Positions the error pointers of a refusal name, with Klaviyo's reason and error text."""
    body = _json_of(response)
    errors = (body.get("errors") if isinstance(body, dict) else None) or []
    rows: dict[int, tuple[str, str]] = {}
    for error in (e for e in errors if isinstance(e, dict)):
        pointer = str((error.get("source") or {}).get("pointer") or "")
        for position in locate(pointer):
            if position < count:
                rows.setdefault(
                    position,
                    (str(error.get("detail") or error.get("title") or "invalid"), _text_of(error)),
                )
    return rows


def _error(response: requests.Response) -> dict[str, Any]:
    try:
        errors = response.json().get("errors") or [{}]
    except (ValueError, AttributeError):
        return {}
    return errors[0] if isinstance(errors[0], dict) else {}


SUPPRESSION = "subscriptions.email.marketing.suppression"
SUPPRESSIONS_READ_AT = "suppressions_read_at"
EVER = "1990-01-01T00:00:00Z"
CLOCK_SKEW = 60
FEEDBACK_SORT = "feedback_sort"
SORT_WORD = re.compile(r"\bsort\b", re.IGNORECASE)
ACTIVITY_METRICS = {"Opened Email": "open", "Clicked Email": "click"}
SUPPRESSION_KINDS = {
    "UNSUBSCRIBE": ("unsubscribed", ""),
    "SPAM_COMPLAINT": ("unsubscribed", "marked an email as spam"),
    "USER_SUPPRESSED": ("unsubscribed", "suppressed in Klaviyo"),
    "HARD_BOUNCE": ("cleaned", "hard bounce"),
    "INVALID_EMAIL": ("cleaned", "invalid email"),
}


def _suppression_feedback(profile: dict[str, Any], since: int, until: int) -> Iterator[Feedback]:
    """One Feedback per global email suppression of this profile inside (since, until]."""
    marketing = (
        ((profile.get("attributes") or {}).get("subscriptions") or {}).get("email") or {}
    ).get("marketing") or {}
    email = str(profile["attributes"].get("email") or "").lower()
    for suppression in marketing.get("suppression") or []:
        at = epoch_of(suppression["timestamp"])
        kind, detail = SUPPRESSION_KINDS.get(suppression.get("reason"), ("unsubscribed", ""))
        if email and since < at <= until:
            yield Feedback(
                "klaviyo",
                kind,
                email,
                at,
                "Klaviyo email marketing",
                f"klaviyo:{suppression.get('reason')}:{profile['id']}:{at}",
                detail=detail,
            )


def _refuses_sort(exc: RequestRefused) -> bool:
    """Klaviyo's 400 for a `sort` it will not take (its error names the parameter or the sort)."""
    errors = (exc.body.get("errors") if isinstance(exc.body, dict) else None) or []
    named = any(
        isinstance(e, dict) and (e.get("source") or {}).get("parameter") == "sort" for e in errors
    )
    return exc.status == 400 and (named or SORT_WORD.search(_error_text(exc.body)) is not None)


def may_subscribe(marketing: dict[str, Any] | None, list_id: str) -> bool:
    """Only a profile that never subscribed and carries no suppression: Bulk Subscribe lifts them."""
    if (
        not marketing
        or marketing.get("consent") != "NEVER_SUBSCRIBED"
        or marketing.get("suppression")
    ):
        return False
    return not any(s.get("list_id") == list_id for s in marketing.get("list_suppressions") or [])


class _ProcessMemory(DestinationMemory):
    """The memory of a destination used before prepare() hands it the state's (tools, tests)."""

    def __init__(self) -> None:
        super().__init__(None, NAME)

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            return self.pending.get(key, default)


class KlaviyoDestination(Destination):
    name = NAME
    wants_deal_events = True

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
        self.phone_owners: dict[int, int] = {}
        self.phone_lock = threading.Lock()
        self.memory: DestinationMemory = _ProcessMemory()
        self.suppressions_lock = threading.Lock()

    def prepare(self, memory: DestinationMemory, dry_run: bool) -> None:
        """Every configured list must exist: lists are never created per run (150 a day).
        Lists found once are remembered, so later runs spend no request on them."""
        self.memory = memory
        self.phone_owners.clear()
        wanted = {"klaviyo.list_id": self.config.list_id}
        wanted.update(
            {
                f"klaviyo.lists_by_stage.{stage.value}": list_id
                for stage, list_id in self.config.lists_by_stage.items()
            }
        )
        known = set(memory.get("lists_found", []))
        for key, list_id in wanted.items():
            if list_id in known:
                continue
            if self.http.request("GET", f"/api/lists/{list_id}", allow=(404,)).status_code == 404:
                raise ConfigError(key, f"no list {list_id!r} in this Klaviyo account")
            known.add(list_id)
        if not dry_run:
            memory.set("lists_found", sorted(known))

    def events_since(self) -> int | None:
        moment = self.config.events_since
        return int(moment.timestamp()) if moment else None

    def settings(self) -> Any:
        return {
            "lists_by_stage": {s.value: l for s, l in self.config.lists_by_stage.items()},
            "subscribe_with_consent": self.config.subscribe_with_consent,
            "phone_region": self.config.phone_region,
        }

    def target(self) -> str:
        return self.config.list_id

    # feedback ------------------------------------------------------------------------------------
    def read_feedback(self, since: int, until: int, activity: bool) -> Iterator[Feedback]:
        """Email-marketing suppressions from the profiles API, filtered by suppression time.

        The profiles API (filter on `subscriptions.email.marketing.suppression.timestamp`, which
        the spec lists with gt/lte) gives the state with its reason in one paged read, while the
        events API needs the account's metric ids first and a metric exists only once it happened.
        """
        window = (
            f"greater-than({SUPPRESSION}.timestamp,{iso_utc(since)}),"
            f"less-or-equal({SUPPRESSION}.timestamp,{iso_utc(until)})"
        )
        params = {
            "additional-fields[profile]": "subscriptions",
            "filter": window,
            "page[size]": PAGE_SIZE,
            "fields[profile]": "email,subscriptions",
        }
        for profile in self._suppressed_profiles(params):
            yield from _suppression_feedback(profile, since, until)
        if activity:
            yield from self._activity(since, until)

    def _suppressed_profiles(self, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Sorted by suppression time, unless Klaviyo refuses a sort beside a subscriptions filter
        (reported, not documented): then unsorted, and remembered, so later runs send no request
        bound to fail first. Nothing depends on the order: feedback keys are stable."""
        if self.memory.get(FEEDBACK_SORT, True):
            try:
                yield from self._pages(
                    "/api/profiles", {**params, "sort": f"{SUPPRESSION}.timestamp"}
                )
                return
            except RequestRefused as exc:
                if not _refuses_sort(exc):
                    raise
                self.memory.set(FEEDBACK_SORT, False)
        yield from self._pages("/api/profiles", params)

    def _activity(self, since: int, until: int) -> Iterator[Feedback]:
        metrics = {m["attributes"].get("name"): m["id"] for m in self._pages("/api/metrics", {})}
        for name, kind in ACTIVITY_METRICS.items():
            if name not in metrics:
                continue
            params = {
                "filter": f'equals(metric_id,"{metrics[name]}"),greater-than(datetime,{iso_utc(since)}),'
                f"less-or-equal(datetime,{iso_utc(until)})",
                "include": "profile",
                "fields[profile]": "email",
                "page[size]": 200,
            }
            yield from self._activity_events(params, kind)

    def _activity_events(self, params: dict[str, Any], kind: str) -> Iterator[Feedback]:
        for body in self._bodies("/api/events", params):
            emails = {
                p["id"]: str(p["attributes"].get("email") or "").lower()
                for p in body.get("included") or []
            }
            for event in body.get("data") or []:
                email = emails.get(
                    ((event.get("relationships") or {}).get("profile") or {})
                    .get("data", {})
                    .get("id")
                )
                if email:
                    props = event["attributes"].get("event_properties") or {}
                    yield Feedback(
                        "klaviyo",
                        kind,
                        email,
                        epoch_of(event["attributes"]["datetime"]),
                        "Klaviyo",
                        f"klaviyo:{kind}:{event['id']}",
                        detail=str(
                            props.get("Campaign Name") or props.get("Subject") or "a campaign"
                        ),
                        url=str(props.get("URL") or ""),
                    )

    # plan -------------------------------------------------------------------------------------
    def plan(
        self, people: list[Person], pushed: dict[int, dict[str, Any]], suppressed: set[str]
    ) -> Plan:
        plan = Plan()
        for person in people:
            change, notes = plan_person(
                person,
                pushed.get(person.contact_id),
                person.email in suppressed,
                self.config,
                self.tags,
            )
            plan.skipped.extend(notes)
            if change is not None:
                plan.changes.append(change)
        return plan

    def plan_events(self, events: list[DealEvent]) -> Plan:
        plan = Plan()
        for event in events:
            person = event.person
            if person is None or not person.email:
                plan.skipped.append(Skip(person.contact_id if person else 0, "no_email"))
            else:
                plan.changes.append(event_change(event, person, self.config))
        return plan

    # push: profiles -----------------------------------------------------------------------------
    def push(self, changes: list[Change]) -> list[Outcome]:
        changes = self._with_known_ids(changes)
        results = {c.person_id: _Result() for c in changes}
        if len(changes) <= SMALL_RUN:
            for change in changes:
                self._import_one(change, results[change.person_id])
        else:
            self._import_bulk(changes, results)
        self._move_lists([c for c in changes if not results[c.person_id].failure], results)
        self._subscribe([c for c in changes if not results[c.person_id].failure], results)
        self._unsubscribe([c for c in changes if not results[c.person_id].failure], results)
        return [self._outcome(change, results[change.person_id]) for change in changes]

    def _with_known_ids(self, changes: list[Change]) -> list[Change]:
        """A renamed person whose profile id we never read is found by the old email first, so
        the email change updates that profile instead of creating a second one."""
        return [
            self._with_id(c) if c.summary.get("renamed_from") and not c.payload["profile_id"] else c
            for c in changes
        ]

    def _with_id(self, change: Change) -> Change:
        old = str(change.summary["renamed_from"]).replace('"', '\\"')
        body = self.http.get_json(
            "/api/profiles", params={"filter": f'equals(email,"{old}")', "fields[profile]": "email"}
        )
        found = (body or {}).get("data") or []
        return (
            replace(change, payload={**change.payload, "profile_id": found[0]["id"]})
            if found
            else change
        )

    def known_suppressions(self) -> Iterator[str]:
        """Everyone Klaviyo must not email: global suppressions and suppressions on our list.
        The time of the read is remembered: Bulk Subscribe reads only what came after it."""
        started = int(self.clock.now())
        filters = (
            f"greater-than({SUPPRESSION}.timestamp,{EVER})",
            f'equals(subscriptions.email.marketing.list_suppressions.list_id,"{self.config.list_id}")',
        )
        for condition in filters:
            yield from self._suppressed_emails(condition)
        self.memory.set(SUPPRESSIONS_READ_AT, started)

    def _suppressed_emails(self, condition: str) -> Iterator[str]:
        params = {"filter": condition, "fields[profile]": "email", "page[size]": PAGE_SIZE}
        for profile in self._pages("/api/profiles", params):
            if profile["attributes"].get("email"):
                yield str(profile["attributes"]["email"]).lower()

    def _suppressed_since_last_read(self) -> set[str]:
        """Emails globally suppressed in Klaviyo since the last read, less a minute for clock
        skew (all of them when no read is remembered), in one paged read. What the plan knew
        may be a crash or a disabled feedback read old, and Bulk Subscribe lifts suppressions."""
        with self.suppressions_lock:
            last = self.memory.get(SUPPRESSIONS_READ_AT)
            started = int(self.clock.now())
            since = EVER if last is None else iso_utc(last - CLOCK_SKEW)
            emails = set(self._suppressed_emails(f"greater-than({SUPPRESSION}.timestamp,{since})"))
            self.memory.set(SUPPRESSIONS_READ_AT, max(started, last or 0))
        return emails

    @staticmethod
    def _outcome(change: Change, result: _Result) -> Outcome:
        if result.failure:
            return Outcome(change, False, result.failure.permanent, result.failure.reason)
        return Outcome(
            change, True, record_updates={"profile_id": result.profile_id, **result.notes}
        )

    def _import_one(self, change: Change, result: _Result) -> None:
        try:
            self._import_row(change, profile_resource(change.payload), result)
        except _RowRefused as exc:
            result.fail(exc.failure)
        except (RequestRefused, RetryLater) as exc:
            result.fail(_failure(exc))

    def _import_row(self, change: Change, row: dict[str, Any], result: _Result) -> None:
        response = self._profile_import(row)
        if response.status_code == 404 and row.get("id"):
            self._import_without_stale_id(change, row, response, result)
        elif response.status_code == 409:
            self._import_despite_conflict(change, row, response, result)
        else:
            self._take(result, response.json()["data"])

    def _profile_import(self, row: dict[str, Any]) -> requests.Response:
        try:
            return self.http.request(
                "POST",
                "/api/profile-import",
                json={"data": row},
                allow=(404, 409),
                params={"additional-fields[profile]": "subscriptions"},
                need_body=True,
            )
        except RequestRefused as exc:
            raise _RowRefused(_failure(exc, attributed=True)) from None

    def _take(self, result: _Result, data: dict[str, Any]) -> None:
        result.profile_id = data["id"]
        subscriptions = (data.get("attributes") or {}).get("subscriptions") or {}
        result.marketing = (subscriptions.get("email") or {}).get("marketing")

    def _import_without_stale_id(
        self, change: Change, row: dict[str, Any], response: requests.Response, result: _Result
    ) -> None:
        """404 on our stored id: the profile is gone (upsert by email), or the new email is taken."""
        if self._profile(row["id"]) is None:
            self._import_row(change, {k: v for k, v in row.items() if k != "id"}, result)
            return
        error = _error(response)
        reason = (
            f"{error.get('detail') or 'not found'} "
            f"(the new email {change.email} belongs to another Klaviyo profile)"
        )
        result.fail(_Failure.judged(404, reason, True, _text_of(error)))

    def _import_despite_conflict(
        self, change: Change, row: dict[str, Any], response: requests.Response, result: _Result
    ) -> None:
        """409 duplicate_profile: a shared phone is left out; another profile is taken over only
        when its email is ours, so two people never merge."""
        if row["attributes"].get("phone_number"):
            row = {
                **row,
                "attributes": {k: v for k, v in row["attributes"].items() if k != "phone_number"},
            }
            response = self._profile_import(row)
            result.notes["phone_withheld"] = True
            if response.status_code < 300:
                self._take(result, response.json()["data"])
                return
        error = _error(response)
        duplicate = (error.get("meta") or {}).get("duplicate_profile_id")
        owner = self._profile(duplicate) if duplicate and response.status_code == 409 else None
        if owner and str(owner.get("email") or "").lower() == (change.email or "").lower():
            retry = self._profile_import({**row, "id": duplicate})
            if retry.status_code < 300:
                self._take(result, retry.json()["data"])
                return
            error = _error(retry)
        reason = (
            f"{error.get('code', 'conflict')}: {error.get('detail') or describe_error(response)}"
        )
        if duplicate:
            reason += f" (Klaviyo profile {duplicate})"
        result.fail(_Failure.judged(response.status_code, reason, True, _text_of(error)))

    def _profile(self, profile_id: str) -> dict[str, Any] | None:
        response = self.http.request(
            "GET", f"/api/profiles/{profile_id}", allow=(404,), need_body=True
        )
        return None if response.status_code == 404 else response.json()["data"]["attributes"]

    # push: bulk import --------------------------------------------------------------------------
    def _import_bulk(self, changes: list[Change], results: dict[int, _Result]) -> None:
        conflicts = self._import_jobs(self._without_claimed_phones(changes, results), results)
        for change in self._import_without_phones(conflicts, results):
            self._import_one(change, results[change.person_id])

    def _import_without_phones(
        self, conflicts: list[Change], results: dict[int, _Result]
    ) -> list[Change]:
        """Identity conflicts are mostly shared office phones: resend those rows in one job
        without the phone (recorded as withheld; a job costs a POST and a poll, one by one costs
        two requests a row, so from two rows on); what still conflicts goes one by one."""
        phoned = [c for c in conflicts if c.payload["attributes"].get("phone_number")]
        if len(phoned) < 2:
            return conflicts
        for change in phoned:
            results[change.person_id].notes["phone_withheld"] = True
        resent = self._import_jobs(list(map(_without_phone, phoned)), results)
        return [c for c in conflicts if c not in phoned] + resent

    def _without_claimed_phones(
        self, changes: list[Change], results: dict[int, _Result]
    ) -> list[Change]:
        """One phone, one Klaviyo profile: a phone this run already sent with another email would
        only come back as a conflict after the job, so such rows go without it at once (withheld,
        as after a conflict). The first person to send a phone keeps it. Only hashes are kept: a
        500,000-contact sync would otherwise hold every phone and email twice."""
        kept = []
        with self.phone_lock:
            for change in changes:
                phone, email = (
                    change.payload["attributes"].get("phone_number"),
                    (change.email or "").lower(),
                )
                if phone and self.phone_owners.setdefault(hash(phone), hash(email)) != hash(email):
                    results[change.person_id].notes["phone_withheld"] = True
                    change = _without_phone(change)
                kept.append(change)
        return kept

    def _import_jobs(self, changes: list[Change], results: dict[int, _Result]) -> list[Change]:
        """One import job per group of lists to join (and per 10,000 rows), run side by side:
        Klaviyo works on several jobs at once. Returns the rows that hit identity conflicts."""
        jobs = [
            (chunk, list_ids)
            for list_ids, group in _by_lists_to_join(changes)
            for chunk in _importchunks(group)
        ]
        conflicts: list[Change] = []
        for found in _side_by_side(lambda job: self._import_job(job[0], job[1], results), jobs):
            conflicts += found
        return conflicts

    def _import_job(
        self, chunk: list[Change], list_ids: list[str], results: dict[int, _Result]
    ) -> list[Change]:
        """One bulk import job (or several, when Klaviyo finds it too large); returns the rows
        that hit an identity conflict (to go singly)."""
        sent = self._send(
            "POST",
            "/api/profile-bulk-import-jobs",
            chunk,
            lambda part: (
                import_job_body([profile_resource(c.payload) for c in part], list_ids),
                _index_locator(ROW_POINTER),
            ),
            need_body=True,
        )
        self._apply(chunk, sent, results)
        conflicts: list[Change] = []
        for positions, response in sent.accepted:
            conflicts += self._finish_import(
                [chunk[i] for i in positions], response, list_ids, results
            )
        return conflicts

    def _finish_import(
        self,
        rows: list[Change],
        response: requests.Response,
        list_ids: list[str],
        results: dict[int, _Result],
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
                results[change.person_id].fail(_failure(exc))
            return []
        return self._read_job(rows, errors, found, list_ids, results)

    def _read_job(
        self,
        rows: list[Change],
        errors: dict[int, dict[str, Any]],
        found: dict[str, dict[str, Any]] | None,
        list_ids: list[str],
        results: dict[int, _Result],
    ) -> list[Change]:
        conflicts = []
        for index, change in enumerate(rows):
            result, error = results[change.person_id], errors.get(index)
            if error and error.get("code") in CONFLICT_CODES:
                conflicts.append(change)
            elif error:
                reason = str(error.get("detail") or error.get("title") or error.get("code"))
                result.fail(
                    _Failure.judged(int(error.get("status") or 400), reason, True, _text_of(error))
                )
            elif found is None:
                result.profile_id = change.payload["profile_id"]
                result.joined = tuple(list_ids)
            elif (change.email or "").lower() in found:
                self._take(result, found[(change.email or "").lower()])
                result.joined = tuple(list_ids)
            else:
                result.fail(_Failure("Klaviyo's import job did not report this profile", False))
        return conflicts

    def _wait_for_job(self, job: dict[str, Any], rows: int) -> dict[str, Any]:
        job_id = job["id"]
        job = self.job_timer.wait(
            job,
            rows,
            lambda j: j["attributes"]["status"] in ("complete", "cancelled"),
            lambda _: self.http.get_json(f"/api/profile-bulk-import-jobs/{job_id}")["data"],
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
        errors = {}
        for item in self._pages(
            f"/api/profile-bulk-import-jobs/{job_id}/import-errors", {"page[size]": PAGE_SIZE}
        ):
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
            for p in self._pages(f"/api/profile-bulk-import-jobs/{job_id}/profiles", params)
        }

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for body in self._bodies(path, params):
            yield from body.get("data") or []

    def _bodies(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Each page of a JSON:API collection, following `links.next` (a full URL with a cursor);
        a next link served before is a PagingLoop."""
        return linked_pages(
            lambda: self.http.get_json(path, params=params),
            self.http.get_json,
            f"Klaviyo GET {path}",
        )

    # push: lists and consent --------------------------------------------------------------------
    def _move_lists(self, changes: list[Change], results: dict[int, _Result]) -> None:
        adds: dict[str, list[Change]] = {}
        removes: dict[str, list[Change]] = {}
        for change in changes:
            for list_id in change.payload["add_lists"]:
                if list_id not in results[change.person_id].joined:
                    adds.setdefault(list_id, []).append(change)
            for list_id in change.payload["remove_lists"]:
                removes.setdefault(list_id, []).append(change)
        for method, moves in (("DELETE", removes), ("POST", adds)):
            for list_id, members in sorted(moves.items()):
                for chunk in chunks(members, LIST_CHANGE_SIZE):
                    self._list_call(method, list_id, chunk, results)

    def _list_call(
        self, method: str, list_id: str, chunk: list[Change], results: dict[int, _Result]
    ) -> None:
        sent = self._send(
            method,
            f"/api/lists/{list_id}/relationships/profiles",
            chunk,
            lambda part: (
                {
                    "data": [
                        {"type": "profile", "id": results[c.person_id].profile_id} for c in part
                    ]
                },
                _index_locator(LIST_POINTER),
            ),
        )
        self._apply(chunk, sent, results)

    def _subscribe(self, changes: list[Change], results: dict[int, _Result]) -> None:
        """Bulk Subscribe for those who may be subscribed; whoever Klaviyo suppressed since the
        last read (made right before these jobs) is left out and kept unsubscribed."""
        ready = [
            c
            for c in changes
            if c.payload["subscribe"] and self._may_subscribe(results[c.person_id])
        ]
        suppressed = self._suppressed_since_last_read() if ready else set()
        for change in (c for c in ready if (c.email or "").lower() in suppressed):
            results[change.person_id].notes["kept_unsubscribed"] = True
        ready = [c for c in ready if (c.email or "").lower() not in suppressed]

        def subscribe(chunk: list[Change]) -> None:
            sent = self._send(
                "POST",
                "/api/profile-subscription-bulk-create-jobs",
                chunk,
                lambda part: (
                    consent_body(
                        "profile-subscription-bulk-create-job",
                        "SUBSCRIBED",
                        [(results[c.person_id].profile_id, c.email or "") for c in part],
                        self.config.list_id,
                    ),
                    _index_locator(ROW_POINTER),
                ),
            )
            self._apply(chunk, sent, results)

        _side_by_side(subscribe, list(chunks(ready, SUBSCRIBE_SIZE)))

    def _may_subscribe(self, result: _Result) -> bool:
        """Unknown consent (bulk imports read none back) goes by the suppressions read; a known
        unsubscribe or suppression is kept."""
        marketing = result.marketing
        if marketing is None or may_subscribe(marketing, self.config.list_id):
            return True
        if marketing.get("consent") != "SUBSCRIBED":
            result.notes["kept_unsubscribed"] = True
        return False

    def _unsubscribe(self, changes: list[Change], results: dict[int, _Result]) -> None:
        """Consent withdrawn in Kommo: unsubscribed from email marketing (globally, no list)."""
        withdrawn = [c for c in changes if c.payload["unsubscribe"]]
        for chunk in chunks(withdrawn, UNSUBSCRIBE_SIZE):
            sent = self._send(
                "POST",
                "/api/profile-subscription-bulk-delete-jobs",
                chunk,
                lambda part: (
                    consent_body(
                        "profile-subscription-bulk-delete-job",
                        "UNSUBSCRIBED",
                        [(None, c.email or "") for c in part],
                    ),
                    _index_locator(ROW_POINTER),
                ),
            )
            self._apply(chunk, sent, results)

    # push: the shared refusal handling ---------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        items: list[Change],
        build: Builder,
        repeatable: bool = True,
        need_body: bool = False,
    ) -> _Sent:
        """One request for `items`. When Klaviyo refuses it because of some rows (error
        pointers), those rows fail with its reason and the rest is sent again; when it is too
        large (413), it goes again in halves, down to one row. A request that is not
        `repeatable` is never resent after it may have been applied: its rows go `unsettled`.
        `need_body`: an answer without the body due (a job's id) is a failed attempt."""
        sent = _Sent()
        request = functools.partial(
            self.http.request,
            method,
            path,
            allow=(400, 409, 413),
            repeatable=repeatable,
            need_body=need_body,
        )
        self._send_part(request, items, build, list(range(len(items))), sent)
        return sent

    def _send_part(
        self,
        request: Callable[..., requests.Response],
        items: list[Change],
        build: Builder,
        pending: list[int],
        sent: _Sent,
    ) -> None:
        while pending:
            body, locate = build([items[i] for i in pending])
            try:
                response = request(json=body)
            except (RequestRefused, RetryLater) as exc:
                sent.hold(pending, _failure(exc))
                return
            if response.status_code == 413 and len(pending) > 1:
                middle = len(pending) // 2
                for half in (pending[:middle], pending[middle:]):
                    self._send_part(request, items, build, half, sent)
                return
            pending = sent.take(response, pending, locate)

    @staticmethod
    def _apply(chunk: list[Change], sent: _Sent, results: dict[int, _Result]) -> None:
        for index, failure in sent.failures.items():
            results[chunk[index].person_id].fail(failure)

    # push: events --------------------------------------------------------------------------------
    def push_events(self, changes: list[Change], outcome_unknown: bool = False) -> list[Outcome]:
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
            failure = _failure(exc, attributed=True)
            return Outcome(change, False, failure.permanent, failure.reason)
        return Outcome(change, True)

    def _event_job(self, chunk: list[Change]) -> dict[str, Outcome]:
        """One bulk create job, never sent twice: it has no status to read back, so events whose
        outcome is unknown (a lost answer, a 5xx) or that were refused without being named go one
        by one through POST /api/events, which records a repeated unique_id once."""
        sent = self._send(
            "POST",
            "/api/event-bulk-create-jobs",
            chunk,
            lambda part: events_job_body([c.payload for c in part]),
            repeatable=False,
        )
        outcomes = {chunk[i].record["event_id"]: Outcome(chunk[i], True) for i in sent.sent}
        for index, failure in sent.failures.items():
            outcomes[chunk[index].record["event_id"]] = Outcome(
                chunk[index], False, failure.permanent, failure.reason
            )
        for index in sent.unsettled:
            outcomes[chunk[index].record["event_id"]] = self._send_event(chunk[index])
        return outcomes


def _without_phone(change: Change) -> Change:
    attributes = {k: v for k, v in change.payload["attributes"].items() if k != "phone_number"}
    return replace(change, payload={**change.payload, "attributes": attributes})


def _side_by_side(work: Callable[[Any], Any], items: list[Any], workers: int = 4) -> list[Any]:
    """`work` over `items` on a few threads (each item touches only its own rows' results)."""
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(
        max_workers=min(workers, len(items)), thread_name_prefix="klaviyo"
    ) as pool:
        return list(pool.map(work, items))


def _needs_read_back(rows: list[Change]) -> bool:
    """A job's profiles (100 a request) are read back only when a list must be left by a
    profile whose id we do not know: lists are joined inside the job itself, and whether someone
    may be subscribed comes from the suppressions read before planning."""
    return any(not c.payload["profile_id"] and c.payload["remove_lists"] for c in rows)


def _by_lists_to_join(changes: list[Change]) -> list[tuple[list[str], list[Change]]]:
    """Rows grouped by the lists they join, so each import job joins them in one go."""
    groups: dict[tuple[str, ...], list[Change]] = {}
    for change in changes:
        groups.setdefault(tuple(sorted(change.payload["add_lists"])), []).append(change)
    return [(list(lists), group) for lists, group in sorted(groups.items())]


def _importchunks(changes: list[Change]) -> Iterator[list[Change]]:
    """Rows for import jobs: at most 10,000 and about 4.5 MB each (Klaviyo's cap is 5 MB)."""
    chunk: list[Change] = []
    size = 0
    for change in changes:
        row_size = len(json.dumps(profile_resource(change.payload)))
        if chunk and (len(chunk) >= IMPORT_JOB_ROWS or size + row_size > IMPORT_JOB_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(change)
        size += row_size
    if chunk:
        yield chunk
