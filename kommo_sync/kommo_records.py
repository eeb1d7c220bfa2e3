"""Kommo JSON → records, pure: contacts, leads, companies, the catalog and events as the sync
needs them, with every custom field's raw values kept for the field map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kommo_sync.model import (
    Catalog,
    Company,
    Contact,
    Lead,
    LeadEvent,
    LifecycleEvent,
    Pipeline,
    Status,
)

TRUE_VALUES = {True, "1", "true", "True", "Y", "y", "yes"}
PARSED_CODES = frozenset({"EMAIL", "PHONE"})  # parsed into Contact.emails and phone


@dataclass(frozen=True)
class FieldMap:
    """Where the configured custom fields live in this account."""

    consent_id: int | None = None
    lead_source_id: int | None = None


def embedded(body: dict[str, Any] | None, key: str) -> list[Any]:
    """A HAL body's `_embedded[key]` list; [] for a 204, a missing key or null."""
    return ((body or {}).get("_embedded") or {}).get(key) or []


def contact_emails(raw: dict[str, Any]) -> set[str]:
    return {str(v).strip().lower() for v in field_values(raw, code="EMAIL") if v}


def parse_catalog(body: dict[str, Any]) -> Catalog:
    pipelines = {}
    for raw in embedded(body, "pipelines"):
        statuses = tuple(
            Status(
                id=int(s["id"]),
                pipeline_id=int(raw["id"]),
                name=s.get("name") or "",
                sort=int(s.get("sort") or 0),
                type=int(s.get("type") or 0),
            )
            for s in embedded(raw, "statuses")
        )
        pipelines[int(raw["id"])] = Pipeline(
            id=int(raw["id"]),
            name=raw.get("name") or "",
            statuses=statuses,
            is_unsorted_on=bool(raw.get("is_unsorted_on", True)),
        )
    return Catalog(pipelines)


def field_values(
    raw: dict[str, Any], *, code: str | None = None, field_id: int | None = None
) -> list[Any]:
    """The values of one custom field of an entity (by field_code or id); [] when absent."""
    for field in raw.get("custom_fields_values") or []:
        if (code and field.get("field_code") == code) or (
            field_id and field.get("field_id") == field_id
        ):
            return [v.get("value") for v in field.get("values") or [] if isinstance(v, dict)]
    return []


def parse_consent(raw: dict[str, Any], fields: FieldMap) -> bool | None:
    """None when consent is not tracked; an absent checkbox value counts as unchecked."""
    if fields.consent_id is None:
        return None
    values = field_values(raw, field_id=fields.consent_id)
    return bool(values) and values[0] in TRUE_VALUES


def parse_contact(raw: dict[str, Any], fields: FieldMap) -> Contact:
    emails = tuple(str(v).strip() for v in field_values(raw, code="EMAIL") if v and str(v).strip())
    phones = [str(v).strip() for v in field_values(raw, code="PHONE") if v and str(v).strip()]
    source = field_values(raw, field_id=fields.lead_source_id) if fields.lead_source_id else []
    companies = embedded(raw, "companies")
    return Contact(
        id=int(raw["id"]),
        updated_at=int(raw.get("updated_at") or 0),
        first_name=(raw.get("first_name") or "").strip(),
        last_name=(raw.get("last_name") or "").strip(),
        emails=emails,
        phone=phones[0] if phones else None,
        company_id=int(companies[0]["id"]) if companies else None,
        lead_source=str(source[0]) if source and source[0] not in (None, "") else None,
        consent=parse_consent(raw, fields),
        created_at=int(raw.get("created_at") or 0),
        responsible_user_id=_optional_id(raw.get("responsible_user_id")),
        tags=tag_names(raw),
        custom=custom_values(raw, skip_codes=PARSED_CODES),
    )


def parse_company(raw: dict[str, Any]) -> Company:
    return Company(
        id=int(raw["id"]),
        updated_at=int(raw.get("updated_at") or 0),
        name=raw.get("name") or "",
        created_at=int(raw.get("created_at") or 0),
        responsible_user_id=_optional_id(raw.get("responsible_user_id")),
        tags=tag_names(raw),
        custom=custom_values(raw),
    )


def tag_names(raw: dict[str, Any]) -> tuple[str, ...]:
    """The entity's Kommo tags (`_embedded.tags[].name`), sorted, without blanks."""
    names = {str(tag.get("name") or "").strip() for tag in embedded(raw, "tags")}
    return tuple(sorted(name for name in names if name))


def custom_values(raw: dict[str, Any], skip_codes: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every custom field's raw `values`, by field id (as text: the mirror's JSON keys), in id
    order so an unchanged entity encodes the same; a field Kommo sends without values is absent
    (cleared)."""
    found: dict[int, Any] = {}
    for entry in raw.get("custom_fields_values") or []:
        if not isinstance(entry, dict) or entry.get("field_code") in skip_codes:
            continue
        field_id, values = entry.get("field_id"), entry.get("values")
        if isinstance(field_id, int) and values:
            found[field_id] = values
    return {str(field_id): found[field_id] for field_id in sorted(found)}


def _optional_id(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value else None


def parse_lead(raw: dict[str, Any]) -> Lead:
    contacts = embedded(raw, "contacts")
    main = next((c for c in contacts if c.get("is_main")), contacts[0] if contacts else None)
    return Lead(
        id=int(raw["id"]),
        updated_at=int(raw.get("updated_at") or 0),
        name=raw.get("name") or "",
        price=raw.get("price") or 0,
        pipeline_id=int(raw.get("pipeline_id") or 0),
        status_id=int(raw.get("status_id") or 0),
        created_at=int(raw.get("created_at") or 0),
        contact_ids=tuple(int(c["id"]) for c in contacts),
        main_contact_id=int(main["id"]) if main else None,
        closed_at=int(raw.get("closed_at") or 0),
        responsible_user_id=_optional_id(raw.get("responsible_user_id")),
        tags=tag_names(raw),
        loss_reason_id=_optional_id(raw.get("loss_reason_id")),
        custom=custom_values(raw),
    )


def parse_lead_event(raw: dict[str, Any]) -> LeadEvent:
    return LeadEvent(
        id=str(raw.get("id")),
        type=str(raw.get("type") or ""),
        lead_id=int(raw.get("entity_id") or 0),
        at=int(raw.get("created_at") or 0),
        before=_lead_status(raw.get("value_before")),
        after=_lead_status(raw.get("value_after")),
    )


def contact_lead_ids(raw: dict[str, Any]) -> list[int]:
    """The ids of the leads a contact read `with=leads` is linked to."""
    return [int(lead["id"]) for lead in embedded(raw, "leads")]


def parse_lifecycle_event(raw: dict[str, Any]) -> LifecycleEvent:
    return LifecycleEvent(
        id=str(raw.get("id")),
        type=str(raw.get("type") or ""),
        entity=str(raw.get("entity_type") or ""),
        entity_id=int(raw.get("entity_id") or 0),
        at=int(raw.get("created_at") or 0),
    )


def _lead_status(values: Any) -> tuple[int, int] | None:
    """(pipeline_id, status_id) from an event's value_before / value_after."""
    for value in values if isinstance(values, list) else []:
        status = value.get("lead_status") if isinstance(value, dict) else None
        if status:
            return int(status.get("pipeline_id") or 0), int(status["id"])
    return None
