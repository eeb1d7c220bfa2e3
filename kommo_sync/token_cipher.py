"""Fernet (the `cryptography` package: AES-128-CBC with an HMAC-SHA256, so a wrong key or a
changed byte is refused, never decrypted into garbage) around the Kommo tokens kept in the state.
The key comes from the environment; `cryptography` is the optional extra `oauth-state`."""

from __future__ import annotations

from typing import Any

from kommo_sync.errors import ConfigError

KEY_HINT = (
    'a urlsafe base64 32-byte Fernet key, made by: python -c "from cryptography.fernet import '
    'Fernet; print(Fernet.generate_key().decode())"'
)


class UndecryptableToken(Exception):
    """The stored token was encrypted with another key (rotated) or altered."""


class TokenCipher:
    """Encrypts and decrypts one text with the key; `where` is the config key a problem names."""

    def __init__(self, key: str, variable: str, where: str):
        fernet = _fernet_module(where)
        try:
            self._fernet: Any = fernet.Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise ConfigError(where, f"${variable} is not {KEY_HINT}") from None
        self._invalid: type[Exception] = fernet.InvalidToken

    def encrypt(self, text: str) -> str:
        return str(self._fernet.encrypt(text.encode("utf-8")).decode("ascii"))

    def decrypt(self, token: str) -> str:
        try:
            return str(self._fernet.decrypt(token.encode("ascii")).decode("utf-8"))
        except (self._invalid, UnicodeError):
            raise UndecryptableToken() from None


def _fernet_module(where: str) -> Any:
    try:
        from cryptography import fernet
    except ImportError:
        raise ConfigError(
            where, "needs the cryptography package: pip install 'kommo-sync[oauth-state]'"
        ) from None
    return fernet
