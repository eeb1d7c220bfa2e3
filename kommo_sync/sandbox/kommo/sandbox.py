"""A Kommo (amoCRM) REST API v4 sandbox: an in-memory account served over real HTTP.

It follows /api/v4 as the vendor notes describe it: HAL pages with 1-based `page` and `limit`,
204 with no body for empty lists, `_links.next` on every non-empty page (even the last one),
problem+json errors, 7 requests per second then 429 (with `retry_after` in the body only), and an
IP block (403, bare text) after repeated 429s. Where the real behaviour is unconfirmed it does
the pessimistic variant: `limit` > 250 silently becomes 50, an unchecked consent box is absent
from `custom_fields_values`, linking a lead does not bump the contact's `updated_at`, and a
batch write is rejected as a whole when one item is invalid. The account-level reads (account,
users, custom fields and tags of contacts, leads and companies, loss reasons) pass the same
token, fault, rate and block checks; a lost lead keeps its `loss_reason_id` when reopened.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from kommo_sync.clock import Clock
from kommo_sync.sandbox.kommo.companies import CompanyEndpoints
from kommo_sync.sandbox.kommo.contacts import ContactEndpoints
from kommo_sync.sandbox.kommo.directory import DirectoryEndpoints
from kommo_sync.sandbox.kommo.edits import KommoEdits
from kommo_sync.sandbox.kommo.leads import LeadEndpoints
from kommo_sync.sandbox.kommo.lifecycle import KommoLifecycle
from kommo_sync.sandbox.kommo.notes import NoteEndpoints
from kommo_sync.sandbox.kommo.rules import ENTITY_TYPES
from kommo_sync.sandbox.server import Request, Response


class KommoSandbox(
    ContactEndpoints,
    LeadEndpoints,
    CompanyEndpoints,
    DirectoryEndpoints,
    NoteEndpoints,
    KommoLifecycle,
    KommoEdits,
):
    """An in-memory Kommo account (contacts, companies, leads, pipelines, events, notes, custom
    fields, tags, users, loss reasons and the account's settings)."""

    def __init__(
        self,
        clock: Clock | None = None,
        token: str = "sandbox-kommo-token",
        rate_limit: int | None = 7,
        block_after: int = 20,
    ):
        super().__init__(clock, token, rate_limit, block_after)
        self._create_standard_fields()
        self._register_routes()

    def _register_routes(self) -> None:
        """Fixed paths before `{id}` ones: the first matching pattern serves a path."""
        routes = [
            ("GET", "/api/v4/account", self._get_account),
            ("GET", "/api/v4/users", self._get_users),
            ("GET", "/api/v4/contacts", self._get_contacts),
            ("PATCH", "/api/v4/contacts", self._patch_contacts),
            ("GET", "/api/v4/contacts/notes", lambda r: self._get_notes("contacts", r)),
            ("POST", "/api/v4/contacts/notes", lambda r: self._post_notes("contacts", r)),
            ("GET", "/api/v4/leads", self._get_leads),
            ("GET", "/api/v4/leads/pipelines", self._get_pipelines),
            ("GET", "/api/v4/leads/loss_reasons", self._get_loss_reasons),
            ("GET", "/api/v4/leads/notes", lambda r: self._get_notes("leads", r)),
            ("POST", "/api/v4/leads/notes", lambda r: self._post_notes("leads", r)),
            ("GET", "/api/v4/companies", self._get_companies),
            ("GET", "/api/v4/events", self._get_events),
            *self._directory_routes(),
            ("GET", "/api/v4/contacts/{id}", self._get_contact),
            ("GET", "/api/v4/leads/{id}", self._get_lead),
            ("GET", "/api/v4/companies/{id}", self._get_company),
        ]
        for method, path, handler in routes:
            self.route(method, path, self._guarded(handler))

    def _directory_routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        """`custom_fields` and `tags` of every entity type."""
        return [
            ("GET", f"/api/v4/{entity}/{kind}", partial(handler, entity))
            for entity in ENTITY_TYPES
            for kind, handler in (
                ("custom_fields", self._get_custom_fields),
                ("tags", self._get_tags),
            )
        ]
