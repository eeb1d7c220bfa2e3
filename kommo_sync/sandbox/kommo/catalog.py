"""A Kommo account's pipelines with their statuses (custom fields are in custom_fields.py)."""

from __future__ import annotations

from typing import Any

from kommo_sync.sandbox.kommo.custom_fields import KommoFields
from kommo_sync.sandbox.kommo.rules import ACCOUNT_ID, LOST, STATUS_COLORS, WON


class KommoCatalog(KommoFields):
    """Pipelines, seeded by tests and read by the endpoints."""

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
