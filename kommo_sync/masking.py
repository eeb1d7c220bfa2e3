"""Secrets never reach output or the state: one scrubber for renderers, logs and stored reasons."""
from __future__ import annotations

from typing import Iterable


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret in `text` by a mask (defence in depth: secrets never reach output)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
