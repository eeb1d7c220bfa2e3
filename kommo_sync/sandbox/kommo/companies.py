"""Kommo's company endpoints: `GET /api/v4/companies` (window, order, ids, search, paging, the
same query code as contacts and leads) and `GET /api/v4/companies/{id}`."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.records import KommoRecords
from kommo_sync.sandbox.kommo.responses import hal, link
from kommo_sync.sandbox.server import Request, Response


class CompanyEndpoints(KommoRecords):
    """Companies read, with their custom field values and tags."""

    def _get_companies(self, request: Request) -> Response:
        ids = self._cached("companies", request, lambda: self._select_companies(request.query))
        base = self._base(request)
        return self._page(
            request, "companies", ids, lambda i: self._render_company(base, self.companies[i])
        )

    def _select_companies(self, query: dict[str, list[str]]) -> list[int]:
        needle = self._search_needle(query)
        keep = (lambda c: needle in c["name"].lower()) if needle else None
        return self._select(self.companies, query, ("updated_at", "created_at"), keep)

    def _get_company(self, request: Request) -> Response:
        company_id = request.params["id"]
        if not company_id.isdigit():
            return self.not_found(request)
        company = self.companies.get(int(company_id))
        if company is None:
            return Response(204)
        return hal(self._render_company(self._base(request), company))

    def _render_company(self, base: str, company: dict[str, Any]) -> dict[str, Any]:
        return {
            **company,
            "_links": link(base, f"/api/v4/companies/{company['id']}"),
            "_embedded": {"tags": self._embedded_tags("companies", company["id"])},
        }
