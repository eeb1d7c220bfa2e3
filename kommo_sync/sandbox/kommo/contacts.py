"""Kommo's contact endpoints: `GET /api/v4/contacts[/{id}]` and the batch `PATCH`."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.queries import write_batch
from kommo_sync.sandbox.kommo.records import KommoRecords
from kommo_sync.sandbox.kommo.responses import (
    hal,
    link,
    reference,
    validation_error,
    validation_failed,
)
from kommo_sync.sandbox.kommo.rules import CONTACT_FIELDS, USER_ID, is_checked
from kommo_sync.sandbox.server import Request, Response


class ContactEndpoints(KommoRecords):
    """Contacts read (filtered, searched, paged) and patched in batches."""

    def _get_contacts(self, request: Request) -> Response:
        ids = self._cached("contacts", request, lambda: self._select_contacts(request.query))
        base, with_leads = self._base(request), "leads" in self._with(request)
        return self._page(
            request,
            "contacts",
            ids,
            lambda i: self._render_contact(base, self.contacts[i], with_leads),
        )

    def _select_contacts(self, query: dict[str, list[str]]) -> list[int]:
        needle = self._search_needle(query)
        keep = (lambda c: needle in self._search_text[c["id"]]) if needle else None
        return self._select(self.contacts, query, ("updated_at", "created_at"), keep)

    def _get_contact(self, request: Request) -> Response:
        contact_id = request.params["id"]
        if not contact_id.isdigit():
            return self.not_found(request)
        contact = self.contacts.get(int(contact_id))
        if contact is None:
            return Response(204)
        return hal(
            self._render_contact(self._base(request), contact, "leads" in self._with(request))
        )

    def _render_contact(
        self, base: str, contact: dict[str, Any], with_leads: bool
    ) -> dict[str, Any]:
        body = {key: contact[key] for key in CONTACT_FIELDS}
        body["_links"] = link(base, f"/api/v4/contacts/{contact['id']}")
        company_id = contact["company_id"]
        embedded: dict[str, Any] = {
            "tags": self._embedded_tags("contacts", contact["id"]),
            "companies": [reference(base, "companies", company_id)] if company_id else [],
        }
        if with_leads:
            embedded["leads"] = [reference(base, "leads", i) for i in contact["lead_ids"]]
        body["_embedded"] = embedded
        return body

    def _patch_contacts(self, request: Request) -> Response:
        items = write_batch(request)
        errors = [
            e for e in (self._check_contact_patch(n, item) for n, item in enumerate(items)) if e
        ]
        if errors:
            return validation_failed(errors)
        stamp, base = int(self.clock.now()), self._base(request)
        updated = [self._apply_contact_patch(base, n, item, stamp) for n, item in enumerate(items)]
        self._touch()
        return hal({"_links": link(base, "/api/v4/contacts"), "_embedded": {"contacts": updated}})

    def _check_contact_patch(self, index: int, item: Any) -> dict[str, Any] | None:
        if not isinstance(item, dict):
            errors = [validation_error("InvalidType", "", "This value should be of type object.")]
        else:
            errors = self._contact_patch_errors(item)
        return {"request_id": str(index), "errors": errors} if errors else None

    def _contact_patch_errors(self, item: dict[str, Any]) -> list[dict[str, str]]:
        errors = []
        contact_id = item.get("id")
        if not isinstance(contact_id, int) or contact_id not in self.contacts:
            errors.append(validation_error("NotFound", "id", "Entity not found"))
        entries = item.get("custom_fields_values") or []
        if not isinstance(entries, list):
            return errors + [
                validation_error(
                    "InvalidType", "custom_fields_values", "This value should be of type array."
                )
            ]
        for n, entry in enumerate(entries):
            errors.extend(self._field_entry_errors(n, entry))
        return errors

    def _field_entry_errors(self, index: int, entry: Any) -> list[dict[str, str]]:
        path = f"custom_fields_values.{index}"
        if not isinstance(entry, dict) or self._field_by_ref(entry) is None:
            return [
                validation_error(
                    "NotSupportedChoice",
                    f"{path}.field_id",
                    "The value you selected is not a valid choice.",
                )
            ]
        values = entry.get("values")
        if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
            return [
                validation_error(
                    "InvalidType", f"{path}.values", "This value should be of type array."
                )
            ]
        return []

    def _apply_contact_patch(
        self, base: str, index: int, item: dict[str, Any], stamp: int
    ) -> dict[str, Any]:
        contact = self.contacts[item["id"]]
        if "first_name" in item or "last_name" in item:
            self._rename(
                contact,
                item.get("first_name", contact["first_name"]),
                item.get("last_name", contact["last_name"]),
            )
        elif "name" in item:
            contact["name"] = item["name"]
        updates = {}
        for entry in item.get("custom_fields_values") or []:
            field = self._field_by_ref(entry)
            assert field is not None, "refused by _contact_patch_errors before any write"
            updates[field["id"]] = self._values_from_api(contact["id"], field, entry["values"])
        self._set_fields(contact, updates)
        contact.update(updated_at=stamp, updated_by=USER_ID)
        self._index_contact(contact)
        return {
            "id": contact["id"],
            "updated_at": stamp,
            "request_id": str(index),
            "_links": link(base, f"/api/v4/contacts/{contact['id']}"),
        }

    def _values_from_api(
        self, contact_id: int, field: dict[str, Any], values: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """Stored values for a PATCHed field; an unchecked checkbox removes the field."""
        if field["type"] == "checkbox":
            return [{"value": True}] if values and is_checked(values[0].get("value")) else None
        present = [v for v in values if v.get("value") not in (None, "")]
        if field["type"] == "multitext":
            return [
                self._multitext(
                    contact_id,
                    field["id"],
                    v["value"],
                    v.get("enum_code") or v.get("enum") or "WORK",
                )
                for v in present
            ] or None
        return [dict(v) for v in present] or None
