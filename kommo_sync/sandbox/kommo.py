"""A Kommo (amoCRM) REST API v4 sandbox: an in-memory account served over real HTTP.

It follows /api/v4 as the vendor notes describe it: HAL pages with 1-based `page` and `limit`,
204 with no body for empty lists, `_links.next` on every non-empty page (even the last one),
problem+json errors, 7 requests per second then 429 (with `retry_after` in the body only), and an
IP block (403, bare text) after repeated 429s. Where the real behaviour is unconfirmed it does
the pessimistic variant: `limit` > 250 silently becomes 50, an unchecked consent box is absent
from `custom_fields_values`, linking a lead does not bump the contact's `updated_at`, and a
batch write is rejected as a whole when one item is invalid.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from kommo_sync.clock import Clock
from kommo_sync.sandbox.server import App, Request, Response, SlidingWindow

HAL = "application/hal+json"
PROBLEM = "application/problem+json"
ACCOUNT_ID = 31361463
USER_ID = 8375357
WON, LOST = 142, 143
WRITE_BATCH_LIMIT = 250
LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT = 50, 250
EVENTS_LIMIT = 100
ULID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
ULID_PAIRS = [a + b for a in ULID_ALPHABET for b in ULID_ALPHABET]
ULID_SHIFTS = range(120, -1, -10)

CONTACT_FIELDS = (
    "id",
    "name",
    "first_name",
    "last_name",
    "responsible_user_id",
    "group_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "closest_task_at",
    "is_deleted",
    "is_unsorted",
    "custom_fields_values",
    "account_id",
)
LEAD_FIELDS = (
    "id",
    "name",
    "price",
    "responsible_user_id",
    "group_id",
    "status_id",
    "pipeline_id",
    "loss_reason_id",
    "created_by",
    "updated_by",
    "created_at",
    "updated_at",
    "closed_at",
    "closest_task_at",
    "is_deleted",
    "custom_fields_values",
    "score",
    "account_id",
    "labor_cost",
    "is_price_modified_by_robot",
)
CONTACT_CHANGES = frozenset(
    {
        "first_name",
        "last_name",
        "email",
        "phone",
        "company_id",
        "consent",
        "lead_source",
        "extra_emails",
    }
)
NOTE_TYPES = frozenset({"common", "service_message"})
PHONE_ENUMS = ("WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER")
EMAIL_ENUMS = ("WORK", "PRIV", "OTHER")
STATUS_COLORS = ("#99ccff", "#ffff99", "#ffcc66", "#ff8f92", "#87f2c0", "#deff81")
DUMMY_FIELD_NAMES = (
    "Birthday",
    "Website",
    "Address",
    "Skype",
    "Preferred language",
    "Customer type",
    "Industry",
    "Annual revenue",
    "Employees",
    "Region",
    "Referral code",
    "Loyalty level",
    "Last order date",
    "VAT number",
    "Account manager note",
    "Interests",
    "Newsletter segment",
    "Fax",
    "LinkedIn",
    "Contract number",
)
DUMMY_FIELD_TYPES = (
    "date",
    "url",
    "textarea",
    "text",
    "select",
    "select",
    "text",
    "numeric",
    "numeric",
    "radiobutton",
    "text",
    "select",
    "date",
    "text",
    "textarea",
    "multiselect",
    "select",
    "text",
    "url",
    "text",
)
DUMMY_FIELD_COUNT = 58
STATUSES_KEY = re.compile(r"^filter\[statuses\]\[(\d+)\]\[(pipeline_id|status_id)\]$")


class BadRequest(Exception):
    """Raised inside a handler to answer with a ready error response."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


# ---- response builders -------------------------------------------------------------------


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> Response:
    """An application/problem+json error in Kommo's shape."""
    body = {
        "title": title or HTTPStatus(status).phrase,
        "type": f"https://httpstatus.es/{status}",
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(status, body, PROBLEM)


def validation_error(code: str, path: str, detail: str) -> dict[str, str]:
    return {"code": code, "path": path, "detail": detail}


def validation_failed(items: list[dict[str, Any]]) -> Response:
    """400 with a `validation-errors` list, one entry per rejected request item."""
    return problem(400, "Request validation failed", "Bad Request", **{"validation-errors": items})


def hal(body: dict[str, Any]) -> Response:
    return Response(200, body, HAL)


def link(base: str, path: str) -> dict[str, dict[str, str]]:
    return {"self": {"href": f"{base}{path}"}}


def reference(base: str, collection: str, entity_id: int) -> dict[str, Any]:
    """An embedded `{id, _links}` pointer to another entity."""
    return {"id": entity_id, "_links": link(base, f"/api/v4/{collection}/{entity_id}")}


def too_many_requests() -> Response:
    """429 with `retry_after` in the body and no Retry-After header."""
    return problem(
        429,
        "You have sent too many requests in a given amount of time. Please try again later.",
        "Too Many Requests",
        retry_after=1,
    )


def plain_text(status: int, text: str) -> Response:
    return Response(status, None, "text/html", raw=text.encode("utf-8"))


# ---- query-string parsing ----------------------------------------------------------------


def to_int(value: Any, path: str) -> int:
    """An integer query or body value, or a 400 naming the offending parameter."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(
            validation_failed(
                [
                    {
                        "request_id": "0",
                        "errors": [
                            validation_error(
                                "InvalidType", path, "This value should be of type int."
                            )
                        ],
                    }
                ]
            )
        )


def is_indexed_key(key: str, prefix: str) -> bool:
    """True for `prefix[]` and `prefix[<n>]` (the array forms of one filter)."""
    inner = key[len(prefix) :]
    return (
        key.startswith(prefix)
        and inner.startswith("[")
        and inner.endswith("]")
        and (inner == "[]" or inner[1:-1].isdigit())
    )


def filter_values(query: dict[str, list[str]], name: str) -> list[str]:
    """Values of `filter[name]`, `filter[name][]` and `filter[name][n]`, comma lists split."""
    prefix = f"filter[{name}]"
    found: list[str] = []
    for key, values in query.items():
        if key == prefix or is_indexed_key(key, prefix):
            for value in values:
                found.extend(part.strip() for part in value.split(",") if part.strip())
    return found


def filter_ints(query: dict[str, list[str]], name: str) -> list[int]:
    return [to_int(value, f"filter[{name}]") for value in filter_values(query, name)]


def range_filter(query: dict[str, list[str]], name: str) -> tuple[int | None, int | None]:
    """Inclusive bounds from `filter[name][from]`/`[to]` or the comma form `filter[name]=a,b`."""
    low = query.get(f"filter[{name}][from]", [None])[0]
    high = query.get(f"filter[{name}][to]", [None])[0]
    single = query.get(f"filter[{name}]", [None])[0]
    if single:
        low, _, rest = single.partition(",")
        high = rest or high
    parse = lambda v: None if v in (None, "") else to_int(v, f"filter[{name}]")
    return parse(low), parse(high)


def within(value: int | None, low: int | None, high: int | None) -> bool:
    if value is None:
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def order_spec(query: dict[str, list[str]], allowed: Sequence[str]) -> tuple[str, bool]:
    """(field, descending) from the first `order[field]=asc|desc`; id ascending by default."""
    for field in allowed:
        direction = query.get(f"order[{field}]")
        if direction:
            return field, direction[0].lower() == "desc"
    return "id", False


def positive_int(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdigit() and int(raw) > 0 else None


def page_and_limit(
    query: dict[str, list[str]], default: int, maximum: int, oversize: int
) -> tuple[int, int]:
    """1-based page and page size; a limit above `maximum` silently becomes `oversize`."""
    limit = positive_int(query.get("limit", [None])[0]) or default
    page = positive_int(query.get("page", [None])[0]) or 1
    return page, oversize if limit > maximum else limit


def page_links(base: str, request: Request, page: int, limit: int) -> dict[str, Any]:
    """HAL links; `next` is always there, as the real API sends it even on the last page."""

    def href(number: int) -> dict[str, str]:
        params = [
            (k, v)
            for k, values in request.query.items()
            if k not in ("page", "limit")
            for v in values
        ] + [("limit", limit), ("page", number)]
        return {"href": f"{base}{request.path}?{urlencode(params)}"}

    links = {"self": href(page), "next": href(page + 1)}
    if page > 1:
        links.update(first=href(1), prev=href(page - 1))
    return links


def event_id(created_at: int, sequence: int) -> str:
    """A ULID-like id: 10 chars of milliseconds then 16 of sequence, so ids sort by time."""
    value = (created_at * 1000) << 80 | sequence
    return "".join([ULID_PAIRS[(value >> shift) & 1023] for shift in ULID_SHIFTS])


def stored_values(record: dict[str, Any], field_id: int) -> list[Any]:
    """The raw `value`s a record holds for one custom field."""
    for entry in record["custom_fields_values"] or []:
        if entry["field_id"] == field_id:
            return [value.get("value") for value in entry["values"]]
    return []


def is_checked(value: Any) -> bool:
    return value is True or value in (1, "1", "true")


class KommoSandbox(App):
    """An in-memory Kommo account (contacts, companies, leads, pipelines, events, notes)."""

    def __init__(
        self,
        clock: Clock | None = None,
        token: str = "sandbox-kommo-token",
        rate_limit: int | None = 7,
        block_after: int = 20,
    ):
        super().__init__(clock)
        self.token = token
        self.rate_window = SlidingWindow(self.clock, rate_limit) if rate_limit else None
        self.block_after = block_after
        self.blocked = False
        self.consecutive_429 = 0
        self.ignore_page = False  # a test switch: every list serves page 1 (a paging loop)
        self.pipelines_answer: str | None = (
            None  # a test switch: "empty" (200, none) or "no_content"
        )
        self._failures: deque[tuple[int, Any]] = deque()
        self._init_store()
        self._create_standard_fields()
        self._register_routes()

    def _init_store(self) -> None:
        self.pipelines: dict[int, dict[str, Any]] = {}
        self._statuses: dict[int, list[dict[str, Any]]] = {}
        self._status_ids: dict[int, set[int]] = {}
        self.companies: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.custom_fields: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self._search_text: dict[int, str] = {}
        self._enum_ids: dict[tuple[int, str], int] = {}
        # Contacts and companies share one id sequence in Kommo.
        self._ids = {
            "pipeline": itertools.count(3177727),
            "status": itertools.count(32392156),
            "entity": itertools.count(406320),
            "lead": itertools.count(3912171),
            "field": itertools.count(178382),
            "enum": itertools.count(126290),
            "note": itertools.count(76787983),
            "event": itertools.count(1),
            "event_note": itertools.count(42743871),
        }
        self._events_sorted = True
        self._version = 0
        self._cache: dict[tuple[Any, ...], list[Any]] = {}
        self._cache_version = -1

    # ---- custom fields ---------------------------------------------------------------------

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
            enums = [
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

    # ---- pipelines -------------------------------------------------------------------------

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

    # ---- companies and contacts ------------------------------------------------------------

    def _timestamp(self, given: int | None) -> int:
        return int(self.clock.now()) if given is None else int(given)

    def _touch(self) -> None:
        """Invalidate cached listings after any change."""
        self._version += 1

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

    # ---- leads and events ------------------------------------------------------------------

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

    def _record_event(self, kind: str, lead_id: int, stamp: int, after: list, before: list) -> None:
        if self.events and stamp < self.events[-1]["created_at"]:
            self._events_sorted = False
        self.events.append(
            {
                "id": event_id(stamp, next(self._ids["event"])),
                "type": kind,
                "entity_id": lead_id,
                "entity_type": "lead",
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

    # ---- failure hooks ---------------------------------------------------------------------

    def fail_next(self, n: int, status: int, body: Any = None) -> None:
        """Answer the next n requests with `status` (a str body is sent as text/html)."""
        with self.lock:
            self._failures.extend([(status, body)] * n)

    def unblock(self) -> None:
        with self.lock:
            self.blocked = False
            self.consecutive_429 = 0

    def failure_response(self, status: int, body: Any) -> Response:
        if isinstance(body, str):
            return plain_text(status, body)
        if body is not None:
            return Response(status, body, PROBLEM)
        return self._default_failure(status)

    @staticmethod
    def _default_failure(status: int) -> Response:
        if status == 429:
            return too_many_requests()
        if status == 403:
            return plain_text(403, "403 Forbidden")
        if status == 500:
            return Response(
                500,
                {
                    "title": "ErrInternalServer",
                    "status": 500,
                    "detail": "Our team are probably already working on the "
                    "elimination of the problem",
                    "trace_id": "8e9b1e47c0a64b6f",
                },
                PROBLEM,
            )
        if status >= 502:
            phrase = f"{status} {HTTPStatus(status).phrase}"
            return plain_text(
                status,
                f"<html><head><title>{phrase}</title></head><body>"
                f"<center><h1>{phrase}</h1></center></body></html>",
            )
        return problem(status, HTTPStatus(status).phrase)

    # ---- request pipeline ------------------------------------------------------------------

    def before(self, request: Request) -> Response | None:
        """IP block, injected failures, the per-second rate limit, then the bearer token."""
        with self.lock:
            if self.blocked:
                return plain_text(403, "403 Forbidden")
            if self._failures:
                return self.failure_response(*self._failures.popleft())
        if self.rate_window is not None and not self.rate_window.admit():
            return too_many_requests()
        if request.header("authorization") != f"Bearer {self.token}":
            return problem(401, "Invalid user name or password", "Unauthorized")
        return None

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        self._track_throttling(response.status)
        return response

    def _track_throttling(self, status: int) -> None:
        """Block the IP after `block_after` 429s with no successful request between them."""
        with self.lock:
            if status == 429:
                self.consecutive_429 += 1
                self.blocked = self.blocked or self.consecutive_429 >= self.block_after
            elif 200 <= status < 300:
                self.consecutive_429 = 0

    def not_found(self, request: Request, method_mismatch: bool = False) -> Response:
        detail = f"Cannot {request.method} {self._base(request)}{request.path}"
        return problem(405 if method_mismatch else 404, detail)

    @staticmethod
    def _base(request: Request) -> str:
        return f"http://{request.header('host', '127.0.0.1')}"

    def _register_routes(self) -> None:
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [
            ("GET", "/api/v4/contacts", self._get_contacts),
            ("PATCH", "/api/v4/contacts", self._patch_contacts),
            ("GET", "/api/v4/contacts/custom_fields", self._get_custom_fields),
            ("GET", "/api/v4/contacts/notes", lambda r: self._get_notes("contacts", r)),
            ("POST", "/api/v4/contacts/notes", lambda r: self._post_notes("contacts", r)),
            ("GET", "/api/v4/contacts/{id}", self._get_contact),
            ("GET", "/api/v4/leads", self._get_leads),
            ("GET", "/api/v4/leads/pipelines", self._get_pipelines),
            ("GET", "/api/v4/leads/notes", lambda r: self._get_notes("leads", r)),
            ("POST", "/api/v4/leads/notes", lambda r: self._post_notes("leads", r)),
            ("GET", "/api/v4/leads/{id}", self._get_lead),
            ("GET", "/api/v4/companies", self._get_companies),
            ("GET", "/api/v4/events", self._get_events),
        ]
        for method, path, handler in routes:
            self.route(method, path, self._guarded(handler))

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Run a handler under the store lock, turning BadRequest into its response."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except BadRequest as error:
                return error.response

        return run

    # ---- listing helpers -------------------------------------------------------------------

    def _cached(self, kind: str, request: Request, build: Callable[[], list[Any]]) -> list[Any]:
        """One selection per filter set and data version, so deep paging stays cheap."""
        if self._cache_version != self._version:
            self._cache.clear()
            self._cache_version = self._version
        key = (
            kind,
            tuple(
                sorted(
                    (k, tuple(v))
                    for k, v in request.query.items()
                    if k not in ("page", "limit", "with")
                )
            ),
        )
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def _select(
        self,
        store: dict[int, dict[str, Any]],
        query: dict[str, list[str]],
        ranges: Sequence[str],
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[int]:
        """Ids matching `filter[id]`, the inclusive ranges and `keep`, in the requested order."""
        ids = filter_ints(query, "id")
        records = [store[i] for i in dict.fromkeys(ids) if i in store] if ids else store.values()
        bounds = [(name, *range_filter(query, name)) for name in ranges]
        bounds = [
            (name, low, high) for name, low, high in bounds if low is not None or high is not None
        ]
        selected = [
            r
            for r in records
            if all(within(r[name], low, high) for name, low, high in bounds)
            and (keep is None or keep(r))
        ]
        field, descending = order_spec(query, ("updated_at", "created_at", "id"))
        selected.sort(key=lambda r: (r[field] or 0, r["id"]), reverse=descending)
        return [r["id"] for r in selected]

    def _page(
        self,
        request: Request,
        key: str,
        items: Sequence[Any],
        render: Callable[[Any], dict[str, Any]],
        default: int = LIST_DEFAULT_LIMIT,
        maximum: int = LIST_MAX_LIMIT,
        oversize: int = LIST_DEFAULT_LIMIT,
    ) -> Response:
        page, limit = page_and_limit(request.query, default, maximum, oversize)
        served = 1 if self.ignore_page else page
        chunk = items[(served - 1) * limit : served * limit]
        if not chunk:
            return Response(204)
        links = page_links(self._base(request), request, page, limit)
        return hal(
            {"_page": page, "_links": links, "_embedded": {key: [render(item) for item in chunk]}}
        )

    @staticmethod
    def _with(request: Request) -> set[str]:
        return {
            part.strip() for value in request.query.get("with", []) for part in value.split(",")
        }

    @staticmethod
    def _search_needle(query: dict[str, list[str]]) -> str | None:
        text = query.get("query", [""])[0].strip().lower()
        return text or None

    # ---- contacts --------------------------------------------------------------------------

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
            "tags": [],
            "companies": [reference(base, "companies", company_id)] if company_id else [],
        }
        if with_leads:
            embedded["leads"] = [reference(base, "leads", i) for i in contact["lead_ids"]]
        body["_embedded"] = embedded
        return body

    def _patch_contacts(self, request: Request) -> Response:
        items = self._write_batch(request)
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

    def _write_batch(self, request: Request) -> list[Any]:
        """The JSON array of a batch write: 400 when malformed, 422 over 250 items."""
        try:
            items = request.json()
        except ValueError:
            raise BadRequest(problem(400, "Syntax error", "Bad Request"))
        if not isinstance(items, list) or not items:
            raise BadRequest(
                validation_failed(
                    [
                        {
                            "request_id": "0",
                            "errors": [
                                validation_error(
                                    "InvalidType", "", "This value should be a non-empty array."
                                )
                            ],
                        }
                    ]
                )
            )
        if len(items) > WRITE_BATCH_LIMIT:
            raise BadRequest(problem(422, "Limit 250 per page", "Unprocessable Entity"))
        return items

    # ---- leads, pipelines, companies -------------------------------------------------------

    def _get_leads(self, request: Request) -> Response:
        ids = self._cached("leads", request, lambda: self._select_leads(request.query))
        base, with_contacts = self._base(request), "contacts" in self._with(request)
        return self._page(
            request, "leads", ids, lambda i: self._render_lead(base, self.leads[i], with_contacts)
        )

    def _select_leads(self, query: dict[str, list[str]]) -> list[int]:
        pipelines = set(filter_ints(query, "pipeline_id"))
        statuses = self._status_filter(query)
        needle = self._search_needle(query)

        def keep(lead: dict[str, Any]) -> bool:
            return (
                (not pipelines or lead["pipeline_id"] in pipelines)
                and (not statuses or (lead["pipeline_id"], lead["status_id"]) in statuses)
                and (needle is None or needle in lead["name"].lower())
            )

        return self._select(self.leads, query, ("updated_at", "created_at", "closed_at"), keep)

    @staticmethod
    def _status_filter(query: dict[str, list[str]]) -> set[tuple[int, int]]:
        """`filter[statuses][n][pipeline_id]` + `[status_id]` pairs."""
        pairs: dict[str, dict[str, int]] = {}
        for key, values in query.items():
            match = STATUSES_KEY.match(key)
            if match:
                pairs.setdefault(match[1], {})[match[2]] = to_int(values[0], key)
        return {
            (p["pipeline_id"], p["status_id"])
            for p in pairs.values()
            if "pipeline_id" in p and "status_id" in p
        }

    def _get_lead(self, request: Request) -> Response:
        lead_id = request.params["id"]
        if not lead_id.isdigit():
            return self.not_found(request)
        lead = self.leads.get(int(lead_id))
        if lead is None:
            return Response(204)
        return hal(self._render_lead(self._base(request), lead, "contacts" in self._with(request)))

    def _render_lead(self, base: str, lead: dict[str, Any], with_contacts: bool) -> dict[str, Any]:
        body = {key: lead[key] for key in LEAD_FIELDS}
        body["_links"] = link(base, f"/api/v4/leads/{lead['id']}")
        company_id = lead["company_id"]
        embedded: dict[str, Any] = {
            "tags": [],
            "companies": [reference(base, "companies", company_id)] if company_id else [],
        }
        if with_contacts:
            embedded["contacts"] = [
                {
                    **reference(base, "contacts", contact_id),
                    "is_main": contact_id == lead["main_contact_id"],
                }
                for contact_id in lead["contact_ids"]
            ]
        body["_embedded"] = embedded
        return body

    def _get_pipelines(self, request: Request) -> Response:
        if self.pipelines_answer == "empty":
            return hal({"_embedded": {"pipelines": []}})
        if self.pipelines_answer == "no_content" or not self.pipelines:
            return Response(204)
        base = self._base(request)
        return hal(
            {
                "_total_items": len(self.pipelines),
                "_links": link(base, "/api/v4/leads/pipelines"),
                "_embedded": {
                    "pipelines": [self._render_pipeline(base, p) for p in self.pipelines.values()]
                },
            }
        )

    def _render_pipeline(self, base: str, pipeline: dict[str, Any]) -> dict[str, Any]:
        path = f"/api/v4/leads/pipelines/{pipeline['id']}"
        statuses = [
            {**status, "_links": link(base, f"{path}/statuses/{status['id']}")}
            for status in self._statuses[pipeline["id"]]
        ]
        return {**pipeline, "_links": link(base, path), "_embedded": {"statuses": statuses}}

    def _get_companies(self, request: Request) -> Response:
        ids = self._cached("companies", request, lambda: self._select_companies(request.query))
        base = self._base(request)
        return self._page(
            request, "companies", ids, lambda i: self._render_company(base, self.companies[i])
        )

    def _select_companies(self, query: dict[str, list[str]]) -> list[int]:
        needle = self._search_needle(query)
        keep = (lambda c: needle in c["name"].lower()) if needle else None
        return self._select(self.companies, query, ("updated_at", "created_at"), keep)

    @staticmethod
    def _render_company(base: str, company: dict[str, Any]) -> dict[str, Any]:
        return {
            **company,
            "_links": link(base, f"/api/v4/companies/{company['id']}"),
            "_embedded": {"tags": []},
        }

    # ---- custom fields ---------------------------------------------------------------------

    def _get_custom_fields(self, request: Request) -> Response:
        types = set(filter_values(request.query, "type"))
        fields = sorted(
            (f for f in self.custom_fields.values() if not types or f["type"] in types),
            key=lambda f: (f["sort"], f["id"]),
        )
        base = self._base(request)
        return self._page(
            request,
            "custom_fields",
            fields,
            lambda f: {**f, "_links": link(base, f"/api/v4/contacts/custom_fields/{f['id']}")},
        )

    # ---- events ----------------------------------------------------------------------------

    def _get_events(self, request: Request) -> Response:
        events = self._cached("events", request, lambda: self._select_events(request.query))
        base = self._base(request)
        return self._page(
            request,
            "events",
            events,
            lambda e: self._render_event(base, e),
            EVENTS_LIMIT,
            EVENTS_LIMIT,
            EVENTS_LIMIT,
        )

    def _select_events(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        types = set(filter_values(query, "type"))
        entities = set(filter_values(query, "entity"))
        entity_ids = set(filter_ints(query, "entity_id"))
        ids = set(filter_values(query, "id"))
        low, high = range_filter(query, "created_at")
        return [
            e
            for e in self._sorted_events()
            if (not types or e["type"] in types)
            and (not entities or e["entity_type"] in entities)
            and (not entity_ids or e["entity_id"] in entity_ids)
            and (not ids or e["id"] in ids)
            and (low is None and high is None or within(e["created_at"], low, high))
        ]

    @staticmethod
    def _render_event(base: str, event: dict[str, Any]) -> dict[str, Any]:
        return {
            **event,
            "_links": link(base, f"/api/v4/events/{event['id']}"),
            "_embedded": {"entity": reference(base, "leads", event["entity_id"])},
        }

    # ---- notes -----------------------------------------------------------------------------

    def _note_targets(self, entity: str) -> dict[int, dict[str, Any]]:
        return self.contacts if entity == "contacts" else self.leads

    def _post_notes(self, entity: str, request: Request) -> Response:
        items = self._write_batch(request)
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
