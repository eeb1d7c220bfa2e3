"""One `destination_meta` row read or written on a connection of its own, opened and closed
around it, so any thread may use it at any time: before the run opens the state, or on a
Kommo client thread while the run's thread owns its own connection (SQLite's WAL lets the two
share the file; a writer waits out the other's short transaction, up to the busy timeout).

It always writes, also in a dry run: what it keeps (the Kommo refresh token) is lost otherwise.
The state location becomes a connection in StateLocation.open only, here as for the run."""

from __future__ import annotations

from typing import Any

from kommo_sync.state.location import StateLocation


def read_row(location: StateLocation, destination: str, key: str) -> Any:
    """The row's value, None when there is none (or no state yet)."""
    with location.open() as state:
        return state.meta(destination, key)


def write_row(location: StateLocation, destination: str, key: str, value: Any) -> None:
    """Replace the row in a transaction of its own, committed when this returns."""
    with location.open() as state, state.transaction():
        state.set_meta(destination, key, value)
