"""A destination's own small key/value memory in the state (managed tags, ids, settings)."""

from __future__ import annotations

import copy
import threading
from typing import Any

from kommo_sync.state import StateStore


class DestinationMemory:
    """A destination's own small key/value memory in the state file (managed tags, ids…).

    Pushes run on worker threads, and only the thread that owns the state may touch it. So
    writes are buffered here until the engine flushes them on the owning thread, and reads
    from a worker are served from a copy of the destination's memory, taken on the owning
    thread when this memory is made and after every flush. The owning thread reads the state
    itself: the engine may change a destination's memory there directly (a new target forgets
    it), and what that thread reads must be what is stored.
    """

    def __init__(self, state: StateStore | None, destination: str):
        self.state, self.destination = state, destination
        self.pending: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.stored = self._read_stored()

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            if key in self.pending:
                return self.pending[key]
            if self.state is None or not self.state.on_owner_thread():
                return copy.deepcopy(self.stored[key]) if key in self.stored else default
        return self.state.meta(self.destination, key, default)

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.pending[key] = value

    def flush(self) -> None:
        """Write buffered values; call on the thread that owns the state. A value stays
        readable from `pending` until the copy workers read holds it."""
        if self.state is None:
            return  # nowhere to write: values stay in `pending`
        with self.lock:
            pending = dict(self.pending)
        if pending:
            with self.state.transaction():
                for key, value in pending.items():
                    self.state.set_meta(self.destination, key, value)
        stored = self._read_stored()
        with self.lock:
            self.stored = stored
            for key, value in pending.items():
                if self.pending.get(key) is value:
                    del self.pending[key]

    def _read_stored(self) -> dict[str, Any]:
        return {} if self.state is None else self.state.metas(self.destination)
