"""Stage rules: a contact's pipeline stage from all its leads, by precedence (pure).

won if any lead is won; else in progress if any open lead is past its pipeline's first stage;
else new if a lead sits in the first stage or there is no lead; else (all lost) lost. So editing
an old deal never flips a customer back.
"""

from __future__ import annotations

from collections.abc import Iterable

from kommo_sync.model import LOST_STATUS_ID, WON_STATUS_ID, Catalog, Deal, Lead, Stage


def lead_stage(lead: Lead, catalog: Catalog) -> Stage:
    """The stage one lead stands for."""
    if lead.status_id == WON_STATUS_ID:
        return Stage.WON
    if lead.status_id == LOST_STATUS_ID:
        return Stage.LOST
    if catalog.is_first_stage(lead.pipeline_id, lead.status_id):
        return Stage.NEW
    return Stage.IN_PROGRESS


def contact_stage(leads: Iterable[Lead], catalog: Catalog) -> tuple[Stage, Lead | None]:
    """The contact's stage and its deciding lead (None when the contact has no lead).

    Among leads of the winning stage the most recently updated one decides, so the deal shown
    is the one the sales team touched last.
    """
    best: tuple[int, int, int] | None = None
    deciding: tuple[Stage, Lead | None] = (Stage.NEW, None)
    for lead in leads:
        stage = lead_stage(lead, catalog)
        key = (stage.rank, lead.updated_at, lead.id)
        if best is None or key > best:
            best, deciding = key, (stage, lead)
    return deciding


def deal_of(lead: Lead | None, catalog: Catalog) -> Deal | None:
    if lead is None:
        return None
    return Deal(
        id=lead.id,
        name=lead.name,
        amount=lead.price,
        status_name=catalog.status_name(lead.pipeline_id, lead.status_id),
        pipeline_name=catalog.pipeline_name(lead.pipeline_id),
    )
