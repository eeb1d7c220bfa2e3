"""Kommo event history (lead_added, lead_status_changed) → DealEvents (pure)."""

from __future__ import annotations

from typing import Any

from kommo_sync.model import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    Catalog,
    DealEvent,
    DealEventKind,
    Lead,
    Person,
)


def lead_status(values: list[dict[str, Any]] | None) -> tuple[int, int] | None:
    """(pipeline_id, status_id) from an event's value_before / value_after."""
    for value in values or []:
        status = value.get("lead_status") if isinstance(value, dict) else None
        if status:
            return int(status.get("pipeline_id") or 0), int(status["id"])
    return None


def event_kind(raw: dict[str, Any]) -> DealEventKind | None:
    if raw.get("type") == "lead_added":
        return DealEventKind.CREATED
    if raw.get("type") != "lead_status_changed":
        return None
    after = lead_status(raw.get("value_after"))
    if after is None:
        return None
    return {WON_STATUS_ID: DealEventKind.WON, LOST_STATUS_ID: DealEventKind.LOST}.get(
        after[1], DealEventKind.STAGE_CHANGED
    )


def deal_event(
    raw: dict[str, Any], lead: Lead, catalog: Catalog, person: Person | None, backfill: bool
) -> DealEvent | None:
    """One DealEvent, with stage names keyed by pipeline; None for events we do not send."""
    kind = event_kind(raw)
    if kind is None:
        return None
    after = lead_status(raw.get("value_after")) or (lead.pipeline_id, lead.status_id)
    before = lead_status(raw.get("value_before"))
    if kind is DealEventKind.CREATED:
        after, before = _created_status(lead, catalog), None
    return DealEvent(
        id=str(raw["id"]),
        kind=kind,
        lead_id=lead.id,
        at=int(raw.get("created_at") or 0),
        deal_name=lead.name,
        deal_amount=lead.price,
        pipeline=catalog.pipeline_name(after[0]),
        stage=catalog.status_name(*after),
        previous_stage=catalog.status_name(*before) if before else None,
        person=person,
        backfill=backfill,
    )


def _created_status(lead: Lead, catalog: Catalog) -> tuple[int, int]:
    """A new lead enters its pipeline's first stage; the event itself names no status."""
    pipeline = catalog.pipelines.get(lead.pipeline_id)
    first = pipeline.first_status_id if pipeline else None
    return lead.pipeline_id, first if first is not None else lead.status_id
