"""Compact JSON for the hot path: mirror rows, pushed records and fingerprints."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any


def compact_json(
    sort_keys: bool = False, default: Callable[[Any], Any] | None = None
) -> Callable[[Any], str]:
    """`json.dumps(value, separators=(",", ":"), ...)`, same output, with its C encoder built once
    instead of on every call (half the cost of a small record). No cycle check: records are
    trees."""
    encoder = json.JSONEncoder(separators=(",", ":"), sort_keys=sort_keys, default=default)
    if c_make_encoder is None:
        return encoder.encode
    encode = c_make_encoder(
        None, encoder.default, encode_basestring_ascii, None, ":", ",", sort_keys, False, True
    )
    return lambda value: "".join(encode(value, 0))
