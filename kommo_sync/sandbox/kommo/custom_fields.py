"""A Kommo account's custom fields: one directory per entity type (contacts, leads, companies),
field ids shared across them, enums (choices) that can grow later, and the
`custom_fields_values` entries a record carries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kommo_sync.sandbox.kommo.base import KommoBase
from kommo_sync.sandbox.kommo.rules import (
    ACCOUNT_ID,
    DUMMY_FIELD_COUNT,
    DUMMY_FIELD_NAMES,
    DUMMY_FIELD_TYPES,
    EMAIL_ENUMS,
    ENTITY_TYPES,
    ENUM_FIELD_TYPES,
    FIELD_TYPES,
    PHONE_ENUMS,
    is_checked,
    stored_values,
)


class KommoFields(KommoBase):
    """Custom field definitions per entity type, seeded by tests and read by the endpoints."""

    def _init_store(self) -> None:
        super()._init_store()
        self.field_sets: dict[str, dict[int, dict[str, Any]]] = {e: {} for e in ENTITY_TYPES}
        # The contact fields under their historical name (tests and benchmarks read it).
        self.custom_fields = self.field_sets["contacts"]

    def _create_standard_fields(self) -> None:
        """PHONE/EMAIL, a decoy checkbox, enough dummies for two pages, then consent and source."""
        self.add_custom_field("Position", "text", code="POSITION", predefined=True)
        self.phone_field_id = self.add_custom_field(
            "Phone", "multitext", code="PHONE", enum_values=PHONE_ENUMS, predefined=True
        )
        self.email_field_id = self.add_custom_field(
            "Email", "multitext", code="EMAIL", enum_values=EMAIL_ENUMS, predefined=True
        )
        self.add_checkbox_field("Do not call")
        for index in range(DUMMY_FIELD_COUNT):
            self._add_dummy_field(index)
        self.consent_field_id = self.add_checkbox_field("Email consent")
        self.lead_source_field_id = self.add_custom_field("Lead source", "text")

    def _add_dummy_field(self, index: int) -> None:
        kind = DUMMY_FIELD_TYPES[index % len(DUMMY_FIELD_TYPES)]
        name = (
            DUMMY_FIELD_NAMES[index]
            if index < len(DUMMY_FIELD_NAMES)
            else f"Custom field {index + 1}"
        )
        options = (
            ("Option A", "Option B", "Option C")
            if kind in ("select", "multiselect", "radiobutton")
            else ()
        )
        self.add_custom_field(name, kind, enum_values=options)

    def add_custom_field(
        self,
        name: str,
        field_type: str,
        code: str | None = None,
        enum_values: Iterable[str] = (),
        predefined: bool = False,
        *,
        entity: str = "contacts",
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Create a custom field of `entity` ("contacts", "leads" or "companies"); returns its id.

        `enum_values` are the choices of an enum type (select, multiselect, radiobutton,
        multitext, smart_address, legal_entity, category); `extra` sets further definition keys
        as Kommo names them (`nested`, `chained_lists`, `currency`, or `enums` with fixed ids).
        """
        choices = list(enum_values)
        self._check_field_type(field_type, choices)
        with self.lock:
            fields = self._field_set(entity)
            field_id = next(self._ids["field"])
            enums = [
                self._new_enum(field_id, value, 2 * (n + 1)) for n, value in enumerate(choices)
            ]
            definition = self._field_definition(field_id, name, field_type, code, predefined)
            definition.update(sort=len(fields) + 1, enums=enums or None, entity_type=entity)
            fields[field_id] = {**definition, **(extra or {})}
            self._touch()
            return field_id

    @staticmethod
    def _check_field_type(field_type: str, choices: list[str]) -> None:
        if field_type not in FIELD_TYPES:
            raise ValueError(f"Kommo has no custom field type {field_type!r}")
        if choices and field_type not in ENUM_FIELD_TYPES:
            raise ValueError(f"a {field_type} field has no enums")

    @staticmethod
    def _field_definition(
        field_id: int,
        name: str,
        field_type: str,
        code: str | None,
        predefined: bool,
    ) -> dict[str, Any]:
        """The definition in Kommo's key order; sort, enums and entity_type are filled in after."""
        return {
            "id": field_id,
            "name": name,
            "type": field_type,
            "account_id": ACCOUNT_ID,
            "code": code,
            "sort": 0,
            "is_api_only": False,
            "enums": None,
            "group_id": None,
            "required_statuses": [],
            "is_deletable": not predefined,
            "is_predefined": predefined,
            "is_visible": True,
            "is_required": False,
            "entity_type": "contacts",
            "tracking_callback": None,
            "remind": None,
            "triggers": [],
            "currency": None,
            "hidden_statuses": [],
            "chained_lists": None,
        }

    def _new_enum(self, field_id: int, value: str, sort: int) -> dict[str, Any]:
        enum_id = next(self._ids["enum"])
        self._enum_ids[(field_id, value)] = enum_id
        return {"id": enum_id, "value": value, "sort": sort}

    def add_checkbox_field(self, name: str, *, entity: str = "contacts") -> int:
        return self.add_custom_field(name, "checkbox", entity=entity)

    def add_enum(self, field_id: int, value: str) -> int:
        """A choice added to an existing enum field (as a Kommo admin does); returns its id."""
        with self.lock:
            field = self.field(field_id)
            if field["type"] not in ENUM_FIELD_TYPES:
                raise ValueError(f"a {field['type']} field has no enums")
            enums = field["enums"] or []
            enum = self._new_enum(field_id, value, max((e["sort"] for e in enums), default=0) + 2)
            field["enums"] = [*enums, enum]
            self._touch()
            return int(enum["id"])

    def field(self, field_id: int) -> dict[str, Any]:
        """A field definition of any entity type, by its id (KeyError when there is none)."""
        with self.lock:
            for fields in self.field_sets.values():
                if field_id in fields:
                    return fields[field_id]
            raise KeyError(f"no custom field {field_id}")

    def _field_set(self, entity: str) -> dict[int, dict[str, Any]]:
        if entity not in self.field_sets:
            raise ValueError(f"Kommo has no custom fields for {entity!r}")
        return self.field_sets[entity]

    def _field_by_ref(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The contact field an API value entry addresses by `field_id` or `field_code`."""
        field_id = entry.get("field_id")
        if isinstance(field_id, int) and not isinstance(field_id, bool):
            return self.custom_fields.get(field_id)
        code = entry.get("field_code")
        return next((f for f in self.custom_fields.values() if code and f["code"] == code), None)

    def _multitext(self, contact_id: int, field_id: int, value: str, code: str) -> dict[str, Any]:
        """A multitext value; odd contact ids use the legacy `enum` key instead of `enum_code`."""
        key = "enum" if contact_id % 2 else "enum_code"
        return {"value": value, "enum_id": self._enum_ids.get((field_id, code)), key: code}

    def _set_fields(
        self,
        record: dict[str, Any],
        updates: Mapping[int, list[dict[str, Any]] | None],
        entity: str = "contacts",
    ) -> None:
        """Replace (never mutate) a record's value list; an emptied field is dropped entirely,
        and a record left with none holds `null`, as Kommo serves it."""
        fields = self._field_set(entity)
        entries = [e for e in record["custom_fields_values"] or [] if e["field_id"] not in updates]
        for field_id, values in updates.items():
            if values:
                field = fields[field_id]
                entries.append(
                    {
                        "field_id": field_id,
                        "field_name": field["name"],
                        "field_code": field["code"],
                        "field_type": field["type"],
                        "values": values,
                    }
                )
        entries.sort(key=lambda e: e["field_id"])
        record["custom_fields_values"] = entries or None

    def field_texts(self, contact_id: int, field_id: int) -> list[Any]:
        """The raw `value`s a contact holds for one field ([] when the field is absent)."""
        with self.lock:
            return stored_values(self.contacts[contact_id], field_id)

    def consent(self, contact_id: int) -> bool:
        return any(is_checked(v) for v in self.field_texts(contact_id, self.consent_field_id))
