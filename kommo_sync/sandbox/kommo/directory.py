"""Kommo's account-level read endpoints: `/api/v4/account`, `/api/v4/users`, each entity type's
`custom_fields` and `tags`, and `/api/v4/leads/loss_reasons`."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.queries import filter_ints, filter_values, page_and_limit
from kommo_sync.sandbox.kommo.records import KommoRecords
from kommo_sync.sandbox.kommo.responses import hal, link
from kommo_sync.sandbox.kommo.rules import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT
from kommo_sync.sandbox.server import Request, Response


class DirectoryEndpoints(KommoRecords):
    """The account, its users, custom fields, tags and loss reasons, read."""

    def _get_account(self, request: Request) -> Response:
        """Top-level settings; `with=datetime_settings` adds `_embedded.datetime_settings`
        (where the account's timezone is: there is no top-level timezone)."""
        body: dict[str, Any] = {
            **self.account,
            "_links": link(self._base(request), "/api/v4/account"),
        }
        if "datetime_settings" in self._with(request):
            body["_embedded"] = {"datetime_settings": self._datetime_settings()}
        return hal(body)

    def _get_users(self, request: Request) -> Response:
        """Paged users; this list also counts them (`_total_items`, `_page_count`)."""
        users = sorted(self.users.values(), key=lambda u: u["id"])
        base = self._base(request)
        response = self._page(
            request,
            "users",
            users,
            lambda u: {**u, "_links": link(base, f"/api/v4/users/{u['id']}")},
        )
        if response.status == 200:
            _, limit = page_and_limit(
                request.query, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, LIST_DEFAULT_LIMIT
            )
            response.body.update(_total_items=len(users), _page_count=-(-len(users) // limit))
        return response

    def _get_custom_fields(self, entity: str, request: Request) -> Response:
        types = set(filter_values(request.query, "type"))
        fields = sorted(
            (f for f in self.field_sets[entity].values() if not types or f["type"] in types),
            key=lambda f: (f["sort"], f["id"]),
        )
        base = self._base(request)
        return self._page(
            request,
            "custom_fields",
            fields,
            lambda f: {**f, "_links": link(base, f"/api/v4/{entity}/custom_fields/{f['id']}")},
        )

    def _get_tags(self, entity: str, request: Request) -> Response:
        """`filter[id]`, `filter[name]` (exact) and `query` (part of the name), paged."""
        ids = set(filter_ints(request.query, "id"))
        name = request.arg("filter[name]")
        needle = self._search_needle(request.query)
        tags = [
            t
            for t in self.tag_directory[entity].values()
            if (not ids or t["id"] in ids)
            and (name is None or t["name"] == name)
            and (needle is None or needle in t["name"].lower())
        ]
        return self._page(request, "tags", tags, dict)

    def _get_loss_reasons(self, request: Request) -> Response:
        """All of them, unpaged like pipelines (`_total_items`, no `_page`); 204 when none."""
        if not self.loss_reasons:
            return Response(204)
        base = self._base(request)
        reasons = sorted(self.loss_reasons.values(), key=lambda r: (r["sort"], r["id"]))
        return hal(
            {
                "_total_items": len(reasons),
                "_links": link(base, "/api/v4/leads/loss_reasons"),
                "_embedded": {"loss_reasons": [self._render_loss_reason(base, r) for r in reasons]},
            }
        )
