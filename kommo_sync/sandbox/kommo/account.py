"""A Kommo account's own settings and directories: the account (country, currency, date and
time settings), its users, the reasons a lead is closed as lost, and one tag directory per
entity type (a tag name has a different id for contacts, leads and companies)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kommo_sync.sandbox.kommo.catalog import KommoCatalog
from kommo_sync.sandbox.kommo.responses import link
from kommo_sync.sandbox.kommo.rules import (
    ACCOUNT_DEFAULTS,
    DATETIME_DEFAULTS,
    ENTITY_TYPES,
    USER_ID,
    user_rights,
)


class KommoAccount(KommoCatalog):
    """The account, users, loss reasons and tag directories, set by tests."""

    def _init_store(self) -> None:
        super()._init_store()
        self.account: dict[str, Any] = dict(ACCOUNT_DEFAULTS)
        self.datetime_settings: dict[str, str] = dict(DATETIME_DEFAULTS)
        self.users: dict[int, dict[str, Any]] = {}
        self._store_user(USER_ID, "Sandbox Admin", "admin@sandbox.example", "en", True)
        self.loss_reasons: dict[int, dict[str, Any]] = {}
        self.tag_directory: dict[str, dict[int, dict[str, Any]]] = {e: {} for e in ENTITY_TYPES}
        self.entity_tags: dict[str, dict[int, list[int]]] = {e: {} for e in ENTITY_TYPES}

    def set_account(self, **changes: Any) -> None:
        """Change account settings by Kommo's names: top-level ones (name, subdomain, country,
        currency, currency_symbol, is_loss_reason_enabled, …) or datetime_settings ones
        (timezone, date_pattern, short_date_pattern, short_time_pattern, date_format,
        time_format). The timezone offset follows the timezone."""
        settable = (set(self.account) - {"id", "current_user_id"}) | set(self.datetime_settings)
        unknown = set(changes) - settable
        if unknown:
            raise TypeError(f"unknown account settings: {sorted(unknown)}")
        if "timezone" in changes:
            ZoneInfo(changes["timezone"])  # refuses a name the tz database does not know
        with self.lock:
            for key, value in changes.items():
                target = self.datetime_settings if key in self.datetime_settings else self.account
                target[key] = value

    def _datetime_settings(self) -> dict[str, str]:
        """The settings with `timezone_offset` ("+02:00") for the timezone at the clock's now."""
        now = datetime.fromtimestamp(self.clock.now(), ZoneInfo(self.datetime_settings["timezone"]))
        offset = now.strftime("%z")
        return {**self.datetime_settings, "timezone_offset": f"{offset[:3]}:{offset[3:]}"}

    def add_user(
        self,
        name: str,
        email: str,
        *,
        lang: str = "en",
        is_admin: bool = False,
        is_active: bool = True,
    ) -> int:
        """A user of the account (records can be made responsible to it); returns its id."""
        with self.lock:
            user_id = next(self._ids["user"])
            self._store_user(user_id, name, email, lang, is_admin, is_active)
            self._touch()
            return user_id

    def _store_user(
        self,
        user_id: int,
        name: str,
        email: str,
        lang: str,
        is_admin: bool,
        is_active: bool = True,
    ) -> None:
        self.users[user_id] = {
            "id": user_id,
            "name": name,
            "email": email,
            "lang": lang,
            "rights": user_rights(is_admin, is_active),
        }

    def add_loss_reason(self, name: str, *, at: int | None = None) -> int:
        """A reason a lead can be closed as lost with; returns its id."""
        with self.lock:
            reason_id, stamp = next(self._ids["loss_reason"]), self._timestamp(at)
            self.loss_reasons[reason_id] = {
                "id": reason_id,
                "name": name,
                "sort": len(self.loss_reasons),
                "created_at": stamp,
                "updated_at": stamp,
            }
            self._touch()
            return reason_id

    @staticmethod
    def _render_loss_reason(base: str, reason: dict[str, Any]) -> dict[str, Any]:
        return {**reason, "_links": link(base, f"/api/v4/leads/loss_reasons/{reason['id']}")}

    def add_tag(self, entity: str, name: str, color: str | None = None) -> int:
        """A tag in `entity`'s directory (the existing id when the name is there already).
        Only lead tags have a colour in Kommo; the others always answer `color: null`."""
        if color is not None and entity != "leads":
            raise ValueError("only lead tags have a colour")
        with self.lock:
            directory = self._tag_directory(entity)
            found = next((t["id"] for t in directory.values() if t["name"] == name), None)
            if found is not None:
                return int(found)
            tag_id = next(self._ids["tag"])
            directory[tag_id] = {"id": tag_id, "name": name, "color": color}
            self._touch()
            return tag_id

    def _tag_directory(self, entity: str) -> dict[int, dict[str, Any]]:
        if entity not in self.tag_directory:
            raise ValueError(f"Kommo has no tags for {entity!r}")
        return self.tag_directory[entity]

    def _embedded_tags(self, entity: str, record_id: int) -> list[dict[str, Any]]:
        """A record's `_embedded.tags`: `{id, name, color}` in the order they were added."""
        directory = self.tag_directory[entity]
        return [dict(directory[i]) for i in self.entity_tags[entity].get(record_id, [])]
