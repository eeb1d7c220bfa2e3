"""The HTTP side every Kommo endpoint shares: the token, 7 requests a second, the IP block,
injected failures, and the cached, filtered and paged reads."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

from kommo_sync.clock import Clock
from kommo_sync.sandbox.kommo.oauth import PATH as OAUTH_PATH
from kommo_sync.sandbox.kommo.oauth import OAuthIssuer
from kommo_sync.sandbox.kommo.queries import (
    filter_ints,
    order_spec,
    page_and_limit,
    page_links,
    range_filter,
    within,
)
from kommo_sync.sandbox.kommo.responses import (
    BadRequest,
    hal,
    plain_text,
    problem,
    too_many_requests,
)
from kommo_sync.sandbox.kommo.rules import LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, PROBLEM
from kommo_sync.sandbox.server import App, Request, Response, SlidingWindow


class OneIp:
    """Kommo's limit counted per IP: accounts served behind one `OneIp` share its rate window,
    and their answers' statuses are kept in arrival order (to read 429 streaks across them)."""

    def __init__(self, clock: Clock, rate_limit: int = 7):
        self.window = SlidingWindow(clock, rate_limit)
        self.statuses: list[int] = []

    def longest_429_streak(self) -> int:
        return longest_429_streak(list(self.statuses))


def longest_429_streak(statuses: Sequence[int]) -> int:
    """The most 429s in a row (Kommo blocks an IP after a streak of them)."""
    longest = run = 0
    for status in statuses:
        run = run + 1 if status == 429 else 0
        longest = max(longest, run)
    return longest


class KommoBase(App):
    """The account's state and the request plumbing; the endpoint classes build on it."""

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
        self.oauth: OAuthIssuer | None = None  # set by `use_oauth`; else the long-lived token
        self.ip: OneIp | None = None  # set by `behind`; else the account limits itself
        self._init_store()

    def use_oauth(self, client_id: str, client_secret: str, refresh_token: str,
                  expires_in: int = 86_400) -> OAuthIssuer:  # fmt: skip
        """OAuth mode: /oauth2/access_token issues the tokens /api/v4 accepts."""
        self.oauth = OAuthIssuer(self.clock, client_id, client_secret, refresh_token, expires_in)
        return self.oauth

    def behind(self, ip: OneIp) -> None:
        """Count this account's requests in `ip`'s window (several accounts, one host)."""
        self.ip, self.rate_window = ip, ip.window

    def _init_store(self) -> None:
        self.pipelines: dict[int, dict[str, Any]] = {}
        self._statuses: dict[int, list[dict[str, Any]]] = {}
        self._status_ids: dict[int, set[int]] = {}
        self.companies: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.leads: dict[int, dict[str, Any]] = {}
        self.deleted_contacts: dict[int, dict[str, Any]] = {}  # in the trash: restorable
        self.deleted_leads: dict[int, dict[str, Any]] = {}
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
            "user": itertools.count(8375358),
            "tag": itertools.count(100667),
            "loss_reason": itertools.count(4203748),
        }
        self._events_sorted = True
        self._version = 0
        self._cache: dict[tuple[Any, ...], list[Any]] = {}
        self._cache_version = -1

    def _records_of(self, entity: str) -> dict[int, dict[str, Any]]:
        """The store behind an entity type as the API names it ("contacts", "leads", ...)."""
        stores = {"contacts": self.contacts, "leads": self.leads, "companies": self.companies}
        if entity not in stores:
            raise ValueError(f"no {entity!r} in a Kommo account")
        return stores[entity]

    def _timestamp(self, given: int | None) -> int:
        return int(self.clock.now()) if given is None else int(given)

    def _touch(self) -> None:
        """Invalidate cached listings after any change."""
        self._version += 1

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

    def before(self, request: Request) -> Response | None:
        """IP block, injected failures, the per-second rate limit, then the bearer token."""
        with self.lock:
            if self.blocked:
                return plain_text(403, "403 Forbidden")
            if self._failures:
                return self.failure_response(*self._failures.popleft())
        if self.rate_window is not None and not self.rate_window.admit():
            return too_many_requests()
        if self.oauth is not None:
            if request.path == OAUTH_PATH:
                return self.oauth.token(request)
            if not self.oauth.admits(request.header("authorization")):
                return problem(401, "Invalid user name or password", "Unauthorized")
        elif request.header("authorization") != f"Bearer {self.token}":
            return problem(401, "Invalid user name or password", "Unauthorized")
        return None

    def dispatch(self, request: Request) -> Response:
        response = super().dispatch(request)
        self._track_throttling(response.status)
        return response

    def _track_throttling(self, status: int) -> None:
        """Block the IP after `block_after` 429s with no successful request between them."""
        with self.lock:
            if self.ip is not None:
                self.ip.statuses.append(status)  # list.append is atomic: no lock of the IP's
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

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """Run a handler under the store lock, turning BadRequest into its response."""

        def run(request: Request) -> Response:
            try:
                with self.lock:
                    return handler(request)
            except BadRequest as error:
                return error.response

        return run

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
