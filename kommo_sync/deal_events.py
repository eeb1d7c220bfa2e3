"""Kommo lead events (a lead added, a lead moved) → DealEvents (pure)."""

from __future__ import annotations

from kommo_sync.model import (
    LOST_STATUS_ID,
    WON_STATUS_ID,
    Catalog,
    DealEvent,
    DealEventKind,
    Lead,
    LeadEvent,
    Person,
)


def event_kind(event: LeadEvent) -> DealEventKind | None:
    if event.type == "lead_added":
        return DealEventKind.CREATED
    if event.type != "lead_status_changed" or event.after is None:
        return None
    return {WON_STATUS_ID: DealEventKind.WON, LOST_STATUS_ID: DealEventKind.LOST}.get(
        event.after[1], DealEventKind.STAGE_CHANGED
    )


def deal_event(
    event: LeadEvent, lead: Lead, catalog: Catalog, person: Person | None, backfill: bool
) -> DealEvent | None:
    """One DealEvent, with stage names keyed by pipeline; None for events we do not send."""
    kind = event_kind(event)
    if kind is None:
        return None
    after = event.after or (lead.pipeline_id, lead.status_id)
    before = event.before
    if kind is DealEventKind.CREATED:
        after, before = _created_status(lead, catalog), None
    return DealEvent(
        id=event.id,
        kind=kind,
        lead_id=lead.id,
        at=event.at,
        deal_name=lead.name,
        deal_amount=lead.price,
        pipeline=catalog.pipeline_name(after[0]),
        stage=catalog.status_name(*after),
        previous_stage=catalog.status_name(*before) if before else None,
        person=person,
        backfill=backfill,
    )


def statuses_known(event: LeadEvent, lead: Lead, catalog: Catalog) -> bool:
    """An event waits when the catalog lacks both the status it moved to and the lead's current
    one (a stale catalog); a status deleted since the event only loses its name."""
    after = event.after or (lead.pipeline_id, lead.status_id)
    return (
        catalog.status(*after) is not None
        or catalog.status(lead.pipeline_id, lead.status_id) is not None
    )


def _created_status(lead: Lead, catalog: Catalog) -> tuple[int, int]:
    """A new lead enters its pipeline's first stage; the event itself names no status."""
    pipeline = catalog.pipelines.get(lead.pipeline_id)
    first = pipeline.first_status_id if pipeline else None
    return lead.pipeline_id, first if first is not None else lead.status_id
