"""Kommo OAuth 2.0: the access token every Kommo request carries, refreshed before it expires
and once on a 401; the refresh token Kommo rotates on every refresh is written to the token
store before the new access token is used (the old refresh token dies at that first use)."""

from __future__ import annotations

import threading
from typing import Any

import requests
from requests.auth import AuthBase

from kommo_sync.clock import Clock
from kommo_sync.config import KommoConfig, OAuthConfig
from kommo_sync.errors import FatalError
from kommo_sync.http import HttpClient
from kommo_sync.kommo_tokens import StoredTokens, token_store

TOKEN_PATH = "/oauth2/access_token"
MAX_MARGIN = 300.0  # refresh 5 min before expiry, or at 90 % of a shorter lifetime
REFUSED = (400, 401)  # Kommo's answers to a revoked, expired or unknown refresh token


class KommoOAuth(AuthBase):
    """A requests auth shared by the Kommo client's worker threads: one refresh at a time, the
    others wait under the lock and use the token it got."""

    def __init__(self, base_url: str, oauth: OAuthConfig, clock: Clock, timeout: float = 60.0):
        self.base_url, self.oauth, self.clock = base_url, oauth, clock
        self.store = token_store(oauth)
        self.http = HttpClient(
            base_url=base_url, vendor="Kommo OAuth", clock=clock, timeout=timeout
        )
        self.lock = threading.Lock()
        self.access: str | None = None
        self.refresh_at = 0.0
        self.refreshes = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.current()}"
        request.register_hook("response", self._on_response)
        return request

    def current(self) -> str:
        with self.lock:
            if self.access is None or self.clock.monotonic() >= self.refresh_at:
                self._refresh()
            assert self.access is not None
            return self.access

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        """On a 401, refresh once (unless another thread already did) and resend once; the
        resent answer goes back as it is (the adapter runs no hooks), so a second 401 is the
        client's to report."""
        if response.status_code != 401:
            return response
        used = str(response.request.headers.get("Authorization", "")).removeprefix("Bearer ")
        with self.lock:
            if self.access == used:
                self._refresh()
            token = self.access
        response.close()
        again = response.request.copy()
        again.headers["Authorization"] = f"Bearer {token}"
        resent: requests.Response = response.connection.send(again, **kwargs)
        resent.history.append(response)
        return resent

    def _refresh(self) -> None:
        """A stored access token another process got and that is not due yet is used as it is;
        else the stored refresh token first (the newest we got); when Kommo refuses it and the
        config's differs, a human has re-authorised since: the config's is tried next."""
        stored = self.store.load()
        if stored and self._reusable(stored):
            self._use(str(stored.access), stored.refresh_after - self.clock.now())
            return
        initial = self.oauth.refresh_token
        candidates = [t for t in (stored.refresh if stored else None, initial) if t]
        for token in dict.fromkeys(candidates):
            answer = self.http.request("POST", TOKEN_PATH, json=self._grant(token), allow=REFUSED)
            if answer.status_code not in REFUSED:
                self._take(answer.json())
                return
        raise FatalError(
            f"Kommo refused the OAuth refresh token of integration {self.oauth.client_id} on "
            f"{self.base_url} (revoked or expired): re-authorise the integration in Kommo and "
            "put the new refresh token in kommo.oauth.refresh_token"
        )

    def _grant(self, refresh_token: str) -> dict[str, str]:
        return {
            "client_id": self.oauth.client_id,
            "client_secret": self.oauth.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "redirect_uri": self.oauth.redirect_uri,
        }

    def _take(self, body: Any) -> None:
        """Store the rotated refresh token first, then start using the access token."""
        try:
            access, refresh = str(body["access_token"]), str(body["refresh_token"])
            lifetime = float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            raise FatalError("Kommo OAuth: the token answer lacks its tokens") from None
        due_in = lifetime - min(MAX_MARGIN, lifetime / 10)
        self.store.save(StoredTokens(refresh, access, self.clock.now() + due_in))
        self._use(access, due_in)
        self.refreshes += 1

    def _reusable(self, stored: StoredTokens) -> bool:
        """Not the token this process already holds (it is due, or got a 401), and not due."""
        fresh = stored.refresh_after > self.clock.now()
        return stored.access is not None and stored.access != self.access and fresh

    def _use(self, access: str, due_in: float) -> None:
        self.access = access
        self.refresh_at = self.clock.monotonic() + due_in


def kommo_auth(config: KommoConfig, clock: Clock, timeout: float) -> KommoOAuth | None:
    """The OAuth auth when `kommo.oauth` is configured, else None (the long-lived token)."""
    if config.oauth is None:
        return None
    return KommoOAuth(config.base_url, config.oauth, clock, timeout)
