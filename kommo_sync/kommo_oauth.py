"""Kommo OAuth 2.0: the access token every Kommo request carries, refreshed before it expires
and once on a 401; the refresh token Kommo rotates on every refresh is written to the token
store before the new access token is used (the old refresh token dies at that first use)."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import requests
from requests.auth import AuthBase

from kommo_sync.clock import Clock
from kommo_sync.config import READABLE_BY_OTHERS, KommoConfig, OAuthConfig
from kommo_sync.errors import FatalError
from kommo_sync.http import HttpClient

log = logging.getLogger("kommo_sync.kommo_oauth")

TOKEN_PATH = "/oauth2/access_token"
MAX_MARGIN = 300.0  # refresh 5 min before expiry, or at 90 % of a shorter lifetime
REFUSED = (400, 401)  # Kommo's answers to a revoked, expired or unknown refresh token


class TokenStore:
    """The latest refresh token, one line in a file of mode 0600, replaced atomically."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> str | None:
        """The stored token; a store group or others can read is warned about (chmod 600)."""
        try:
            if self.path.stat().st_mode & READABLE_BY_OTHERS:
                log.warning("%s holds a secret and is readable by others: chmod 600", self.path)
            return self.path.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FatalError(f"cannot read the Kommo token store {self.path}: {exc}") from None

    def save(self, token: str) -> None:
        """Temp file + fsync + rename, so a crash leaves the old token or the new, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(token + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise FatalError(f"cannot write the Kommo token store {self.path}: {exc}") from None


class KommoOAuth(AuthBase):
    """A requests auth shared by the Kommo client's worker threads: one refresh at a time, the
    others wait under the lock and use the token it got."""

    def __init__(self, base_url: str, oauth: OAuthConfig, clock: Clock, timeout: float = 60.0):
        self.base_url, self.oauth, self.clock = base_url, oauth, clock
        self.store = TokenStore(oauth.token_store)
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
        """The stored token first (the newest we got); when Kommo refuses it and the config's
        differs, a human has re-authorised since: the config's is tried next."""
        initial = self.oauth.refresh_token
        candidates = [t for t in (self.store.load(), initial) if t]
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
        self.store.save(refresh)
        self.access = access
        self.refresh_at = self.clock.monotonic() + lifetime - min(MAX_MARGIN, lifetime / 10)
        self.refreshes += 1


def kommo_auth(config: KommoConfig, clock: Clock, timeout: float) -> KommoOAuth | None:
    """The OAuth auth when `kommo.oauth` is configured, else None (the long-lived token)."""
    if config.oauth is None:
        return None
    return KommoOAuth(config.base_url, config.oauth, clock, timeout)
