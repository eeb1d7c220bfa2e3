"""A Kommo account's catalog: custom fields (with their enums) and pipelines with their statuses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kommo_sync.sandbox.kommo.base import KommoBase
from kommo_sync.sandbox.kommo.rules import (
    ACCOUNT_ID,
    DUMMY_FIELD_COUNT,
    DUMMY_FIELD_NAMES,
    DUMMY_FIELD_TYPES,
    EMAIL_ENUMS,
    LOST,
    PHONE_ENUMS,
    STATUS_COLORS,
    WON,
    is_checked,
    stored_values,
)


class KommoCatalog(KommoBase):
    """Custom fields and pipelines, seeded by tests and read by the endpoints."""

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
    ) -> int:
        """Create a contact custom field; returns its id."""
        with self.lock:
            field_id = next(self._ids["field"])
            enums: list[dict[str, Any]] = [
                {"id": next(self._ids["enum"]), "value": value, "sort": 2 * (n + 1)}
                for n, value in enumerate(enum_values)
            ]
            self._enum_ids.update({(field_id, e["value"]): e["id"] for e in enums})
            self.custom_fields[field_id] = {
                "id": field_id,
                "name": name,
                "type": field_type,
                "account_id": ACCOUNT_ID,
                "code": code,
                "sort": len(self.custom_fields) + 1,
                "is_api_only": False,
                "enums": enums or None,
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
            self._touch()
            return field_id

    def add_checkbox_field(self, name: str) -> int:
        return self.add_custom_field(name, "checkbox")

    def _field_by_ref(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The field an API value entry addresses by `field_id` or `field_code`."""
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
        self, record: dict[str, Any], updates: dict[int, list[dict[str, Any]] | None]
    ) -> None:
        """Replace (never mutate) a record's value list; an emptied field is dropped entirely."""
        entries = [e for e in record["custom_fields_values"] or [] if e["field_id"] not in updates]
        for field_id, values in updates.items():
            if values:
                field = self.custom_fields[field_id]
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

    def add_pipeline(
        self, name: str, stages: list[str], unsorted: bool = True, is_main: bool = False
    ) -> int:
        """A pipeline with [Incoming leads], the stages, then 142 won and 143 lost."""
        with self.lock:
            pipeline_id = next(self._ids["pipeline"])
            if is_main:
                for pipeline in self.pipelines.values():
                    pipeline["is_main"] = False
            self.pipelines[pipeline_id] = {
                "id": pipeline_id,
                "name": name,
                "sort": len(self.pipelines) + 1,
                "is_main": is_main,
                "is_unsorted_on": unsorted,
                "is_archive": False,
                "account_id": ACCOUNT_ID,
            }
            self._statuses[pipeline_id] = self._build_statuses(pipeline_id, stages, unsorted)
            self._status_ids[pipeline_id] = {s["id"] for s in self._statuses[pipeline_id]}
            self._touch()
            return pipeline_id

    def _build_statuses(
        self, pipeline_id: int, stages: list[str], unsorted: bool
    ) -> list[dict[str, Any]]:
        specs = [("Incoming leads", 1, "#c1c1c1", False)] if unsorted else []
        specs += [
            (stage, 0, STATUS_COLORS[n % len(STATUS_COLORS)], True)
            for n, stage in enumerate(stages)
        ]
        statuses = [
            self._status(
                next(self._ids["status"]), pipeline_id, name, 10 * (n + 1), kind, color, editable
            )
            for n, (name, kind, color, editable) in enumerate(specs)
        ]
        statuses.append(self._status(WON, pipeline_id, "Closed - won", 10000, 0, "#CCFF66", False))
        statuses.append(
            self._status(LOST, pipeline_id, "Closed - lost", 11000, 0, "#D5D8DB", False)
        )
        return statuses

    @staticmethod
    def _status(
        status_id: int,
        pipeline_id: int,
        name: str,
        sort: int,
        kind: int,
        color: str,
        editable: bool,
    ) -> dict[str, Any]:
        return {
            "id": status_id,
            "name": name,
            "sort": sort,
            "is_editable": editable,
            "pipeline_id": pipeline_id,
            "color": color,
            "type": kind,
            "account_id": ACCOUNT_ID,
        }

    def statuses(self, pipeline_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._statuses[pipeline_id])

    def _require_status(self, pipeline_id: int, status_id: int) -> None:
        if status_id not in self._status_ids[pipeline_id]:
            raise ValueError(f"status {status_id} is not in pipeline {pipeline_id}")
