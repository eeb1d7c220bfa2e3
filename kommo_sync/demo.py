"""`kommo-sync demo`: the whole job against local sandboxes with seeded, realistic data.

No accounts and no config: the three sandboxes start on local ports, Kommo is seeded with
contacts, companies and deals across stages, Mailchimp and Klaviyo hold a few people who already
unsubscribed or bounced, and two runs show a first sync and an incremental one (deals moved, an
unsubscribe turned into a Kommo note). Time is simulated, so waits and rate limits cost nothing.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from kommo_sync import report
from kommo_sync.app import build_engine
from kommo_sync.clock import Clock, FakeClock
from kommo_sync.config import load_config
from kommo_sync.results import RunOptions, RunResult
from kommo_sync.sandbox.klaviyo import KlaviyoSandbox
from kommo_sync.sandbox.kommo import KommoSandbox
from kommo_sync.sandbox.mailchimp import MailchimpSandbox
from kommo_sync.sandbox.seed import mutate_fraction, seed_account
from kommo_sync.sandbox.server import SandboxServer

DEMO_ENV = {
    "KOMMO_TOKEN": "demo-kommo-token",
    "MAILCHIMP_API_KEY": "demo0000000000000000000000000000-us1",
    "KLAVIYO_API_KEY": "pk_demo_000000000000",
}
SHOWN_ROWS = 15


class DemoWorld:
    def __init__(self, clock: Clock, contacts: int, folder: Path):
        self.clock, self.folder = clock, folder
        self.kommo = KommoSandbox(clock, token=DEMO_ENV["KOMMO_TOKEN"])
        self.mailchimp = MailchimpSandbox(clock, api_key=DEMO_ENV["MAILCHIMP_API_KEY"])
        self.klaviyo = KlaviyoSandbox(clock, api_key=DEMO_ENV["KLAVIYO_API_KEY"])
        self.servers = [
            SandboxServer(app).start() for app in (self.kommo, self.mailchimp, self.klaviyo)
        ]
        self.info = seed_account(self.kommo, contacts, seed=7)
        self.list_id = self.mailchimp.add_list("CRM contacts")
        self.crm_leads = self.klaviyo.add_list("CRM Leads")
        self.customers = self.klaviyo.add_list("Customers")
        self._seed_destinations()

    def _seed_destinations(self) -> None:
        """People who already opted out or bounced, and a marketer's own tag, as in real lists."""
        found = [self._email(cid) for cid in self.info.contact_ids[:12]]
        emails = [e for e in found if e]
        for email in emails[:3]:
            self.mailchimp.add_member(self.list_id, email, tags=("Webinar 2025",))
        for email in emails[3:5]:
            self.mailchimp.add_member(self.list_id, email, status="unsubscribed")
        if len(emails) > 5:
            self.mailchimp.add_member(self.list_id, emails[5], status="cleaned")

    def _email(self, contact_id: int) -> str | None:
        values = self.kommo.field_texts(contact_id, self.kommo.email_field_id)
        return str(values[0]).strip().lower() if values else None

    def config_path(self) -> Path:
        raw = {
            "kommo": {
                "base_url": self.servers[0].url,
                "token": "${KOMMO_TOKEN}",
                "consent_field": "Email consent",
                "lead_source_field": "Lead source",
            },
            "state": str(self.folder / "kommo-sync.db"),
            "mailchimp": {
                "api_key": "${MAILCHIMP_API_KEY}",
                "base_url": self.servers[1].url + "/3.0",
                "list_id": self.list_id,
            },
            "klaviyo": {
                "api_key": "${KLAVIYO_API_KEY}",
                "base_url": self.servers[2].url,
                "list_id": self.crm_leads,
                "lists_by_stage": {"won": self.customers},
                "events_since": "2020-01-01",
                "phone_region": "DE",
            },
            "feedback": {"activity": True},
        }
        path = self.folder / "sync.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def run_demo(console: Console, contacts: int) -> int:
    clock = FakeClock(start=float(int(time.time())))
    with tempfile.TemporaryDirectory(prefix="kommo-sync-demo-") as folder:
        world = DemoWorld(clock, contacts, Path(folder))
        try:
            config = load_config(world.config_path(), DEMO_ENV)
            console.rule(f"[bold]First sync of {contacts} seeded Kommo contacts")
            _show(console, build_engine(config, clock).run(RunOptions()))
            clock.advance(3600)
            changed = _change_things(world, clock)
            console.rule(
                f"[bold]An hour later: {len(changed)} contacts changed in Kommo, "
                "one person unsubscribed in Mailchimp"
            )
            _show(console, build_engine(config, clock).run(RunOptions()))
            console.rule("[bold]What landed")
            console.print(_landed(world))
        finally:
            world.stop()
    return 0


def _change_things(world: DemoWorld, clock: FakeClock) -> list[int]:
    changed = mutate_fraction(world.kommo, 0.05, seed=3)
    subscribed = [m for m in world.mailchimp.members(world.list_id) if m["status"] == "subscribed"]
    if subscribed:
        world.mailchimp.unsubscribe(
            world.list_id, subscribed[-1]["email_address"], reason="Too many emails"
        )
    clock.advance(60)
    return changed


def _show(console: Console, result: RunResult) -> None:
    result.people = result.people[:SHOWN_ROWS]
    result.changes = result.changes[:SHOWN_ROWS]
    report.render_result(console, result)


def _landed(world: DemoWorld) -> Table:
    members = world.mailchimp.members(world.list_id)
    statuses = Counter(m["status"] for m in members)
    tags = Counter(
        t for m in members for t in world.mailchimp.member_tags(world.list_id, m["email_address"])
    )
    table = Table(title="Sandboxes after the demo")
    table.add_column("where")
    table.add_column("what")
    table.add_row("Mailchimp members", ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    table.add_row("Mailchimp tags", ", ".join(f"{k} {v}" for k, v in sorted(tags.items())))
    table.add_row(
        "Klaviyo list 'CRM Leads'", f"{len(world.klaviyo.list_members(world.crm_leads))} profiles"
    )
    table.add_row(
        "Klaviyo list 'Customers'", f"{len(world.klaviyo.list_members(world.customers))} profiles"
    )
    events = Counter(e["metric"] for e in world.klaviyo.events())
    table.add_row(
        "Klaviyo events", ", ".join(f"{k} {v}" for k, v in sorted(events.items())) or "none"
    )
    notes: list[dict[str, Any]] = world.kommo.notes
    table.add_row("Kommo notes", "\n".join(n["params"]["text"] for n in notes[:5]) or "none")
    return table
