"""Where the Kommo OAuth tokens outlive the process: a file of mode 0600 (the refresh token
alone), or the state (`token_store: state`, for pods without a volume): the refresh token and
the access token with the time to refresh it, encrypted, so a new process reuses an unexpired
access token. Both save before the caller uses the new access token, also in a dry run."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from kommo_sync.config import READABLE_BY_OTHERS, OAuthConfig
from kommo_sync.errors import FatalError
from kommo_sync.state.location import StateLocation, state_errors
from kommo_sync.state.own_row import read_row, write_row
from kommo_sync.token_cipher import TokenCipher, UndecryptableToken

log = logging.getLogger("kommo_sync.kommo_oauth")

STATE_ROW = ("kommo-oauth", "token")  # destination_meta's (destination, key)


@dataclass(frozen=True)
class StoredTokens:
    """The newest refresh token; the access token and the wall time to refresh it, when known."""

    refresh: str
    access: str | None = None
    refresh_after: float = 0.0


class TokenStore(Protocol):
    def load(self) -> StoredTokens | None: ...

    def save(self, tokens: StoredTokens) -> None: ...


class FileTokenStore:
    """The latest refresh token, one line in a file of mode 0600, replaced atomically."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> StoredTokens | None:
        """The stored token; a store group or others can read is warned about (chmod 600)."""
        try:
            if self.path.stat().st_mode & READABLE_BY_OTHERS:
                log.warning("%s holds a secret and is readable by others: chmod 600", self.path)
            token = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FatalError(f"cannot read the Kommo token store {self.path}: {exc}") from None
        return StoredTokens(token) if token else None

    def save(self, tokens: StoredTokens) -> None:
        """Temp file + fsync + rename, so a crash leaves the old token or the new, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(tokens.refresh + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise FatalError(f"cannot write the Kommo token store {self.path}: {exc}") from None


class StateTokenStore:
    """The tokens as one Fernet-encrypted row of the state's destination_meta, each load and
    save on a connection of its own (any thread, before or during the run)."""

    def __init__(self, location: StateLocation, cipher: TokenCipher):
        self.location, self.cipher = location, cipher

    def load(self) -> StoredTokens | None:
        """The stored tokens; one another key encrypted (the key was rotated) is set aside with
        a warning, and the config's refresh token is tried instead."""
        try:
            sealed = read_row(self.location, *STATE_ROW)
        except state_errors() as exc:
            raise FatalError(
                f"cannot read the Kommo token in the state {self.location.where()}: {exc}"
            ) from None
        if not isinstance(sealed, str):
            return None
        try:
            return StoredTokens(**json.loads(self.cipher.decrypt(sealed)))
        except (UndecryptableToken, ValueError, TypeError):
            log.warning(
                "the Kommo token in the state %s does not decrypt with this key (rotated?): "
                "trying kommo.oauth.refresh_token",
                self.location.where(),
            )
            return None

    def save(self, tokens: StoredTokens) -> None:
        sealed = self.cipher.encrypt(json.dumps(asdict(tokens)))
        try:
            write_row(self.location, *STATE_ROW, sealed)
        except state_errors() as exc:
            raise FatalError(
                f"cannot write the Kommo token in the state {self.location.where()}: {exc}"
            ) from None


def token_store(oauth: OAuthConfig) -> TokenStore:
    """The store `kommo.oauth.token_store` names."""
    if oauth.state is None:
        return FileTokenStore(oauth.token_store)
    cipher = TokenCipher(oauth.token_key, oauth.token_key_env, "kommo.oauth.token_store")
    return StateTokenStore(oauth.state, cipher)
