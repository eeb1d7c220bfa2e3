"""`forget`: erase a person everywhere (GDPR/CCPA) and never sync them again.

Each destination that can (an `Eraser`) erases the person first; only when every one confirmed
is the state erased (so a retry of `forget` finishes the job: the mirror still knows the person's
addresses until then). What stays is an HMAC-SHA256 of each normalised email, keyed by
`privacy.forget_key` (never stored in the state): a do-not-sync marker later runs check, and the
key of the audit rows, which hold no personal data. Kommo is never changed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field

from kommo_sync.destinations.base import Destination, Eraser
from kommo_sync.errors import ConfigError, FatalError, RecordRejected, RetryLater
from kommo_sync.model import Person, normalise_email
from kommo_sync.state.rows import contact_from_json
from kommo_sync.state.store import StateStore

KEY_NAME = "privacy.forget_key"
KOMMO_UNCHANGED = (
    "Kommo is not changed: the contact stays there (erase it in Kommo too if the request "
    "covers it); while it does, later runs skip the person everywhere"
)


@dataclass(frozen=True)
class Target:
    """Who is forgotten: their emails, the phones of their contacts, the mirrored contacts."""

    emails: tuple[str, ...]
    phones: tuple[str, ...] = ()
    contact_ids: tuple[int, ...] = ()


@dataclass
class Forgotten:
    """What `forget` did (or, in a dry run, would do): lines to print and the exit code."""

    lines: list[str] = field(default_factory=list)
    done: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed


def email_hmac(key: str, email: str) -> str:
    """The do-not-sync marker of an email: HMAC-SHA256 of its normalised form."""
    return hmac.new(key.encode(), normalise_email(email).encode(), hashlib.sha256).hexdigest()


def require_key(key: str | None) -> str:
    if not key:
        raise ConfigError(
            KEY_NAME,
            "required to forget a person (write `privacy: {forget_key: ${KOMMO_SYNC_FORGET_KEY}}` "
            "and keep a long random value in the environment)",
        )
    return key


def find_target(state: StateStore, who: str) -> Target:
    """An email as given, or a contact id's emails (and phone) from the mirror; with every
    mirrored contact holding one of those emails."""
    by_id = who.strip().isdigit()
    rows = state.contact_rows([int(who)]) if by_id else {}
    contacts = [contact_from_json(data) for data in rows.values()]
    emails = [normalise_email(e) for c in contacts for e in c.emails] if by_id else [who]
    emails = list(dict.fromkeys(normalise_email(e) for e in emails))
    rows.update(state.contacts_with_email(emails))
    phones = sorted({c.phone for c in contacts if c.phone})  # by contact id only
    return Target(tuple(emails), tuple(phones), tuple(sorted(rows)))


def describe(target: Target, destinations: Sequence[Eraser]) -> str:
    """What `forget` is about to erase, for the confirmation question."""
    where = ", ".join(d.name for d in destinations) or "no destination"
    return (
        f"erase {len(target.emails)} email(s) and {len(target.phones)} phone number(s) for good "
        f"at {where} and every row about them in the state (Kommo is not changed)?"
    )


def erasers(destinations: Sequence[Destination]) -> list[Eraser]:
    return [d for d in destinations if isinstance(d, Eraser)]


def forget(
    state: StateStore, destinations: Sequence[Eraser], key: str, target: Target, now: int
) -> Forgotten:
    """Erase at every destination, then (all confirmed) in the state; mark the HMACs."""
    result = Forgotten()
    for destination in destinations:
        try:
            result.done[destination.name] = destination.erase(
                list(target.emails), list(target.phones)
            )
        except (FatalError, RetryLater, RecordRejected, ConfigError) as exc:
            result.failed[destination.name] = str(exc)
    hmacs = [email_hmac(key, email) for email in target.emails]
    with state.transaction():
        state.mark_forgotten(hmacs, now)
        if result.complete:
            erased = state.erase_person(target.contact_ids, target.emails)
            result.done["state"] = f"{sum(erased.values())} row(s) erased"
        for marker in hmacs:
            state.audit_forget(marker, now, _action(result), _audit(result))
    if result.complete:
        state.compact()
    result.lines = _lines(result, destinations)
    return result


def preview(state: StateStore, destinations: Sequence[Eraser], target: Target) -> Forgotten:
    """A dry run: what would be erased where (the state's part counted in a rolled-back
    transaction: the dry-run state commits nothing)."""
    result = Forgotten()
    for destination in destinations:
        result.done[destination.name] = (
            f"would erase the person ({len(target.emails)} email(s), "
            f"{len(target.phones)} phone number(s))"
        )
    erased = state.erase_person(target.contact_ids, target.emails)
    tables = ", ".join(f"{table} {count}" for table, count in sorted(erased.items()))
    result.done["state"] = f"would erase {sum(erased.values())} row(s)" + (
        f" ({tables})" if tables else ""
    )
    result.lines = [f"{name}: {words}" for name, words in result.done.items()]
    result.lines += ["dry run: nothing was changed", KOMMO_UNCHANGED]
    return result


def undo(state: StateStore, key: str, email: str, now: int) -> bool:
    """Lift the do-not-sync marker of an email; True when there was one."""
    marker = email_hmac(key, email)
    with state.transaction():
        lifted = state.unmark_forgotten([marker]) > 0
        if lifted:
            state.audit_forget(marker, now, "undo", {"state": "do-not-sync marker lifted"})
    return lifted


def without_forgotten(
    state: StateStore, key: str | None, people: list[Person]
) -> tuple[list[Person], int]:
    """People to plan, and how many were skipped as forgotten (do-not-sync markers)."""
    if not people or state.forgotten_count() == 0:
        return people, 0
    marked = state.forgotten(email_hmac(require_key(key), p.email) for p in people if p.email)
    kept = [p for p in people if not p.email or email_hmac(key or "", p.email) not in marked]
    return kept, len(people) - len(kept)


def _action(result: Forgotten) -> str:
    return "forget" if result.complete else "forget_incomplete"


def _audit(result: Forgotten) -> dict[str, str]:
    """What was done where, for the audit row: the words carry no address."""
    failed = {name: "not erased (the vendor did not confirm)" for name in result.failed}
    return {**result.done, **failed}


def _lines(result: Forgotten, destinations: Sequence[Eraser]) -> list[str]:
    lines = [f"{name}: {words}" for name, words in result.done.items()]
    lines += [f"{name}: NOT erased: {reason}" for name, reason in result.failed.items()]
    if not destinations:
        lines.append("no destination is configured: only the state was erased")
    if not result.complete:
        lines.append(
            "the state is kept until every destination confirms; the person is already marked "
            "do-not-sync: run the same `forget` again to finish"
        )
    lines.append(KOMMO_UNCHANGED)
    return lines
