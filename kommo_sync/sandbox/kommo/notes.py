"""Kommo's note endpoints: notes written in batches on contacts and leads, and read back."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.queries import (
    filter_ints,
    filter_values,
    range_filter,
    within,
    write_batch,
)
from kommo_sync.sandbox.kommo.records import KommoRecords
from kommo_sync.sandbox.kommo.responses import hal, link, validation_error, validation_failed
from kommo_sync.sandbox.kommo.rules import ACCOUNT_ID, NOTE_TYPES, USER_ID
from kommo_sync.sandbox.server import Request, Response


class NoteEndpoints(KommoRecords):
    """`/api/v4/{contacts,leads}/notes`."""

    def _note_targets(self, entity: str) -> dict[int, dict[str, Any]]:
        return self.contacts if entity == "contacts" else self.leads

    def _post_notes(self, entity: str, request: Request) -> Response:
        items = write_batch(request)
        targets = self._note_targets(entity)
        errors = [
            e for e in (self._check_note(targets, n, item) for n, item in enumerate(items)) if e
        ]
        if errors:
            return validation_failed(errors)
        stamp, base = int(self.clock.now()), self._base(request)
        created = [self._store_note(entity, n, item, stamp) for n, item in enumerate(items)]
        return hal(
            {
                "_links": link(base, f"/api/v4/{entity}/notes"),
                "_embedded": {
                    "notes": [
                        {
                            "id": note["id"],
                            "entity_id": note["entity_id"],
                            "request_id": request_id,
                            "_links": link(
                                base, f"/api/v4/{entity}/{note['entity_id']}/notes/{note['id']}"
                            ),
                        }
                        for note, request_id in created
                    ]
                },
            }
        )

    @staticmethod
    def _request_id(index: int, item: Any) -> str:
        given = item.get("request_id") if isinstance(item, dict) else None
        return str(index) if given is None else str(given)

    def _check_note(self, targets: dict[int, Any], index: int, item: Any) -> dict[str, Any] | None:
        if not isinstance(item, dict):
            errors = [validation_error("InvalidType", "", "This value should be of type object.")]
        else:
            errors = self._note_errors(targets, item)
        return {"request_id": self._request_id(index, item), "errors": errors} if errors else None

    @staticmethod
    def _note_errors(targets: dict[int, Any], item: dict[str, Any]) -> list[dict[str, str]]:
        errors = []
        entity_id = item.get("entity_id")
        if not isinstance(entity_id, int) or isinstance(entity_id, bool):
            errors.append(
                validation_error("InvalidType", "entity_id", "This value should be of type int.")
            )
        elif entity_id not in targets:
            errors.append(validation_error("NotFound", "entity_id", "Entity not found"))
        if item.get("note_type") not in NOTE_TYPES:
            errors.append(
                validation_error(
                    "NotSupportedChoice",
                    "note_type",
                    "The value you selected is not a valid choice.",
                )
            )
        params = item.get("params")
        text = params.get("text") if isinstance(params, dict) else None
        if not isinstance(text, str) or not text.strip():
            errors.append(
                validation_error("NotBlank", "params.text", "This value should not be blank.")
            )
        return errors

    def _store_note(
        self, entity: str, index: int, item: dict[str, Any], stamp: int
    ) -> tuple[dict[str, Any], str]:
        note = {
            "id": next(self._ids["note"]),
            "entity_type": entity,
            "entity_id": item["entity_id"],
            "note_type": item["note_type"],
            "params": dict(item["params"]),
            "created_at": stamp,
            "updated_at": stamp,
            "created_by": USER_ID,
        }
        self.notes.append(note)
        return note, self._request_id(index, item)

    def _get_notes(self, entity: str, request: Request) -> Response:
        query = request.query
        entity_ids = set(filter_ints(query, "entity_id"))
        note_types = set(filter_values(query, "note_type"))
        low, high = range_filter(query, "updated_at")
        notes = [
            n
            for n in self.notes
            if n["entity_type"] == entity
            and (not entity_ids or n["entity_id"] in entity_ids)
            and (not note_types or n["note_type"] in note_types)
            and (low is None and high is None or within(n["updated_at"], low, high))
        ]
        base = self._base(request)
        return self._page(request, "notes", notes, lambda n: self._render_note(base, n))

    @staticmethod
    def _render_note(base: str, note: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v4/{note['entity_type']}/{note['entity_id']}/notes/{note['id']}"
        return {
            "id": note["id"],
            "entity_id": note["entity_id"],
            "created_by": USER_ID,
            "updated_by": USER_ID,
            "created_at": note["created_at"],
            "updated_at": note["updated_at"],
            "responsible_user_id": USER_ID,
            "group_id": 0,
            "note_type": note["note_type"],
            "params": note["params"],
            "account_id": ACCOUNT_ID,
            "_links": link(base, path),
        }
