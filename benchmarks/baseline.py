"""The per-record baseline: the design of the how-to articles, as a webhook backend runs it.

One contact at a time per worker, `WORKERS` workers side by side (webhooks arrive together):
read the contact from Kommo, PUT the Mailchimp member, POST its tags, import the Klaviyo
profile, add it to the list, post an event — six requests per contact with an email, over the
same HTTP stack (Kommo paced as kommo-sync paces it). It tags by "has leads or not" from the
contact it read; finding the real stage would cost it more lead reads, not counted (in its
favour). It runs on sandboxes of its own, populated like ours, and is measured up to
`--baseline-max` contacts and 100 changes; above that its figures are extrapolated linearly
(every record costs the same), and marked so.
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from figures import Figures, measured
from stack import ENV, KLAVIYO_KEY, RemoteStack, write_config

from kommo_sync.clock import Clock
from kommo_sync.config import Config, load_config
from kommo_sync.destinations.klaviyo.config import KLAVIYO_REVISION
from kommo_sync.destinations.mailchimp import mailchimp_http
from kommo_sync.destinations.mailchimp.mapping import subscriber_hash
from kommo_sync.errors import RecordRejected, RetryLater, VendorDown
from kommo_sync.http import HttpClient
from kommo_sync.kommo import KommoClient, kommo_http, resolve_fields
from kommo_sync.kommo_records import parse_contact

WORKERS = 8
MEASURED_CHANGES = 100
BASELINE_EVENT = "Synced from Kommo"


class PerRecordBaseline:
    """Six requests per contact, `WORKERS` contacts at a time."""

    def __init__(self, config: Config, stack: RemoteStack):
        clock = Clock()
        assert config.mailchimp is not None
        self.kommo = kommo_http(config.kommo, clock)
        self.mailchimp = mailchimp_http(config.mailchimp, clock)
        self.klaviyo = HttpClient(
            base_url=stack.url("klaviyo"),
            vendor="Klaviyo",
            clock=clock,
            headers={
                "Authorization": f"Klaviyo-API-Key {KLAVIYO_KEY}",
                "revision": KLAVIYO_REVISION,
                "Accept": "application/vnd.api+json",
            },
        )
        self.member_path = f"/lists/{config.mailchimp.list_id}/members"
        self.klaviyo_list = stack.klaviyo_list
        self.fields = resolve_fields(config.kommo, KommoClient(self.kommo).custom_fields())
        self.outcomes: Counter[str] = Counter()
        self.pace = config.kommo.requests_per_second

    def run(self, contact_ids: list[int]) -> None:
        with ThreadPoolExecutor(WORKERS, thread_name_prefix="webhook") as pool:
            list(pool.map(self.sync_one, contact_ids))

    def sync_one(self, contact_id: int) -> None:
        raw = self.kommo.get_json(f"/api/v4/contacts/{contact_id}", params={"with": "leads"})
        contact = parse_contact(raw, self.fields)
        if not contact.email:
            self.outcomes["no email"] += 1
            return
        tag = "In Progress" if (raw.get("_embedded") or {}).get("leads") else "New Lead"
        self._attempt("mailchimp", lambda: self.to_mailchimp(contact, tag))
        self._attempt("klaviyo", lambda: self.to_klaviyo(contact))

    def _attempt(self, name: str, send: Any) -> None:
        try:
            send()
            self.outcomes[f"{name} done"] += 1
        except (RecordRejected, RetryLater):
            self.outcomes[f"{name} rejected"] += 1
        except VendorDown:  # e.g. 429s past the retries: Klaviyo's M tier (150/min) on lists
            self.outcomes[f"{name} failed"] += 1

    def to_mailchimp(self, contact: Any, tag: str) -> None:
        path = f"{self.member_path}/{subscriber_hash(contact.email)}"
        member = {
            "email_address": contact.email,
            "status_if_new": "subscribed" if contact.consent else "transactional",
            "merge_fields": {"FNAME": contact.first_name, "LNAME": contact.last_name},
        }
        self.mailchimp.request("PUT", path, json=member)
        tags = {"tags": [{"name": tag, "status": "active"}]}
        self.mailchimp.request("POST", f"{path}/tags", json=tags)

    def to_klaviyo(self, contact: Any) -> None:
        attributes = {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
        }
        profile = {"data": {"type": "profile", "attributes": attributes}}
        body = self.klaviyo.request("POST", "/api/profile-import", json=profile).json()
        member = {"data": [{"type": "profile", "id": body["data"]["id"]}]}
        path = f"/api/lists/{self.klaviyo_list}/relationships/profiles"
        self.klaviyo.request("POST", path, json=member)
        self.klaviyo.request("POST", "/api/events", json=self._event(contact))

    @staticmethod
    def _event(contact: Any) -> dict[str, Any]:
        metric = {"data": {"type": "metric", "attributes": {"name": BASELINE_EVENT}}}
        profile = {"data": {"type": "profile", "attributes": {"email": contact.email}}}
        attributes = {
            "properties": {"kommo_contact_id": contact.id},
            "metric": metric,
            "profile": profile,
        }
        return {"data": {"type": "event", "attributes": attributes}}


@dataclass(frozen=True)
class Row:
    """The baseline's figures for one size: measured, or scaled from the runs it did."""

    wall: float
    kommo: int
    destination: int
    measured: bool


@dataclass
class Baseline:
    """The baseline's measured runs, by (kind, contacts processed)."""

    runs: dict[tuple[str, int], Figures]
    outcomes: Counter[str]

    def row(self, kind: str, size: int) -> Row | None:
        """A first sync of `size` contacts, or `size` changes (a change is one record either
        way): measured when it ran, else scaled from its largest run (every record costs the
        same)."""
        kind = "first" if kind == "first" else "incremental"
        run = self.runs.get((kind, size))
        if run is not None:
            return Row(run.cost.wall, len(run.stamps["kommo"]), run.destination_requests, True)
        if not self.runs or not size:
            return None
        largest = max(self.runs.values(), key=lambda figures: figures.size)
        factor = size / largest.size
        return Row(
            largest.cost.wall * factor,
            round(len(largest.stamps["kommo"]) * factor),
            round(largest.destination_requests * factor),
            False,
        )


def baseline(args: argparse.Namespace, contacts: int, changes: list[int]) -> Baseline:
    """A first sync of `contacts` and each change count, on sandboxes of its own."""
    stack = RemoteStack(args.network)
    try:
        info = stack.seed(contacts, args.seed)
        stack.populate(args.seed)
        with tempfile.TemporaryDirectory(prefix="kommo-sync-baseline-") as folder:
            config = load_config(write_config(stack, Path(folder), False, args.kommo_rate), ENV)
            worker = PerRecordBaseline(config, stack)
            runs = {("first", contacts): measure(worker, stack, "first", info.contact_ids)}
            for count in changes:
                edited = stack.mutate(count, args.seed + count)
                runs[("incremental", count)] = measure(worker, stack, "incremental", edited)
        return Baseline(runs, worker.outcomes)
    finally:
        stack.close()


def measure(worker: PerRecordBaseline, stack: RemoteStack, kind: str, ids: list[int]) -> Figures:
    marks = stack.marks()
    with measured() as cost:
        worker.run(ids)
    stamps = stack.since(marks)
    return Figures(
        f"per-record baseline, {len(ids):,} contacts",
        "baseline",
        len(ids),
        cost,
        worker.pace,
        stamps,
        len(ids),
        {"contacts by id": len(ids)},
    )
