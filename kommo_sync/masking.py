"""Secrets never reach output or the state: one scrubber for renderers, logs and stored reasons."""

from __future__ import annotations

from collections.abc import Iterable


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in `text` by a mask (defence in depth: secrets never reach output);
    the longest first, so a secret inside another (a key and its Basic-auth form) never
    half-masks it."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
