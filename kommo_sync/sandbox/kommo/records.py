"""What happens to a Kommo account's records: companies, contacts and leads added and changed,
and the events those changes write."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kommo_sync.sandbox.kommo.account import KommoAccount
from kommo_sync.sandbox.kommo.rules import (
    ACCOUNT_ID,
    CONTACT_CHANGES,
    LOST,
    USER_ID,
    WON,
    event_id,
    stored_values,
)


class KommoRecords(KommoAccount):
    """Companies, contacts, leads and events, changed by tests and by the endpoints."""

    def add_company(self, name: str, *, created_at: int | None = None) -> int:
        with self.lock:
            company_id = next(self._ids["entity"])
            stamp = self._timestamp(created_at)
            self.companies[company_id] = {
                "id": company_id,
                "name": name,
                "responsible_user_id": USER_ID,
                "group_id": 0,
                "created_by": USER_ID,
                "updated_by": USER_ID,
                "created_at": stamp,
                "updated_at": stamp,
                "closest_task_at": None,
                "is_deleted": False,
                "custom_fields_values": None,
                "account_id": ACCOUNT_ID,
            }
            self._touch()
            return company_id

    def add_contact(
        self,
        first_name: str,
        last_name: str = "",
        email: str | None = None,
        phone: str | None = None,
        company_id: int | None = None,
        consent: bool | None = None,
        lead_source: str | None = None,
        extra_emails: Iterable[str] = (),
        *,
        created_at: int | None = None,
        updated_at: int | None = None,
    ) -> int:
        """Create a contact; returns its id."""
        with self.lock:
            contact_id = next(self._ids["entity"])
            stamp = self._timestamp(created_at)
            contact = {
                "id": contact_id,
                "name": "",
                "first_name": "",
                "last_name": "",
                "responsible_user_id": USER_ID,
                "group_id": 0,
                "created_by": USER_ID,
                "updated_by": USER_ID,
                "created_at": stamp,
                "updated_at": stamp if updated_at is None else int(updated_at),
                "closest_task_at": None,
                "is_deleted": False,
                "is_unsorted": False,
                "custom_fields_values": None,
                "account_id": ACCOUNT_ID,
                "company_id": None,
                "lead_ids": [],
            }
            self._apply_contact_changes(
                contact,
                {
                    "first_name": first_name,
                    "last_name": last_name,
                    "email": email,
                    "phone": phone,
                    "company_id": company_id,
                    "consent": consent,
                    "lead_source": lead_source,
                    "extra_emails": tuple(extra_emails),
                },
            )
            self.contacts[contact_id] = contact
            self._index_contact(contact)
            self._touch()
            return contact_id

    def update_contact(self, contact_id: int, *, at: int | None = None, **changes: Any) -> None:
        """Change a contact with add_contact's keyword names; bumps updated_at."""
        with self.lock:
            contact = self.contacts[contact_id]
            self._apply_contact_changes(contact, changes)
            contact["updated_at"] = self._timestamp(at)
            self._index_contact(contact)
            self._touch()

    def _apply_contact_changes(self, contact: dict[str, Any], changes: dict[str, Any]) -> None:
        unknown = set(changes) - CONTACT_CHANGES
        if unknown:
            raise TypeError(f"unknown contact changes: {sorted(unknown)}")
        if "first_name" in changes or "last_name" in changes:
            self._rename(
                contact,
                changes.get("first_name", contact["first_name"]),
                changes.get("last_name", contact["last_name"]),
            )
        if "company_id" in changes:
            self._link_company(contact, changes["company_id"])
        self._set_fields(contact, self._profile_field_updates(contact, changes))

    def _profile_field_updates(
        self, contact: dict[str, Any], changes: dict[str, Any]
    ) -> dict[int, list | None]:
        """New custom field values for the profile keys present in `changes`."""
        updates: dict[int, list | None] = {}
        if "email" in changes or "extra_emails" in changes:
            updates[self.email_field_id] = self._email_values(contact, changes)
        if "phone" in changes:
            phone = changes["phone"]
            updates[self.phone_field_id] = (
                [self._multitext(contact["id"], self.phone_field_id, phone, "WORK")]
                if phone
                else None
            )
        if "consent" in changes:
            updates[self.consent_field_id] = [{"value": True}] if changes["consent"] else None
        if "lead_source" in changes:
            source = changes["lead_source"]
            updates[self.lead_source_field_id] = [{"value": source}] if source else None
        return updates

    @staticmethod
    def _rename(contact: dict[str, Any], first_name: str, last_name: str) -> None:
        contact.update(
            first_name=first_name, last_name=last_name, name=f"{first_name} {last_name}".strip()
        )

    def _link_company(self, contact: dict[str, Any], company_id: int | None) -> None:
        if company_id is not None and company_id not in self.companies:
            raise KeyError(f"no company {company_id}")
        contact["company_id"] = company_id

    def _email_values(self, contact: dict[str, Any], changes: dict[str, Any]) -> list | None:
        """EMAIL holds the main address (WORK) then any extra ones (PRIV)."""
        current = stored_values(contact, self.email_field_id)
        primary = changes["email"] if "email" in changes else (current[:1] or [None])[0]
        extras = list(changes["extra_emails"]) if "extra_emails" in changes else current[1:]
        field_id, contact_id = self.email_field_id, contact["id"]
        values = ([self._multitext(contact_id, field_id, primary, "WORK")] if primary else []) + [
            self._multitext(contact_id, field_id, extra, "PRIV") for extra in extras
        ]
        return values or None

    def _index_contact(self, contact: dict[str, Any]) -> None:
        """Lower-cased name and text values, for `query=` substring search."""
        texts = [contact["name"]] + [
            value["value"]
            for entry in contact["custom_fields_values"] or []
            for value in entry["values"]
            if isinstance(value.get("value"), str)
        ]
        self._search_text[contact["id"]] = "\n".join(texts).lower()

    def contact(self, contact_id: int) -> dict[str, Any]:
        """The stored contact: API fields plus internal `company_id` and `lead_ids`."""
        with self.lock:
            return self.contacts[contact_id]

    def add_lead(
        self,
        name: str,
        price: int,
        pipeline_id: int,
        status_id: int | None = None,
        contact_ids: Iterable[int] = (),
        main_contact_id: int | None = None,
        *,
        created_at: int | None = None,
    ) -> int:
        """Create a lead linked to contacts (the main one first); records `lead_added`."""
        with self.lock:
            status_id = self._statuses[pipeline_id][0]["id"] if status_id is None else status_id
            self._require_status(pipeline_id, status_id)
            linked = self._lead_contacts(contact_ids, main_contact_id)
            lead_id, stamp = next(self._ids["lead"]), self._timestamp(created_at)
            main = linked[0] if linked else None
            self.leads[lead_id] = {
                "id": lead_id,
                "name": name,
                "price": price,
                "responsible_user_id": USER_ID,
                "group_id": 0,
                "status_id": status_id,
                "pipeline_id": pipeline_id,
                "loss_reason_id": None,
                "created_by": USER_ID,
                "updated_by": USER_ID,
                "created_at": stamp,
                "updated_at": stamp,
                "closed_at": stamp if status_id in (WON, LOST) else None,
                "closest_task_at": None,
                "is_deleted": False,
                "custom_fields_values": None,
                "score": None,
                "account_id": ACCOUNT_ID,
                "labor_cost": None,
                "is_price_modified_by_robot": False,
                "contact_ids": linked,
                "main_contact_id": main,
                "company_id": self.contacts[main]["company_id"] if main else None,
            }
            for contact_id in linked:
                self.contacts[contact_id]["lead_ids"].append(lead_id)
            self._record_event(
                "lead_added", lead_id, stamp, [{"note": {"id": next(self._ids["event_note"])}}], []
            )
            return lead_id

    def _lead_contacts(self, contact_ids: Iterable[int], main_contact_id: int | None) -> list[int]:
        linked = list(dict.fromkeys(contact_ids))
        if main_contact_id is not None:
            linked = [main_contact_id] + [c for c in linked if c != main_contact_id]
        missing = [c for c in linked if c not in self.contacts]
        if missing:
            raise KeyError(f"no contacts {missing}")
        return linked

    def move_lead(
        self, lead_id: int, status_id: int, pipeline_id: int | None = None, *, at: int | None = None
    ) -> None:
        """Change a lead's stage; records `lead_status_changed`, sets closed_at on 142/143."""
        with self.lock:
            lead = self.leads[lead_id]
            pipeline_id = lead["pipeline_id"] if pipeline_id is None else pipeline_id
            self._require_status(pipeline_id, status_id)
            if (lead["pipeline_id"], lead["status_id"]) == (pipeline_id, status_id):
                return
            stamp = self._timestamp(at)
            before = {"lead_status": {"id": lead["status_id"], "pipeline_id": lead["pipeline_id"]}}
            lead.update(
                status_id=status_id,
                pipeline_id=pipeline_id,
                updated_at=stamp,
                closed_at=stamp if status_id in (WON, LOST) else None,
            )
            after = {"lead_status": {"id": status_id, "pipeline_id": pipeline_id}}
            self._record_event("lead_status_changed", lead_id, stamp, [after], [before])

    def update_lead(self, lead_id: int, *, at: int | None = None, **changes: Any) -> None:
        """Change a lead's name and/or price; bumps updated_at."""
        unknown = set(changes) - {"name", "price"}
        if unknown:
            raise TypeError(f"unknown lead changes: {sorted(unknown)}")
        with self.lock:
            self.leads[lead_id].update(changes, updated_at=self._timestamp(at))
            self._touch()

    def lead(self, lead_id: int) -> dict[str, Any]:
        """The stored lead: API fields plus internal contact_ids, main_contact_id, company_id."""
        with self.lock:
            return self.leads[lead_id]

    def _record_event(
        self,
        kind: str,
        entity_id: int,
        stamp: int,
        after: list,
        before: list,
        entity_type: str = "lead",
    ) -> None:
        if self.events and stamp < self.events[-1]["created_at"]:
            self._events_sorted = False
        self.events.append(
            {
                "id": event_id(stamp, next(self._ids["event"])),
                "type": kind,
                "entity_id": entity_id,
                "entity_type": entity_type,
                "created_by": USER_ID,
                "created_at": stamp,
                "value_after": after,
                "value_before": before,
                "account_id": ACCOUNT_ID,
            }
        )
        self._touch()

    def _sorted_events(self) -> list[dict[str, Any]]:
        if not self._events_sorted:
            self.events.sort(key=lambda e: (e["created_at"], e["id"]))
            self._events_sorted = True
        return self.events
