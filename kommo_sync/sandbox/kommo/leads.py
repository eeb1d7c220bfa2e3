"""Kommo's read endpoints for leads, pipelines and events."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.queries import (
    filter_ints,
    filter_values,
    range_filter,
    to_int,
    within,
)
from kommo_sync.sandbox.kommo.records import KommoRecords
from kommo_sync.sandbox.kommo.responses import hal, link, reference
from kommo_sync.sandbox.kommo.rules import EVENTS_LIMIT, LEAD_FIELDS, STATUSES_KEY
from kommo_sync.sandbox.server import Request, Response


class LeadEndpoints(KommoRecords):
    """Leads, pipelines and events, read."""

    def _get_leads(self, request: Request) -> Response:
        if "only_deleted" in self._with(request):
            return self._get_deleted_leads(request)
        ids = self._cached("leads", request, lambda: self._select_leads(request.query))
        base, wanted = self._base(request), self._with(request)
        return self._page(
            request, "leads", ids, lambda i: self._render_lead(base, self.leads[i], wanted)
        )

    def _select_leads(self, query: dict[str, list[str]]) -> list[int]:
        pipelines = set(filter_ints(query, "pipeline_id"))
        statuses = self._status_filter(query)
        needle = self._search_needle(query)

        def keep(lead: dict[str, Any]) -> bool:
            return (
                (not pipelines or lead["pipeline_id"] in pipelines)
                and (not statuses or (lead["pipeline_id"], lead["status_id"]) in statuses)
                and (needle is None or needle in lead["name"].lower())
            )

        return self._select(self.leads, query, ("updated_at", "created_at", "closed_at"), keep)

    def _get_deleted_leads(self, request: Request) -> Response:
        """`with=only_deleted`: the trashed leads, each with its id, its time and is_deleted."""
        ids = self._cached(
            "deleted_leads", request, lambda: self._select(self.deleted_leads, request.query, ())
        )
        base = self._base(request)
        return self._page(
            request, "leads", ids, lambda i: self._render_deleted_lead(base, self.deleted_leads[i])
        )

    @staticmethod
    def _render_deleted_lead(base: str, lead: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": lead["id"],
            "updated_at": lead["updated_at"],
            "is_deleted": True,
            "_links": link(base, f"/api/v4/leads/{lead['id']}"),
        }

    @staticmethod
    def _status_filter(query: dict[str, list[str]]) -> set[tuple[int, int]]:
        """`filter[statuses][n][pipeline_id]` + `[status_id]` pairs."""
        pairs: dict[str, dict[str, int]] = {}
        for key, values in query.items():
            match = STATUSES_KEY.match(key)
            if match:
                pairs.setdefault(match[1], {})[match[2]] = to_int(values[0], key)
        return {
            (p["pipeline_id"], p["status_id"])
            for p in pairs.values()
            if "pipeline_id" in p and "status_id" in p
        }

    def _get_lead(self, request: Request) -> Response:
        lead_id = request.params["id"]
        if not lead_id.isdigit():
            return self.not_found(request)
        lead = self.leads.get(int(lead_id))
        if lead is None:
            return Response(204)
        return hal(self._render_lead(self._base(request), lead, self._with(request)))

    def _render_lead(self, base: str, lead: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
        body = {key: lead[key] for key in LEAD_FIELDS}
        body["_links"] = link(base, f"/api/v4/leads/{lead['id']}")
        company_id = lead["company_id"]
        embedded: dict[str, Any] = {
            "tags": self._embedded_tags("leads", lead["id"]),
            "companies": [reference(base, "companies", company_id)] if company_id else [],
        }
        reason = self.loss_reasons.get(lead["loss_reason_id"])
        if "loss_reason" in wanted and reason:
            embedded["loss_reason"] = [self._render_loss_reason(base, reason)]
        if "contacts" in wanted:
            embedded["contacts"] = [
                {
                    **reference(base, "contacts", contact_id),
                    "is_main": contact_id == lead["main_contact_id"],
                }
                for contact_id in lead["contact_ids"]
            ]
        body["_embedded"] = embedded
        return body

    def _get_pipelines(self, request: Request) -> Response:
        if self.pipelines_answer == "empty":
            return hal({"_embedded": {"pipelines": []}})
        if self.pipelines_answer == "no_content" or not self.pipelines:
            return Response(204)
        base = self._base(request)
        return hal(
            {
                "_total_items": len(self.pipelines),
                "_links": link(base, "/api/v4/leads/pipelines"),
                "_embedded": {
                    "pipelines": [self._render_pipeline(base, p) for p in self.pipelines.values()]
                },
            }
        )

    def _render_pipeline(self, base: str, pipeline: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v4/leads/pipelines/{pipeline['id']}"
        statuses = [
            {**status, "_links": link(base, f"{path}/statuses/{status['id']}")}
            for status in self._statuses[pipeline["id"]]
        ]
        return {**pipeline, "_links": link(base, path), "_embedded": {"statuses": statuses}}

    def _get_events(self, request: Request) -> Response:
        events = self._cached("events", request, lambda: self._select_events(request.query))
        base = self._base(request)
        return self._page(
            request,
            "events",
            events,
            lambda e: self._render_event(base, e),
            EVENTS_LIMIT,
            EVENTS_LIMIT,
            EVENTS_LIMIT,
        )

    def _select_events(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        types = set(filter_values(query, "type"))
        entities = set(filter_values(query, "entity"))
        entity_ids = set(filter_ints(query, "entity_id"))
        ids = set(filter_values(query, "id"))
        low, high = range_filter(query, "created_at")
        return [
            e
            for e in self._sorted_events()
            if (not types or e["type"] in types)
            and (not entities or e["entity_type"] in entities)
            and (not entity_ids or e["entity_id"] in entity_ids)
            and (not ids or e["id"] in ids)
            and (low is None and high is None or within(e["created_at"], low, high))
        ]

    @staticmethod
    def _render_event(base: str, event: dict[str, Any]) -> dict[str, Any]:
        path = "contacts" if event["entity_type"] == "contact" else "leads"
        return {
            **event,
            "_links": link(base, f"/api/v4/events/{event['id']}"),
            "_embedded": {"entity": reference(base, path, event["entity_id"])},
        }
