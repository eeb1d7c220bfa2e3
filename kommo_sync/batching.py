"""Cutting work into the batch sizes each API (and SQLite) accepts."""
from __future__ import annotations

from typing import Iterable, Iterator, Sequence, TypeVar

T = TypeVar("T")


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items (none for no items)."""
    values: Sequence[T] = items if isinstance(items, (list, tuple)) else list(items)
    for start in range(0, len(values), size):
        yield list(values[start:start + size])
