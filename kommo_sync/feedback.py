"""Feedback read before planning, notes written after pushing.

Each destination reads what it learned since its own cursor (unsubscribes, cleans, optionally
opens and clicks). Unsubscribes become suppressions at once, so the same run never subscribes
those people; every finding becomes a planned note with a stable key. After the pushes the notes
are written to Kommo in batches, each exactly once: a note is marked `sending` before the request
and `written` after, and one left `sending` by a crash is checked against the contact's existing
notes before it is written again.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from kommo_sync import window
from kommo_sync.batching import chunks
from kommo_sync.clock import Clock
from kommo_sync.config import FeedbackConfig
from kommo_sync.destinations.base import FeedbackSource
from kommo_sync.errors import OutcomeUnknown, RequestRefused
from kommo_sync.kommo import KommoClient, kommo_refused_items
from kommo_sync.kommo_records import contact_emails
from kommo_sync.masking import scrub
from kommo_sync.model import Feedback, FeedbackKind
from kommo_sync.notes import (
    ACTIVITY,
    OPTING_OUT,
    SUPPRESSING,
    PlannedNote,
    activity_text,
    notes_for,
    unsubscribe_text,
)
from kommo_sync.plan import STATUS
from kommo_sync.state import StateStore
from kommo_sync.tally import Tally
from kommo_sync.window import Windows

log = logging.getLogger("kommo_sync.feedback")

NOTE_BATCH = 50
OWN_CLOCK_SLACK = 600
OWN_APPLY_DELAY = 86_400
MAX_UNKNOWN_NOTE_BATCHES = 3  # then the rest waits for the next run (Kommo is flaky right now)
READ_CHUNK = 500


class FeedbackStage:
    """Given its collaborators: the state, the Kommo client, the feedback settings, this run's
    windows, the tally it reports into, and the secrets to mask in stored reasons."""

    def __init__(
        self,
        state: StateStore,
        kommo: KommoClient,
        settings: FeedbackConfig,
        windows: Windows,
        tally: Tally,
        clock: Clock,
        secrets: tuple[str, ...],
    ):
        self.state, self.kommo, self.settings, self.windows = state, kommo, settings, windows
        self.tally, self.clock, self.secrets = tally, clock, secrets
        self.run_id: int | None = None
        self.found: dict[str, list[int]] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.unsubscribes or self.settings.activity

    # read ----------------------------------------------------------------------------------
    def read(self, destination: FeedbackSource) -> None:
        """What the destination learned since its cursor, as suppressions and planned notes."""
        if not self.enabled:
            return
        since, until = self._window(destination)
        chunk: list[Feedback] = []
        for item in destination.read_feedback(since, until, self.settings.activity):
            chunk.append(item)
            if len(chunk) >= READ_CHUNK:
                self._take(destination.name, chunk)
                chunk = []
        self._take(destination.name, chunk)

    def _window(self, destination: FeedbackSource) -> tuple[int, int]:
        """A first run starts now, so connecting an account never turns years of old
        unsubscribes into notes; the overlap never reaches below where feedback began."""
        cursor = window.feedback(destination.name)
        start = self.state.cursor(cursor + window.START) or 0
        return self.windows.of(self.state.cursor(cursor), floor=start, initial=self.windows.started)

    def take_found(self, name: str, items: list[Feedback]) -> None:
        """Opt-outs a reconcile found in what the destination holds: suppressions at once, as a
        read's are; notes only for those after feedback began (older ones predate the tool)."""
        start = self.state.cursor(window.feedback(name) + window.START)
        self._take(name, items, notes_after=self.windows.started if start is None else start)

    def _take(self, name: str, items: list[Feedback], notes_after: int | None = None) -> None:
        items = self._unseen(items)
        if not items:
            return
        optouts = [i for i in items if i.kind in OPTING_OUT and self.settings.unsubscribes]
        suppressing = [i for i in optouts if i.kind in SUPPRESSING]
        backfill = self.windows.backfill is not None
        news = optouts if backfill else self._news(name, optouts)
        activity = [i for i in items if i.kind in ACTIVITY] if self.settings.activity else []
        noted = [i for i in news if notes_after is None or i.at > notes_after]
        notes = [
            n for item in noted for n in self._notes(item.email, item.key, unsubscribe_text(item))
        ]
        by_email: dict[str, list[Feedback]] = defaultdict(list)
        for item in activity:
            by_email[item.email].append(item)
        key_suffix = f"{self.windows.end}"
        for email, found in by_email.items():
            notes += self._notes(
                email, f"{name}:activity:{email}:{key_suffix}", activity_text(found)
            )
        email_noted = [i for i in noted if i.kind in SUPPRESSING]  # the Kommo box is email's
        to_clear = self._contacts_of(email_noted) if self.settings.consent_field_write else set()
        with self.state.transaction():
            self.state.queue_consent_clear(to_clear)
            self.state.remember_feedback(i.key for i in items)
            self.state.suppress((i.email, name, i.at) for i in suppressing)
            for item in news:
                if item.kind in SUPPRESSING:  # an SMS opt-out is the destination's to keep
                    self.state.set_pushed_status(name, self._match(item.email)[:1], item.kind)
            planned = self.state.plan_notes(notes, int(self.clock.now()), self.run_id)
        kinds = Counter(f"{name}.feedback.{i.kind}" for i in items)
        self.tally.count(**kinds, notes_planned=planned)
        self.tally.keep("notes", map(_note_row, notes))

    def _news(self, name: str, items: list[Feedback]) -> list[Feedback]:
        """Drop statuses we already knew: a member that was unsubscribed when we pushed it is
        not news when our own update moves its last-changed time; nor is an unsubscribe we
        made ourselves (noted before the push, so a crash before recording it changes nothing)."""
        own = self.state.own_optouts(
            name, {i.email for i in items if i.kind == FeedbackKind.UNSUBSCRIBED}
        )
        items = [
            i
            for i in items
            if not (i.kind == FeedbackKind.UNSUBSCRIBED and _ours(own.get(i.email), i.at))
        ]
        persons = {item.email: (self._match(item.email) or [0])[0] for item in items}
        pushed = self.state.pushed(name, set(persons.values()))
        return [
            i
            for i in items
            if i.kind not in SUPPRESSING
            or (pushed.get(persons[i.email]) or {}).get(STATUS) != i.kind
        ]

    def _unseen(self, items: list[Feedback]) -> list[Feedback]:
        """Items not read by an earlier run (the overlap below the cursor re-reads some)."""
        seen = self.state.seen_feedback(i.key for i in items)
        return [i for i in items if i.key not in seen]

    def _contacts_of(self, items: Iterable[Feedback]) -> set[int]:
        return {cid for item in items for cid in self.found.get(item.email, [])}

    def _notes(self, email: str, key: str, text: str) -> list[PlannedNote]:
        contact_ids = self._match(email)
        if not contact_ids:
            self.tally.count(feedback_not_in_kommo=1)
            self.tally.unmatched(email)
            return []
        open_deals = self.state.leads_of(contact_ids)
        notes: list[PlannedNote] = []
        for cid in contact_ids:
            deals = [lead.id for lead in open_deals.get(cid, []) if not lead.is_closed]
            notes += notes_for(cid, deals, key, text, self.settings.note_on_open_deals)
        return notes

    def _match(self, email: str) -> list[int]:
        """Kommo contacts with this email: from the mirror, else by Kommo's search (re-checked)."""
        if email not in self.found:
            ids = self.state.contact_ids_by_email([email]).get(email, [])
            if not ids:
                ids = sorted(
                    int(raw["id"])
                    for page in self.kommo.search_contacts(email)
                    for raw in page
                    if email in contact_emails(raw)
                )
                self.tally.count(kommo_searches=1)
            self.found[email] = ids
        return self.found[email]

    # write ---------------------------------------------------------------------------------
    def write_notes(self, consent_field_id: int | None) -> None:
        """The planned notes, each written once; then the consent boxes queued for clearing."""
        if not self.enabled:
            return
        self._settle_unknown()
        while True:
            planned = self.state.notes_with_status("planned")
            if not planned:
                break
            for entity in ("contacts", "leads"):
                rows = [n for n in planned if n["entity"] == entity]
                for batch in chunks(rows, NOTE_BATCH):
                    self._send(entity, batch)
            counts = self.tally.result.counts
            if (
                counts["notes_retry_later"]
                or counts["notes_outcome_unknown"] >= MAX_UNKNOWN_NOTE_BATCHES
            ):
                break
        self._clear_consent(consent_field_id)

    def _send(self, entity: str, rows: list[dict[str, Any]]) -> None:
        """One batch of notes. Kommo refuses a batch as a whole: the notes its validation errors
        name (by `request_id`) are rejected with its reason and the rest is sent again; a batch
        whose outcome is unknown stays `sending` and is settled by reading the notes back."""
        now = int(self.clock.now())
        with self.state.transaction():
            self.state.mark_notes([row["key"] for row in rows], "sending", now)
        while rows:
            try:
                self.kommo.add_notes(entity, [(row["entity_id"], row["text"]) for row in rows])
            except OutcomeUnknown:
                self.tally.count(notes_outcome_unknown=1)
                self._settle_unknown()
                return
            except RequestRefused as exc:
                rows = self._drop_named(rows, exc)
                continue
            self._settle([row["key"] for row in rows], "written")
            self.tally.count(notes_written=len(rows))
            return

    def _drop_named(self, rows: list[dict[str, Any]], exc: RequestRefused) -> list[dict[str, Any]]:
        """Reject the notes Kommo named; a refusal naming none holds the batch for the next run."""
        named = kommo_refused_items(exc.body)
        bad = {
            int(rid): reason
            for rid, reason in named.items()
            if rid.isdigit() and int(rid) < len(rows)
        }
        if not bad:
            self._settle([row["key"] for row in rows], "planned", exc.reason)
            self.tally.count(notes_retry_later=len(rows))
            return []
        for index, reason in bad.items():
            self._settle([rows[index]["key"]], "rejected", reason)
        self.tally.count(notes_rejected=len(bad))
        return [row for i, row in enumerate(rows) if i not in bad]

    def _settle(self, keys: list[str], status: str, reason: str | None = None) -> None:
        with self.state.transaction():
            masked = scrub(reason, self.secrets) if reason else reason
            self.state.mark_notes(keys, status, int(self.clock.now()), masked)

    def _settle_unknown(self) -> None:
        """Notes a crash left `sending`: written if Kommo already holds the text, else planned
        again."""
        sending = self.state.notes_with_status("sending", limit=100_000)
        for entity in ("contacts", "leads"):
            rows = [n for n in sending if n["entity"] == entity]
            if not rows:
                continue
            existing = self.kommo.note_texts(entity, {r["entity_id"] for r in rows})
            found = [r["key"] for r in rows if (r["entity_id"], r["text"]) in existing]
            self._settle(found, "written")
            self._settle([r["key"] for r in rows if r["key"] not in set(found)], "planned")
            self.tally.count(notes_found_after_crash=len(found))

    def _clear_consent(self, field_id: int | None) -> None:
        """Uncheck the consent box of the contacts queued by feedback (durably: a crash before
        the PATCH leaves them queued for the next run; clearing twice is harmless)."""
        queued = self.state.consent_clear_queue()
        if queued and field_id is not None:
            self.kommo.clear_checkbox(queued, field_id)
            with self.state.transaction():
                self.state.consent_cleared(queued)
            self.tally.count(consent_cleared=len(queued))

    def advance_cursors(self, names: list[str]) -> None:
        """Move each feedback cursor (of the destinations that were not set aside) to this run's
        start; the first also marks where feedback began, which the overlap never reaches below."""
        if self.enabled and self.windows.backfill is None:
            for name in names:
                cursor = window.feedback(name)
                if self.state.cursor(cursor) is None:
                    self.state.set_cursor(cursor + window.START, self.windows.started)
                self.state.set_cursor(cursor, self.windows.started)


def _ours(pushed_at: int | None, seen_at: int) -> bool:
    """Whether an unsubscribe the vendor reports at `seen_at` is the one we pushed at `pushed_at`:
    from a little before (the vendor's clock may lag ours) to a day after (bulk jobs apply late);
    a later one is the person's own again."""
    return (
        pushed_at is not None
        and pushed_at - OWN_CLOCK_SLACK <= seen_at <= pushed_at + OWN_APPLY_DELAY
    )


def _note_row(note: PlannedNote) -> dict[str, Any]:
    return {
        "contact_id": note.contact_id,
        "entity": note.entity,
        "entity_id": note.entity_id,
        "text": note.text,
    }
