"""Kommo's OAuth 2.0 token endpoint, as the sandbox plays it: access tokens that expire after
`expires_in`, refresh tokens that rotate on every refresh (the old one stays usable until the
new access token is first used, like Kommo), 400 with Kommo's OAuth problem body for a revoked
or unknown refresh token."""

from __future__ import annotations

import itertools
import threading
from typing import Any

from kommo_sync.clock import Clock
from kommo_sync.sandbox.server import Request, Response

PATH = "/oauth2/access_token"


class OAuthIssuer:
    def __init__(self, clock: Clock, client_id: str, client_secret: str, refresh_token: str,
                 expires_in: int = 86_400):  # fmt: skip
        self.clock, self.client_id, self.client_secret = clock, client_id, client_secret
        self.expires_in = expires_in
        self.lock = threading.Lock()
        self._serial = itertools.count(1)
        self.refresh_tokens: set[str] = {refresh_token}
        self.access: dict[str, tuple[float, str | None]] = {}  # token -> (expiry, old refresh)
        self.refreshes = 0

    def revoke(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def admits(self, authorization: str | None) -> bool:
        """A bearer token issued here and not expired; its first use retires the refresh token
        it replaced."""
        token = (authorization or "").removeprefix("Bearer ")
        with self.lock:
            entry = self.access.get(token)
            if entry is None or self.clock.monotonic() >= entry[0]:
                return False
            if entry[1] is not None:
                self.refresh_tokens.discard(entry[1])
                self.access[token] = (entry[0], None)
            return True

    def token(self, request: Request) -> Response:
        body: Any = request.json() or {}
        with self.lock:
            if (body.get("client_id"), body.get("client_secret")) != (
                self.client_id, self.client_secret,
            ):  # fmt: skip
                return _oauth_problem(401, "Client authentication failed")
            given = body.get("refresh_token")
            if body.get("grant_type") != "refresh_token" or given not in self.refresh_tokens:
                return _oauth_problem(400, "Token has been revoked")
            n = next(self._serial)
            access, refresh = f"sandbox-access-{n:06d}", f"sandbox-refresh-{n:06d}"
            self.refresh_tokens.add(refresh)
            self.access[access] = (self.clock.monotonic() + self.expires_in, given)
            self.refreshes += 1
        return Response(200, {
            "token_type": "Bearer", "expires_in": self.expires_in,
            "access_token": access, "refresh_token": refresh,
        })  # fmt: skip


def _oauth_problem(status: int, hint: str) -> Response:
    return Response(status, {
        "hint": hint, "title": "Некорректный запрос",
        "type": "https://developers.amocrm.ru/v3/errors/OAuthProblemJson",
        "status": status, "detail": "В запросе отсутствует обязательный параметр, либо запрос "
        "неправильно сформирован",
    })  # fmt: skip
